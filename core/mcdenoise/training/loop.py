"""The training loop, in the spirit of OIDN's ``train.py``: ``train`` reads top to bottom (set
up or resume, then per step: a batch, the update, logging and validation, checkpoints), and
each part is a function of its own below it.

Steps are counted globally across resumes; the LR schedule (linear warm-up, then cosine to
zero) is a pure function of the step and the schedule's length, so stopping early (``minutes``,
``stop_after``) and resuming later follows the same curve. Stopping for any reason leaves a
checkpoint, and a resumed run is bit-for-bit the run that was not stopped. A caller that steers
the run as it goes (the fine-tune: its budget, progress lines and stop requests) does it through
``on_step``, called after every step: it may ask for a checkpoint, the end of the call, or
another schedule length (:class:`Ask`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcdenoise import features, hdr
from mcdenoise.choices import TRAIN_PRECISIONS, decoder_widths, spoken
from mcdenoise.errors import McDenoiseError
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.runtime import cpu_has_native_bf16
from mcdenoise.metrics import psnr_tonemapped, ssim_tonemapped
from mcdenoise.models import build_model
from mcdenoise.models.loader import LoadedModel, load_model, resolve_device, save_weights
from mcdenoise.models.unet import add_demodulation, add_inputs, widen
from mcdenoise.training import checkpoint, config as config_mod, distributed
from mcdenoise.training.batches import Batches
from mcdenoise.training.config import TrainConfig
from mcdenoise.training.data import CropSampler
from mcdenoise.training.losses import denoise_loss
from mcdenoise.training.resident import ResidentBatches
from mcdenoise.training.runloop import sigterm_requests


@dataclass(frozen=True)
class StepDone:
    """What ``on_step`` is told after each step."""

    step: int  # steps done, counted across resumes
    steps: int  # the schedule's length
    loss: float


@dataclass(frozen=True)
class Ask:
    """What ``on_step`` may ask of the loop, before its next step: a checkpoint; the end of this
    call (with a checkpoint, resumable as after ``stop_after``); a new schedule length, which
    moves the LR curve's end and the last step (a length inside the warm-up changes no rate
    already used: those do not depend on it). In a torchrun job rank 0's stop and checkpoint
    decide, as for the loop's own; a new length must be the same on every rank."""

    checkpoint: bool = False
    stop: bool = False
    steps: int | None = None


OnStep = Callable[[StepDone], "Ask | None"]


def train(cfg: TrainConfig, stop_after: int = 0, on_step: OnStep | None = None) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.run_dir`` up to ``cfg.steps`` steps, the ``cfg.minutes``
    budget, ``stop_after`` steps in this call, or ``on_step``'s stop, whichever comes first.
    Returns a summary; its ``stopped`` says what ended the call before the schedule's end
    ("stop_after", "signal" for SIGTERM, "minutes", "asked" by ``on_step``, "rank 0" for a rank
    that rank 0 stopped), None when the run reached it."""
    from tqdm import tqdm

    # 1. Run folder, device, seeds, data, model and optimizer; the newest checkpoint's state.
    # Under torchrun each process builds its share of every batch (``training.distributed``).
    ranks = distributed.from_env()
    run = start_run(cfg, ranks)
    keep = ranks.share(cfg.batch) if ranks.distributed else None
    if cfg.resident:
        batches: Batches | ResidentBatches = ResidentBatches(run.sampler, cfg.batch, run.device, keep)
    else:
        batches = Batches(run.sampler, cfg.batch, crop_workers(cfg, run.device), keep)

    # 2. The loop. SIGTERM (kill, a job scheduler's stop) ends it after the current step, so a
    # stopped run always leaves a checkpoint; Ctrl-C does the same through KeyboardInterrupt.
    log = open(run.folder / "log" / "train.jsonl", "a") if ranks.leader else None
    start = time.monotonic()
    last_ckpt = last_reload = start
    first_step = run.step
    run.model.train()
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not cfg.progress or not ranks.leader, unit="step", dynamic_ncols=True)
    asked, stopped = Ask(), None
    with sigterm_requests() as stop_requested:
        try:
            while run.step < run.cfg.steps:  # on_step may move the end
                now = time.monotonic()
                why = ("stop_after" if stop_after and run.step - first_step >= stop_after else "signal" if stop_requested
                       else "minutes" if cfg.minutes and now - start >= cfg.minutes * 60 else "asked" if asked.stop else None)
                checkpoint_due = now - last_ckpt >= cfg.checkpoint_minutes * 60 or asked.checkpoint
                reload_due = bool(cfg.reload_minutes and now - last_reload >= cfg.reload_minutes * 60)
                # Rank 0 decides for all (a no-op in one process): ranks never disagree on the last step.
                stop, checkpoint_due, reload_due = distributed.agree(ranks, [why is not None, checkpoint_due, reload_due])
                if stop:
                    stopped = why or "rank 0"
                    break
                # 2a. Checkpoints, and scenes finished since the run started (decided before the
                # step, so that every rank acts on the same step).
                if checkpoint_due and run.step > first_step:
                    if ranks.leader:
                        save(run, batches.sampler_state())
                    last_ckpt = now
                if reload_due:
                    batches.settle()
                    run.sampler.reload()
                    last_reload = now
                # 2b. An augmented batch of crops, and one update on it.
                t0 = time.monotonic()
                loss = train_step(run, *batches.next())
                run.train_seconds += time.monotonic() - t0
                bar.update(1)
                # 2c. Logging and validation.
                record: dict[str, Any] = {}
                if run.step % cfg.log_every == 0 or run.step == run.cfg.steps:
                    record = {"step": run.step, "loss": loss, "lr": run.scheduler.get_last_lr()[0], "train_s": round(run.train_seconds, 1)}
                    bar.set_postfix(loss=f"{loss:.4f}")
                if cfg.val_every and run.step % cfg.val_every == 0 and ranks.leader:
                    run.last_val = validate(run.model, cfg, run.sampler)
                    record = {**record, "step": run.step, **run.last_val}
                    if run.last_val:
                        bar.write(f"step {run.step}: val PSNR {run.last_val['val_psnr']:.2f} dB, SSIM {run.last_val['val_ssim']:.4f}")
                if record and log is not None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                # 2d. The caller's say (the fine-tune's budget, progress and stop requests).
                if on_step is not None:
                    asked = on_step(StepDone(run.step, run.cfg.steps, loss)) or Ask()
                    if asked.steps is not None and asked.steps != run.cfg.steps:
                        set_schedule(run, asked.steps)
                        bar.total = asked.steps
        finally:
            # 3. Stopping for any reason (budget, Ctrl-C, error) leaves a checkpoint.
            bar.close()
            if run.step > first_step and ranks.leader:
                save(run, batches.sampler_state())
            batches.close()
            if log is not None:
                log.close()
            distributed.barrier(ranks)  # the checkpoint exists before any rank returns
    return {"step": run.step, "steps": run.cfg.steps, "train_seconds": run.train_seconds, "val": run.last_val,
            "train_scenes": len(run.sampler.train), "val_scenes": len(run.sampler.val), "run_dir": str(run.folder),
            "stopped": stopped}


# -- setting up and resuming ---------------------------------------------------------------------

@dataclass
class Run:
    """What the steps of one training run share, and what a checkpoint saves of it."""

    cfg: TrainConfig
    folder: Path
    device: torch.device
    sampler: CropSampler
    kwargs: dict[str, Any]  # the network's constructor kwargs, as weights files store them
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: int = 0
    train_seconds: float = 0.0
    last_val: dict[str, float] = field(default_factory=dict)
    ranks: distributed.Ranks = field(default_factory=distributed.Ranks)
    net: torch.nn.Module | None = None  # what the step runs: ``model``, or DDP around it
    autocast: torch.dtype | None = None  # the step's autocast dtype (:func:`train_dtype`); None = fp32


def start_run(cfg: TrainConfig, ranks: distributed.Ranks = distributed.Ranks()) -> Run:
    """Run folder and resolved config, device, threads, seeds, data, model, optimizer and
    schedule; then the newest checkpoint's state, or for a new run ``cfg.init``'s weights.
    The order is the order random numbers are drawn in: changing it changes every run."""
    run_dir = Path(cfg.run_dir)
    (run_dir / "log").mkdir(parents=True, exist_ok=True)
    if ranks.leader:
        config_mod.save(cfg, run_dir / "config.json")
        checkpoint.tidy_temp_files(run_dir)

    device = distributed.setup(ranks, resolve_device(cfg.device), cfg.batch)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    source = prefilter_source(cfg)
    sampler = CropSampler(cfg.data, cfg.val_fraction, cfg.crop, cfg.aux_dropout, cfg.seed, cfg.inputs, cfg.converged,
                          source.prefilter if source else None)
    kwargs = cfg.model_kwargs()
    model = build_model(cfg.arch, **kwargs).to(device)
    if device.type in CHANNELS_LAST_DEVICES:  # cuDNN's and oneDNN's fastest conv layout; weights keep their values
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.steps))
    run = Run(cfg, run_dir, device, sampler, kwargs, model, optimizer, scheduler, ranks=ranks,
              autocast=train_dtype(cfg.precision, device))

    latest = checkpoint.latest_checkpoint(run_dir)
    if latest is not None:
        resume(run, latest)
    elif cfg.init:
        init_from_weights(model, cfg, kwargs)
    run.net = distributed.wrap(model, ranks, device)
    return run


def prefilter_source(cfg: TrainConfig) -> LoadedModel | None:
    """The weights whose aux prefilter a run trains behind: ``cfg.prefilter``, else ``cfg.init``
    if it carries one (a fine-tune of an "accurate" model stays one), else None. Read again on
    resume and at export, so the file must stay where the config says."""
    path = cfg.prefilter or cfg.init
    if not path or not features.uses_aux(cfg.inputs):
        return None
    loaded = load_model(path)
    if loaded.prefilter is None:
        if cfg.prefilter:
            raise McDenoiseError(f"{path}: these weights carry no aux prefilter; make one with 'mcdenoise train-prefilter'")
        return None
    return loaded


def resume(run: Run, path: Path) -> None:
    """Continue where a checkpoint stopped: weights, optimizer, schedule, sampler, RNGs."""
    cfg = run.cfg
    ck = checkpoint.load_checkpoint(path)
    if ck["arch"] != cfg.arch or ck["model_kwargs"] != run.kwargs:
        raise McDenoiseError(f"{path}: checkpoint is {ck['arch']} {ck['model_kwargs']}, config asks for {cfg.arch} {run.kwargs}",
                             fix="train_run_dir")
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.sampler.set_state(ck["sampler"])
    checkpoint.set_rng_states(ck["rng"])
    run.step, run.train_seconds, run.last_val = ck["step"], ck["train_seconds"], ck.get("val", {})
    # --lr and --steps may change on resume (e.g. to fit a time budget); unchanged, this is a no-op.
    set_schedule(run, cfg.steps)


def set_schedule(run: Run, steps: int) -> None:
    """Let the LR schedule end at ``steps`` (and ``cfg.lr`` be its peak) from the run's current
    step on: the rate is a pure function of the step, the peak and the length, so the next step
    trains at the new curve's rate, as a run started with them would there."""
    cfg = run.cfg = replace(run.cfg, steps=steps)
    run.scheduler.lr_lambdas = [lambda s: lr_factor(s, cfg.warmup, cfg.steps) for _ in run.scheduler.lr_lambdas]
    run.scheduler.base_lrs = [cfg.lr for _ in run.scheduler.base_lrs]
    for group in run.optimizer.param_groups:
        group["lr"] = cfg.lr * lr_factor(run.step, cfg.warmup, cfg.steps)


def init_from_weights(model: torch.nn.Module, cfg: TrainConfig, kwargs: dict[str, Any]) -> None:
    """Start a fresh run from a weights file: a shipped model to fine-tune on new data, or a
    U-Net grown so that the run starts at its quality: reading more inputs (``add_inputs``),
    then with demodulation added or wider (``widen``)."""
    loaded = load_model(cfg.init)
    source, config = loaded.model, loaded.config
    if loaded.inputs != cfg.inputs:
        old, new = loaded.inputs.split("+"), cfg.inputs.split("+")
        if not (loaded.arch == cfg.arch == "unet") or len(new) <= len(old) or new[: len(old)] != old:
            raise McDenoiseError(f"{cfg.init}: weights read {loaded.inputs!r}, the run reads {cfg.inputs!r}; a U-Net can "
                                 "gain inputs after its own, not lose or reorder them", fix="train_arch")
        source = add_inputs(source, kwargs["in_channels"] - source.layout_channels)
        config = {**config, "in_channels": kwargs["in_channels"]}
        print(f"train: {cfg.init} starts the run reading {cfg.inputs!r} (the new inputs at zero weight)", flush=True)
    same_io = all(config.get(k) == kwargs.get(k) for k in ("in_channels", "out_channels"))
    if loaded.arch == cfg.arch == "unet" and same_io and config.get("demodulate", False) != kwargs.get("demodulate", False):
        # A colour model grows the irradiance branch computing what it computed (add_demodulation);
        # the other way would throw a trained branch away.
        if not kwargs.get("demodulate") or {**config, "demodulate": True} != kwargs:
            raise McDenoiseError(f"{cfg.init}: weights are {config}, the run trains {kwargs}; a colour model can gain "
                                 "demodulation at its own widths (widen in a second run), not lose it", fix="train_arch")
        model.load_state_dict(add_demodulation(source).state_dict())
        print(f"train: {cfg.init} starts the run with demodulation added", flush=True)
        return
    if loaded.arch == cfg.arch == "unet" and config != kwargs and same_io:
        try:  # widen is the one place that knows which widths can grow into which
            grown = widen(source, kwargs["widths"], kwargs.get("decoder", decoder_widths(kwargs["widths"])),
                          kwargs.get("input_skip", False))
        except ValueError as exc:
            raise McDenoiseError(f"{cfg.init}: {exc}", fix="train_widths") from None
        model.load_state_dict(grown.state_dict())
        what = (f"widths {config['widths']} to {kwargs['widths']}" if config["widths"] != kwargs["widths"] else "")
        if grown.decoder != source.decoder or grown.input_skip != source.input_skip:
            what += f"{', ' if what else ''}decoder {source.decoder} to {grown.decoder}{' with the input skip' if grown.input_skip else ''}"
        print(f"train: widened {cfg.init} from {what}", flush=True)
        return
    if loaded.arch != cfg.arch or config != kwargs:
        raise McDenoiseError(f"{cfg.init}: weights are {loaded.arch} {config}, the run trains {cfg.arch} {kwargs}",
                             fix="train_arch")
    model.load_state_dict(source.state_dict())


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# -- the step --------------------------------------------------------------------------------------

def crop_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Threads building crops. On a 2-core CPU they would only steal cores from the network,
    so none; a GPU eats batches faster than one Python thread makes them."""
    if cfg.workers >= 0:
        return cfg.workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


# Where the step runs channels-last (NHWC): on a 2-core AVX-512 CPU a balanced step is 1.4x as
# fast as NCHW in fp32 and 2.5x in bf16 (482 -> 337 -> 195 ms for 8 crops of 128²).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def train_dtype(precision: str, device: torch.device, native_cpu_bf16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype of the training step, or None for plain fp32.

    ``auto`` trains under bf16 autocast where bf16 is native: CUDA, and CPUs with AVX-512 BF16
    or AMX, where it is what makes CPU training 2.5x as fast (weights, optimizer state, the
    loss and the gradients' sums stay fp32; measured on the suite in docs/training.md).
    Elsewhere oneDNN emulates bf16, slower than fp32, so ``auto`` is fp32 there. ``bf16``
    forces it (a run's precision is in its config, so resuming keeps it)."""
    if precision not in TRAIN_PRECISIONS:
        raise McDenoiseError(f"unknown training precision {precision!r}; use {spoken(TRAIN_PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu":
        native = cpu_has_native_bf16() if native_cpu_bf16 is None else native_cpu_bf16
        return torch.bfloat16 if native else None
    return None


def train_step(run: Run, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Forward, loss in the HDR-transformed space, backward, update; returns the loss. The
    batch runs channels-last where the model is (``start_run``), under the run's autocast."""
    x, y = torch.as_tensor(x).to(run.device), torch.as_tensor(y).to(run.device)
    if run.device.type in CHANNELS_LAST_DEVICES:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=run.autocast or torch.bfloat16, enabled=run.autocast is not None):
        pred = (run.net or run.model)(x)
    loss = denoise_loss(pred.float(), y, run.cfg.ssim_weight, run.cfg.loss_space)
    loss_value = distributed.mean(run.ranks, float(loss.detach()))  # every rank sees a NaN together
    if not math.isfinite(loss_value):
        raise McDenoiseError(f"loss became {loss_value} at step {run.step}", fix="train_lr")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    return loss_value


# -- validation, checkpoints, export ---------------------------------------------------------------

@torch.no_grad()
def validate(model: torch.nn.Module, cfg: TrainConfig, sampler: CropSampler) -> dict[str, float]:
    """PSNR/SSIM of tonemapped whole frames of the held-out scenes at every sample count,
    denoised through the inference path (``denoise_frame``) exactly as users will run it."""
    if not sampler.val:
        return {}
    # A copy, because the inference path may change the module (memory format, eval mode)
    # and the training model must stay exactly as the checkpoint will restore it.
    loaded = LoadedModel(copy.deepcopy(model).eval(), cfg.arch, cfg.model_kwargs(), cfg.inputs)
    psnrs, ssims = [], []
    for entry in sampler.val:
        s = sampler.scene(entry)
        ref_exposure = hdr.autoexposure(s.ref)
        for spp, frame in s.noisy.items():
            out = denoise_frame(loaded, frame, tile=None, exposure=s.exposure[spp])
            psnrs.append(psnr_tonemapped(out, s.ref, ref_exposure))
            ssims.append(ssim_tonemapped(out, s.ref, ref_exposure))
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)), "val_frames": len(psnrs)}


def save(run: Run, sampler_state: dict) -> Path:
    """Checkpoint the run at its current step (``training.checkpoint`` adds the RNG states)."""
    payload = {
        "arch": run.cfg.arch, "model_kwargs": run.kwargs, "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "sampler": sampler_state, "train_seconds": run.train_seconds, "val": run.last_val,
        "config": asdict(run.cfg), "scenes": [e.index for e in run.sampler.train],
    }
    return checkpoint.save_checkpoint(run.folder, run.step, payload, run.cfg.keep_checkpoints)


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def checkpoint_model(ck: dict[str, Any]) -> torch.nn.Module:
    """The network a checkpoint holds (as ``checkpoint.load_checkpoint`` returns it), in eval
    mode: what :func:`export` writes, and what the fine-tune scores before writing it."""
    model = build_model(ck["arch"], **ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    return model.eval()


def export(run_dir: str | Path, out_path: str | Path, validate_now: bool = True,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the newest checkpoint's model as a weights file (``models.loader.save_weights``) with
    the facts a model card needs in its metadata (``extra``: more of them, e.g. the recipe)."""
    ck = checkpoint.load_latest(run_dir)
    cfg = TrainConfig(**ck["config"])
    model = checkpoint_model(ck)
    val = ck.get("val", {})
    source = prefilter_source(cfg)  # the prefilter the run trained behind, written with it
    prefilter = source.prefilter if source else None
    if validate_now:
        torch.set_num_threads(max(cfg.threads, 1))
        val = validate(model, cfg, CropSampler(cfg.data, cfg.val_fraction, cfg.crop, 0.0, cfg.seed, cfg.inputs,
                                               prefilter=prefilter)) or val
    meta = {
        "steps": ck["step"], "train_seconds": round(ck["train_seconds"], 1), "train_scenes": len(ck["scenes"]),
        "dataset": cfg.data, "crop": cfg.crop, "batch": cfg.batch, "loss": f"L1 + {cfg.ssim_weight} MS-SSIM ({cfg.loss_space} space)",
        "git": git_hash(), "device": cfg.device, **({"init": cfg.init} if cfg.init else {}), **val, **(extra or {}),
    }
    if source is not None:
        meta["aux_prefilter"] = source.meta.get("aux_prefilter", {})
    save_weights(out_path, model, ck["arch"], ck["model_kwargs"], cfg.inputs, meta, prefilter=prefilter)
    return meta
