"""Training the learned temporal blend (``mcdenoise train-temporal``).

1. Every frame of the training sequences goes once through the frozen single-frame model
   (:mod:`mcdenoise.temporal.cache`); nothing below runs that model again.
2. Each step takes ``batch`` windows of ``window + 1`` consecutive frames (a random sequence,
   sample count, start frame and crop) and unrolls the blend over each exactly as
   :func:`mcdenoise.temporal.history.replay` runs it at inference (it *is* that function, with
   gradients through every step of the window).
3. The loss of each blended frame ``k`` of a window, in the log space the blend works in
   (``log1p(exposure * x)``, one exposure per window) is::

       |out_k - ref_k|  +  λ |(out_k - out_k-1) - (ref_k - ref_k-1)|

   the per-frame error plus issue 20's flicker figure (change between frames that the
   references do not have). ``λ`` is ``temporal_weight``, 1 by default: for independent
   per-frame errors the second term is about √2 times the first, so at 1 neither dominates; a
   larger λ trades PSNR for steadiness (the held-out numbers at the end show both).
4. Checkpoints (``training.checkpoint``: model, optimizer, the window sampler's generator, every
   RNG) every few minutes and on stop, so a re-run resumes bit for bit; ``minutes`` and
   ``steps`` both bound a call; a weights file (``models.loader.save_blend_weights``) at the end.

Held-out sequences (every ``1 / val_fraction``-th) are scored at the end of each call on whole
frames, frame by frame through the history as ``denoise`` runs: mean PSNR and flicker of the
single-frame output, the hand-made blend and the learned one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcdenoise.choices import DEFAULT_QUALITY
from mcdenoise.errors import McDenoiseError
from mcdenoise.temporal import DEFAULT_WINDOW, stabilise, warp
from mcdenoise.temporal.blendnet import (
    DEFAULT_DEPTH,
    DEFAULT_WIDTH,
    BlendNet,
    learned_blend,
)
from mcdenoise.temporal.cache import CachedSequence
from mcdenoise.temporal.history import Kept, replay
from mcdenoise.training.runloop import RunClock, progress_line, sigterm_requests, warm_cosine_lr


@dataclass
class TemporalTrainConfig:
    data: str = "data/seq"
    run_dir: str = "runs/temporal"
    model: str = DEFAULT_QUALITY  # the frozen single-frame model: a quality or a weights file
    spps: tuple[int, ...] = ()  # sample counts to train on; () = every one rendered
    window: int = DEFAULT_WINDOW  # history frames, as denoise --temporal-warmup
    steps: int = 3000
    minutes: float = 0.0  # wall-clock budget of this call, 0 = none
    batch: int = 4  # windows per step
    crop: int = 128  # crop side; frames no larger are used whole
    lr: float = 2e-3
    temporal_weight: float = 1.0  # λ of the flicker term
    width: int = DEFAULT_WIDTH
    depth: int = DEFAULT_DEPTH
    guides: bool = True  # albedo and normal as inputs
    val_fraction: float = 0.1
    log_every: int = 50
    checkpoint_minutes: float = 2.0
    seed: int = 0
    threads: int = 1  # the blend's ops are small: a second thread mostly waits (20x slower on a busy 2-core machine)
    device: str = "cpu"
    progress: bool = True


FIELD_NAMES = tuple(f.name for f in fields(TemporalTrainConfig))


def resolve(run_dir: str | Path | None, overrides: dict[str, Any]) -> TemporalTrainConfig:
    """Defaults, then the run's own ``config.json`` (resuming), then the flags given (``None``:
    not given), as ``training.config`` resolves a denoiser's run."""
    values: dict[str, Any] = {}
    saved = Path(run_dir) / "config.json" if run_dir else None
    if saved is not None and saved.is_file():
        try:
            values.update(json.loads(saved.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise McDenoiseError(f"{saved}: cannot read the run's config ({exc})") from exc
    values.update({k: v for k, v in overrides.items() if v is not None and k in FIELD_NAMES})
    values["spps"] = tuple(values.get("spps", ()))
    cfg = TemporalTrainConfig(**{k: v for k, v in values.items() if k in FIELD_NAMES})
    if cfg.window < 1 or cfg.batch < 1 or cfg.steps < 1 or cfg.crop < 8:
        raise McDenoiseError(f"{saved or 'the temporal training config'}: window, batch and steps must be at least 1 and "
                             "the crop at least 8")
    return cfg


def split(seqs: list[CachedSequence], val_fraction: float) -> tuple[list[CachedSequence], list[CachedSequence]]:
    """(training, held-out) by scene: every ``round(1 / val_fraction)``-th scene is held out
    (all its sample counts); at least one once there are two scenes, none with one."""
    scenes = sorted({s.name.rsplit("_", 1)[0] for s in seqs})
    every = round(1 / val_fraction) if val_fraction > 0 else 0
    held = {sc for i, sc in enumerate(scenes) if every and len(scenes) >= 2 and i % every == every - 1} if every else set()
    if every and len(scenes) >= 2 and not held:
        held = {scenes[-1]}
    return ([s for s in seqs if s.name.rsplit("_", 1)[0] not in held], [s for s in seqs if s.name.rsplit("_", 1)[0] in held])


# -- one window ------------------------------------------------------------------------------------

def crop_window(seq: CachedSequence, start: int, length: int, y0: int, x0: int, size_y: int, size_x: int,
                device: torch.device) -> tuple[list[Kept], torch.Tensor]:
    """Frames ``start .. start + length - 1`` of ``seq`` cut to a window of the picture, as the
    history would keep a frame of that size: sample positions moved into the crop, and a
    history that comes from outside it invalid (as outside the frame is at inference)."""
    ys, xs = slice(y0, y0 + size_y), slice(x0, x0 + size_x)
    frames = []
    for k, f in enumerate(seq.frames[start:start + length]):
        points = valid = None
        if k:
            points = f.points[ys, xs] - torch.tensor([x0, y0], dtype=f.points.dtype)
            valid = f.valid[ys, xs] & warp.inside(points, size_y, size_x)
            points, valid = points.to(device), valid.to(device)
        frames.append(Kept(f.number, f.denoised[ys, xs].to(device), f.noise[ys, xs].to(device), f.vector[ys, xs],
                           f.exposure, points, valid, f.guides[ys, xs].to(device) if f.guides is not None else None))
    return frames, seq.refs[start:start + length, ys, xs].to(device)


def window_loss(net: BlendNet, frames: list[Kept], refs: torch.Tensor, temporal_weight: float) -> torch.Tensor:
    """Mean over the blended frames of the window of the per-frame L1 plus λ times the flicker L1."""
    outs = replay(frames, lambda *a: learned_blend(net, *a))
    e = frames[0].exposure
    out_log = [stabilise.to_log(o, e) for o in outs]
    ref_log = stabilise.to_log(refs, e)
    terms = []
    for k in range(1, len(outs)):
        per_frame = (out_log[k] - ref_log[k]).abs().mean()
        flicker = ((out_log[k] - out_log[k - 1]) - (ref_log[k] - ref_log[k - 1])).abs().mean()
        terms.append(per_frame + temporal_weight * flicker)
    return torch.stack(terms).mean()


# -- held-out numbers -------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(seqs: list[CachedSequence], blends: dict[str, Any], window: int) -> dict[str, dict[str, float]]:
    """Mean PSNR (dB) and flicker over held-out sequences, whole frames, frame by frame as
    ``denoise`` runs them (frame ``t`` from frames ``t - window .. t``), for the single-frame
    output and each blend; the figures of ``bench --sequence``."""
    from mcdenoise import hdr
    from mcdenoise.bench.temporal import flicker
    from mcdenoise.metrics import psnr
    from mcdenoise.preview import tonemap

    results: dict[str, dict[str, list[float]]] = {}
    for seq in seqs:
        exposure = hdr.autoexposure(seq.refs[0].numpy())
        refs = [tonemap(r.numpy(), exposure) for r in seq.refs]
        rows = {"single-frame": [f.denoised.numpy() for f in seq.frames]}
        for label, fn in blends.items():
            rows[label] = [replay(seq.frames[max(0, t - window):t + 1], fn)[-1].numpy() for t in range(len(seq.frames))]
        for label, outs in rows.items():
            r = results.setdefault(label, {"psnr": [], "flicker": []})
            shown = [tonemap(o, exposure) for o in outs]
            r["psnr"].append(float(np.mean([psnr(o, ref) for o, ref in zip(shown, refs)])))
            r["flicker"].append(float(np.mean(flicker(shown, refs))))
    return {label: {k: float(np.mean(v)) for k, v in r.items()} for label, r in results.items()}


# -- the loop ---------------------------------------------------------------------------------------

def _lr(cfg: TemporalTrainConfig, step: int) -> float:
    return warm_cosine_lr(cfg.lr, step, cfg.steps, warmup=50)


def _save(run_dir: Path, step: int, net: BlendNet, opt, sampler: torch.Generator, seconds: float, cfg, val) -> None:
    from mcdenoise.training import checkpoint

    checkpoint.save_checkpoint(run_dir, step, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                               "sampler": sampler.get_state(), "train_seconds": seconds,
                                               "config": {**asdict(cfg), "spps": list(cfg.spps)}, "val": val or {}})


def _say(message: str) -> None:
    print(message, flush=True)  # progress lines reach a log file as they happen


def train(cfg: TemporalTrainConfig, stop_after: int = 0, log=_say) -> dict[str, Any]:
    """Train (or resume) the blend in ``cfg.run_dir`` up to ``cfg.steps`` steps, ``cfg.minutes``
    of this call or ``stop_after`` steps in this call; returns a summary with the held-out numbers."""
    from tqdm import tqdm

    from mcdenoise.inference.runtime import resolve_device
    from mcdenoise.temporal import cache
    from mcdenoise.training import checkpoint

    # 1. Run folder, config, device, the cached frames.
    run_dir = Path(cfg.run_dir)
    (run_dir / "log").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({**asdict(cfg), "spps": list(cfg.spps)}, indent=1) + "\n")
    checkpoint.tidy_temp_files(run_dir)
    device = resolve_device(cfg.device)
    seqs = cache.build(cfg.data, run_dir, cfg.model, cfg.device, cfg.spps, log)
    torch.set_num_threads(max(cfg.threads, 1))  # after the single-frame model's runtime, which sets its own
    train_seqs, val_seqs = split(seqs, cfg.val_fraction)
    if not train_seqs:
        raise McDenoiseError(f"{cfg.data}: every sequence is held out; render more or lower val_fraction")
    usable = [s for s in train_seqs if len(s.frames) >= 2]

    # 2. Model, optimizer and the window sampler; the newest checkpoint's state if any.
    torch.manual_seed(cfg.seed)
    net = BlendNet(cfg.width, cfg.depth, cfg.guides)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sampler = torch.Generator().manual_seed(cfg.seed)
    step, seconds, val = 0, 0.0, {}
    ck = checkpoint.restore(run_dir, net, opt, sampler)
    if ck is not None:
        step, seconds, val = ck["step"], ck["train_seconds"], ck.get("val", {})
        log(f"train-temporal: resuming {run_dir} at step {step}")
    net.to(device).train()
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)

    # 3. The loop; SIGTERM or Ctrl-C stop it after the current step, leaving a checkpoint.
    clock = RunClock(step, cfg.minutes, cfg.checkpoint_minutes, stop_after)
    first = step
    losses: list[float] = []
    logfile = open(run_dir / "log" / "train.jsonl", "a")  # noqa: SIM115 (closed in the finally below)
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, unit="step", dynamic_ncols=True)
    with sigterm_requests() as stop_requested:
        try:
            while step < cfg.steps and not clock.should_stop(step, stop_requested):
                if clock.checkpoint_due(step):
                    _save(run_dir, step, net, opt, sampler, seconds, cfg, val)
                t0 = time.monotonic()
                for group in opt.param_groups:
                    group["lr"] = _lr(cfg, step)
                opt.zero_grad(set_to_none=True)
                total = 0.0
                for _ in range(cfg.batch):
                    seq = usable[int(torch.randint(len(usable), (1,), generator=sampler))]
                    length = min(cfg.window + 1, len(seq.frames))
                    begin = int(torch.randint(len(seq.frames) - length + 1, (1,), generator=sampler))
                    h, w = seq.refs.shape[1:3]
                    ch, cw = min(cfg.crop, h), min(cfg.crop, w)
                    y0 = int(torch.randint(h - ch + 1, (1,), generator=sampler))
                    x0 = int(torch.randint(w - cw + 1, (1,), generator=sampler))
                    frames, refs = crop_window(seq, begin, length, y0, x0, ch, cw, device)
                    loss = window_loss(net, frames, refs, cfg.temporal_weight) / cfg.batch
                    loss.backward()
                    total += float(loss.detach())
                if not math.isfinite(total):
                    raise McDenoiseError(f"{run_dir}: the loss became {total} at step {step}", fix="train_lr")
                opt.step()
                step += 1
                seconds += time.monotonic() - t0
                losses.append(total)
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    recent = float(np.mean(losses[-cfg.log_every:]))
                    bar.set_postfix(loss=f"{recent:.4f}")
                    logfile.write(json.dumps({"step": step, "loss": recent, "lr": _lr(cfg, step - 1),
                                              "train_s": round(seconds, 1)}) + "\n")
                    logfile.flush()
                    if not cfg.progress:
                        log(progress_line("train-temporal", clock, step, cfg.steps, recent))
        finally:
            bar.close()
            logfile.close()
            if step > first:
                _save(run_dir, step, net, opt, sampler, seconds, cfg, val)

    # 4. Held-out numbers: the single-frame output, the hand-made blend, the learned one.
    net.eval().to("cpu")
    if val_seqs:
        val = evaluate(val_seqs, {"hand-made": stabilise.blend, "learned": lambda *a: learned_blend(net, *a)}, cfg.window)
        _save(run_dir, step, net, opt, sampler, seconds, cfg, val)
    return {"step": step, "steps": cfg.steps, "train_seconds": seconds, "steps_this_call": step - first,
            "loss": float(np.mean(losses[-cfg.log_every:])) if losses else None, "first_loss": losses[0] if losses else None,
            "train_sequences": len(train_seqs), "val_sequences": len(val_seqs), "val": val}


def export(run_dir: str | Path, out_path: str | Path) -> dict[str, Any]:
    """Write the newest checkpoint's blend as a temporal weights file, with what a model card
    needs in its metadata."""
    from mcdenoise.models.loader import save_blend_weights
    from mcdenoise.training import checkpoint
    from mcdenoise.training.loop import git_hash

    ck = checkpoint.load_latest(run_dir)
    cfg = TemporalTrainConfig(**{**ck["config"], "spps": tuple(ck["config"]["spps"])})
    net = BlendNet(cfg.width, cfg.depth, cfg.guides)
    net.load_state_dict(ck["model"])
    meta = {"steps": ck["step"], "train_seconds": round(ck["train_seconds"], 1), "dataset": cfg.data,
            "single_frame_model": cfg.model, "window": cfg.window, "crop": cfg.crop, "batch": cfg.batch,
            "loss": f"log L1 + {cfg.temporal_weight} * log L1 of frame-to-frame change vs the references'",
            "git": git_hash(), "device": cfg.device, "val": ck.get("val", {})}
    save_blend_weights(out_path, net, meta)
    return meta
