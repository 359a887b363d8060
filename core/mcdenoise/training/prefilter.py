"""Training the aux prefilter (``mcdenoise train-prefilter``): noisy albedo and normal to the
references' (see :mod:`mcdenoise.inference.prefilter` for why).

The data is any ``render-dataset`` folder: every noisy file's aux passes are inputs, its
reference's aux passes the target. Aux passes converge far faster than colour (they stop at the
first diffuse hit), so a few thousand steps of a small U-Net on 64-px crops are enough; the
loss is L1 on the prepared channels. The run lives in a folder of its own (config, checkpoints,
log) and resumes from its newest checkpoint like every training run here. The result is
written as a copy of a colour model's weights file with the prefilter added, because a colour
model and the aux it reads belong together.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mcdenoise import metrics
from mcdenoise.dataset.layout import SceneEntry, list_scenes
from mcdenoise.errors import InputFileError, McDenoiseError
from mcdenoise.features import AUX_FEATURES, FEATURES, samples_planes
from mcdenoise.io.exr import read_frame
from mcdenoise.models import ensemble
from mcdenoise.training.runloop import RunClock, progress_line, sigterm_requests, warm_cosine_lr

# Normal X and Y in the prefilter's channels (albedo RGB, then normal XYZ): they turn with the picture.
_NORMAL_XY = ((3, 4),)
_ALBEDO = slice(0, 3)


@dataclass
class PrefilterConfig:
    data: str = "data/train"
    run_dir: str = "runs/prefilter"
    widths: tuple[int, ...] = (16, 24, 32, 48, 64)
    steps: int = 3000
    batch: int = 16
    crop: int = 64
    lr: float = 1e-3
    # Share of crops whose input is moved toward the reference (reference + U(0, 1) x the noise),
    # meant to teach a blind prefilter to let nearly clean aux through. Off by default: at 0.25 it
    # did not stop the erasing of sub-pixel texture it was added for (docs/training.md).
    converged: float = 0.0
    # Read the render's sample count (as the colour models do, a share told "unknown"): without
    # it, sub-pixel texture in a 16-spp albedo and noise in a 1-spp one look alike.
    samples: bool = True
    val_fraction: float = 0.1
    minutes: float = 0.0
    checkpoint_minutes: float = 2.0
    log_every: int = 100
    seed: int = 0
    threads: int = 0  # 0: torch's default
    progress: bool = True


FIELD_NAMES = {f.name for f in fields(PrefilterConfig)}


def resolve(run_dir: str | Path, overrides: dict[str, Any]) -> PrefilterConfig:
    """A resumed run's saved config with the flags given again on top, or a new config."""
    saved = Path(run_dir) / "config.json"
    base = json.loads(saved.read_text()) if saved.is_file() else {}
    if base:
        base.setdefault("samples", False)  # a run begun before prefilters read the sample count
    given = {k: v for k, v in overrides.items() if v is not None}
    if base and "samples" in given and bool(given["samples"]) != bool(base["samples"]):
        raise McDenoiseError(f"{run_dir}: this run was begun {'with' if base['samples'] else 'without'} the sample count; "
                             f"its network cannot change inputs: start a new run in another folder to change it")
    values = {**base, **given, "run_dir": str(run_dir)}
    values["widths"] = tuple(values.get("widths", PrefilterConfig.widths))
    return PrefilterConfig(**{k: v for k, v in values.items() if k in FIELD_NAMES})


@dataclass
class AuxScene:
    """One scene's aux passes, prepared, (H, W, 6) half floats: per sample count and the reference's."""

    entry: SceneEntry
    noisy: dict[int, np.ndarray]
    ref: np.ndarray


def read_aux(path: Path) -> np.ndarray:
    """A file's aux passes as the prefilter reads them, or an error naming the file."""
    frame = read_frame(path, features=list(AUX_FEATURES))
    missing = [name for name in AUX_FEATURES if getattr(frame, name) is None]
    if missing:
        raise InputFileError(f"{path}: no {'/'.join(missing)} pass; re-render it with render-dataset (it writes them)")
    planes = [FEATURES[name].prepare(torch.from_numpy(np.array(getattr(frame, name), np.float32)), 1.0).numpy()
              for name in AUX_FEATURES]
    return np.concatenate(planes, axis=-1).astype(np.float16)


def load_scenes(root: str | Path, val_fraction: float) -> tuple[list[AuxScene], list[AuxScene]]:
    from mcdenoise.training.data import split_scenes

    entries = [e for e in list_scenes(root) if e.spps]
    if not entries:
        raise InputFileError(f"{root}: no finished scenes to train the aux prefilter on", fix="render_dataset", root=root)
    train, val = split_scenes(entries, val_fraction)
    load = lambda e: AuxScene(e, {spp: read_aux(e.noisy(spp)) for spp in e.spps}, read_aux(e.ref))  # noqa: E731
    return [load(e) for e in train], [load(e) for e in val]


def draw_batch(scenes: list[AuxScene], cfg: PrefilterConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.batch`` augmented (noisy, reference) crops, (B, 6, c, c), or (B, 8, c, c) with the
    sample count's planes (``cfg.samples``): a random scene, sample count and window, one of the
    8 flips/rotations (normal X/Y turned with it) and a shuffle of the albedo's R, G, B, all
    drawn from ``gen`` (saved in checkpoints: resume is exact). A converging crop of fraction f
    stands for spp / f² samples, and a share ``UNKNOWN_SAMPLES`` is told "unknown", as the
    colour models' crops are (``training.data.CropSampler.draw``)."""
    from mcdenoise.training.data import UNKNOWN_SAMPLES

    xs, ys = [], []
    for _ in range(cfg.batch):
        s = scenes[int(torch.randint(len(scenes), (1,), generator=gen))]
        spps = sorted(s.noisy)
        spp = spps[int(torch.randint(len(spps), (1,), generator=gen))]
        noisy = s.noisy[spp]
        h, w = s.ref.shape[:2]
        c = min(cfg.crop, h, w)
        y0, x0 = int(torch.randint(h - c + 1, (1,), generator=gen)), int(torch.randint(w - c + 1, (1,), generator=gen))
        op = int(torch.randint(8, (1,), generator=gen))
        perm = torch.randperm(3, generator=gen)
        # Drawn only when asked for, so runs without converging crops keep their crop sequence.
        noise = float(torch.rand((), generator=gen)) if cfg.converged > 0 and float(torch.rand((), generator=gen)) < cfg.converged else 1.0
        pair = []
        for a in (noisy, s.ref):
            t = torch.from_numpy(np.ascontiguousarray(a[y0 : y0 + c, x0 : x0 + c])).float().permute(2, 0, 1)
            t = torch.cat([t[_ALBEDO][perm], t[3:]])
            pair.append(ensemble.transform(t, op, _NORMAL_XY))
        if noise < 1.0:  # a converging render's aux: the reference plus a fraction of the file's noise
            pair[0] = pair[1] + noise * (pair[0] - pair[1])
        if cfg.samples:
            told = float(torch.rand((), generator=gen)) >= UNKNOWN_SAMPLES
            level = samples_planes((spp / noise**2 if noise > 0 else math.inf) if told else None)
            pair[0] = torch.cat([pair[0], torch.tensor(level)[:, None, None].expand(-1, c, c)])
        xs.append(pair[0])
        ys.append(pair[1])
    return torch.stack(xs).contiguous(), torch.stack(ys).contiguous()


def _lr(cfg: PrefilterConfig, step: int) -> float:
    return warm_cosine_lr(cfg.lr, step, cfg.steps, warmup=100)


def evaluate(net: torch.nn.Module, scenes: list[AuxScene]) -> dict[str, float]:
    """Held-out PSNR of albedo and normal (normal mapped to [0, 1]) against the references',
    as read and as the prefilter cleans them through the inference path, mean over scenes and
    sample counts."""
    from mcdenoise.inference.encode import FrameInputs
    from mcdenoise.inference.prefilter import clean_aux
    from mcdenoise.inference.runtime import Runtime

    runtime = Runtime(torch.device("cpu"), precision="fp32", threads=torch.get_num_threads())  # the run's threads, kept
    scores: dict[str, list[float]] = {"albedo_noisy": [], "albedo_clean": [], "normal_noisy": [], "normal_clean": []}
    with torch.inference_mode():
        for s in scenes:
            ref = s.ref.astype(np.float32)
            for spp, aux in s.noisy.items():
                frame = FrameInputs(np.zeros(aux.shape[:2] + (3,), np.float32), aux[..., _ALBEDO], aux[..., 3:], samples=spp)
                cleaned = clean_aux(net, frame, None, runtime)
                for label, f in (("noisy", frame), ("clean", cleaned)):
                    scores[f"albedo_{label}"].append(metrics.psnr(f.albedo.astype(np.float32), ref[..., _ALBEDO]))
                    scores[f"normal_{label}"].append(metrics.psnr((f.normal.astype(np.float32) + 1) / 2, (ref[..., 3:] + 1) / 2))
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items()}


def _say(message: str) -> None:
    print(message, flush=True)


def train(cfg: PrefilterConfig, stop_after: int = 0, log: Callable[[str], None] = _say) -> dict[str, Any]:
    """Train (or resume) the prefilter in ``cfg.run_dir`` up to ``cfg.steps`` steps, ``cfg.minutes``
    of this call or ``stop_after`` steps in this call; returns a summary with the held-out numbers."""
    from tqdm import tqdm

    from mcdenoise.models.loader import build_prefilter
    from mcdenoise.training import checkpoint

    run_dir = Path(cfg.run_dir)
    (run_dir / "log").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    checkpoint.tidy_temp_files(run_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_scenes, val_scenes = load_scenes(cfg.data, cfg.val_fraction)
    if not train_scenes:
        raise InputFileError(f"{cfg.data}: every scene is held out; render more scenes")

    torch.manual_seed(cfg.seed)
    net = build_prefilter(cfg.widths, cfg.samples)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, seconds = 0, 0.0
    ck = checkpoint.restore(run_dir, net, opt, gen)
    if ck is not None:
        step, seconds = ck["step"], ck["train_seconds"]
        log(f"train-prefilter: resuming {run_dir} at step {step}")

    def save(val: dict | None = None) -> None:
        checkpoint.save_checkpoint(run_dir, step, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                                   "sampler": gen.get_state(), "train_seconds": seconds,
                                                   "config": asdict(cfg), "val": val or {},
                                                   "scenes": [len(train_scenes), len(val_scenes)]})

    clock = RunClock(step, cfg.minutes, cfg.checkpoint_minutes, stop_after)
    first, losses = step, []
    logfile = open(run_dir / "log" / "train.jsonl", "a")  # noqa: SIM115 (closed in the finally below)
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, unit="step", dynamic_ncols=True)
    net.to(memory_format=torch.channels_last).train()  # oneDNN's fast layout: about 4x the steps/s of NCHW on CPU
    with sigterm_requests() as stop_requested:
        try:
            while step < cfg.steps and not clock.should_stop(step, stop_requested):
                if clock.checkpoint_due(step):
                    save()
                t0 = time.monotonic()
                for group in opt.param_groups:
                    group["lr"] = _lr(cfg, step)
                x, y = draw_batch(train_scenes, cfg, gen)
                x = x.contiguous(memory_format=torch.channels_last)
                loss = torch.nn.functional.l1_loss(net(x), y)
                if not torch.isfinite(loss):
                    raise McDenoiseError(f"{run_dir}: the loss became {float(loss)} at step {step}", fix="train_lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                seconds += time.monotonic() - t0
                losses.append(float(loss.detach()))
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    recent = float(np.mean(losses[-cfg.log_every:]))
                    bar.set_postfix(loss=f"{recent:.4f}")
                    logfile.write(json.dumps({"step": step, "loss": recent, "lr": _lr(cfg, step - 1), "train_s": round(seconds, 1)}) + "\n")
                    logfile.flush()
                    if not cfg.progress:
                        log(progress_line("train-prefilter", clock, step, cfg.steps, recent))
        finally:
            bar.close()
            logfile.close()
            if step > first:
                save()
    net.eval()
    val = evaluate(net, val_scenes) if val_scenes else {}
    if val:
        save(val)
    return {"step": step, "steps": cfg.steps, "train_seconds": seconds, "steps_this_call": step - first,
            "train_scenes": len(train_scenes), "val_scenes": len(val_scenes), "val": val,
            "first_loss": losses[0] if losses else None, "loss": float(np.mean(losses[-cfg.log_every:])) if losses else None}


def export(run_dir: str | Path, base: str | Path | None, out_path: str | Path) -> dict[str, Any]:
    """Write ``base`` (a colour model's weights file; the shipped default when None) again at
    ``out_path`` with the run's newest prefilter added and described in its metadata."""
    from mcdenoise.models.loader import build_prefilter, load_model, save_weights
    from mcdenoise.training import checkpoint
    from mcdenoise.training.loop import git_hash

    ck = checkpoint.load_latest(run_dir)
    cfg = PrefilterConfig(**{"samples": False, **ck["config"], "widths": tuple(ck["config"]["widths"])})
    net = build_prefilter(cfg.widths, cfg.samples)
    net.load_state_dict(ck["model"])
    loaded = load_model(base)
    info = {"steps": ck["step"], "train_seconds": round(ck["train_seconds"], 1), "dataset": cfg.data, "widths": list(cfg.widths),
            "samples": cfg.samples, "crop": cfg.crop, "batch": cfg.batch, "scenes": ck.get("scenes"), "val": ck.get("val", {}), "git": git_hash()}
    meta = {**loaded.meta, "aux_prefilter": info}
    save_weights(out_path, loaded.model, loaded.arch, loaded.config, loaded.inputs, meta, prefilter=net)
    return info
