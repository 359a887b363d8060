"""The training loop: one top-to-bottom function, in the spirit of OIDN's ``train.py``.

Steps are counted globally across resumes; the LR schedule (linear warm-up, then cosine to
zero) is a pure function of the step, so stopping early (``minutes``, ``stop_after``) and
resuming later follows the same curve. Stopping for any reason leaves a checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.errors import McDenoiseError
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.models.loader import LoadedModel, load_model, resolve_device, save_weights
from mcdenoise.models import build_model
from mcdenoise.models.unet import widen
from mcdenoise.metrics import psnr_tonemapped, ssim_tonemapped
from mcdenoise.training import checkpoint, config as config_mod
from mcdenoise.training.config import TrainConfig
from mcdenoise.training.data import CropSampler
from mcdenoise.training.losses import denoise_loss

INPUTS = "color+albedo+normal"


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def crop_workers(cfg: TrainConfig, device: torch.device) -> int:
    """Threads building crops. On a 2-core CPU they would only steal cores from the network,
    so none; a GPU eats batches faster than one Python thread makes them."""
    if cfg.workers >= 0:
        return cfg.workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def init_from_weights(model: torch.nn.Module, cfg: TrainConfig, kwargs: dict[str, Any]) -> None:
    """Start a fresh run from a weights file: a shipped model to fine-tune on new data, or a
    narrower U-Net to grow into a wider one (``widen``: the run starts at its quality)."""
    loaded = load_model(cfg.init)
    same_io = all(loaded.config.get(k) == kwargs.get(k) for k in ("in_channels", "out_channels"))
    if loaded.arch == cfg.arch == "unet" and loaded.config != kwargs and same_io:
        try:  # widen is the one place that knows which widths can grow into which
            grown = widen(loaded.model, kwargs["widths"])
        except ValueError as exc:
            raise McDenoiseError(f"{cfg.init}: {exc}; pick --widths that match or grow the file's, or another --init") from None
        model.load_state_dict(grown.state_dict())
        print(f"train: widened {cfg.init} from widths {loaded.config['widths']} to {kwargs['widths']}", flush=True)
        return
    if loaded.arch != cfg.arch or loaded.config != kwargs:
        raise McDenoiseError(f"{cfg.init}: weights are {loaded.arch} {loaded.config}, the run trains {cfg.arch} {kwargs}; "
                             "pick matching --arch/--widths (or wider --widths, to grow a U-Net) or another --init")
    model.load_state_dict(loaded.model.state_dict())


def git_hash() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@torch.no_grad()
def validate(model: torch.nn.Module, cfg: TrainConfig, sampler: CropSampler) -> dict[str, float]:
    """PSNR/SSIM of tonemapped whole frames of the held-out scenes at every sample count,
    denoised through the inference path (``denoise_frame``) exactly as users will run it."""
    if not sampler.val:
        return {}
    # A copy, because the inference path may change the module (memory format, eval mode)
    # and the training model must stay exactly as the checkpoint will restore it.
    loaded = LoadedModel(copy.deepcopy(model).eval(), cfg.arch, cfg.model_kwargs(), INPUTS)
    psnrs, ssims = [], []
    for entry in sampler.val:
        s = sampler.scene(entry)
        ref_exposure = hdr.autoexposure(s.ref)
        for spp, frame in s.noisy.items():
            out = denoise_frame(loaded, frame, tile=None, exposure=s.exposure[spp])
            psnrs.append(psnr_tonemapped(out, s.ref, ref_exposure))
            ssims.append(ssim_tonemapped(out, s.ref, ref_exposure))
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)), "val_frames": len(psnrs)}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def train(cfg: TrainConfig, stop_after: int = 0) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.run_dir`` up to ``cfg.steps`` steps, the ``cfg.minutes``
    budget, or ``stop_after`` steps in this call, whichever comes first. Returns a summary."""
    from tqdm import tqdm

    # 1. Run folder and resolved config.
    run_dir = Path(cfg.run_dir)
    (run_dir / "log").mkdir(parents=True, exist_ok=True)
    config_mod.save(cfg, run_dir / "config.json")
    checkpoint.tidy_temp_files(run_dir)

    # 2. Device, threads, seeds.
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    use_amp = device.type == "cuda"

    # 3. Data.
    sampler = CropSampler(cfg.data, cfg.val_fraction, cfg.crop, cfg.aux_dropout, cfg.seed)

    # 4. Model, optimizer, schedule.
    kwargs = cfg.model_kwargs()
    model = build_model(cfg.arch, **kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.steps))

    # 5. Resume from the newest checkpoint when there is one.
    step, train_seconds, last_val = 0, 0.0, {}
    latest = checkpoint.latest_checkpoint(run_dir)
    if latest is not None:
        ck = checkpoint.load_checkpoint(latest)
        if ck["arch"] != cfg.arch or ck["model_kwargs"] != kwargs:
            raise McDenoiseError(f"{latest}: checkpoint is {ck['arch']} {ck['model_kwargs']}, config asks for {cfg.arch} {kwargs}; use another --run-dir")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        # --lr and --steps may change on resume (e.g. to fit a time budget); unchanged, this is a no-op.
        scheduler.base_lrs = [cfg.lr for _ in scheduler.base_lrs]
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(ck["step"], cfg.warmup, cfg.steps)
        sampler.set_state(ck["sampler"])
        checkpoint.set_rng_states(ck["rng"])
        step, train_seconds, last_val = ck["step"], ck["train_seconds"], ck.get("val", {})
    elif cfg.init:
        init_from_weights(model, cfg, kwargs)

    # 5b. With workers, batch n+1 is drawn and built while the device runs step n. The sampler
    # state saved in a checkpoint is the one from before the batch not yet trained on, so a
    # resumed run sees exactly the batches an uninterrupted one would.
    workers = crop_workers(cfg, device)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="crops") if workers > 0 else None
    prefetch = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if pool is not None else None

    def draw_batch() -> tuple[dict, np.ndarray, np.ndarray]:
        state = sampler.state()
        return (state, *sampler.batch(cfg.batch, pool))

    pending: list[Future] = []

    def next_batch() -> tuple[np.ndarray, np.ndarray]:
        if prefetch is None:
            return sampler.batch(cfg.batch)
        future = pending.pop() if pending else prefetch.submit(draw_batch)
        _, x, y = future.result()
        pending.append(prefetch.submit(draw_batch))
        return x, y

    def sampler_state() -> dict:
        if pending:
            try:
                return pending[0].result()[0]
            except Exception:  # the failed batch is re-drawn on resume
                pass
        return sampler.state()

    def save() -> Path:
        payload = {
            "arch": cfg.arch, "model_kwargs": kwargs, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "sampler": sampler_state(), "train_seconds": train_seconds, "val": last_val,
            "config": asdict(cfg), "scenes": [e.index for e in sampler.train],
        }
        return checkpoint.save_checkpoint(run_dir, step, payload, cfg.keep_checkpoints)

    # 6. The loop. SIGTERM (kill, a job scheduler's stop) ends it after the current step, so a
    # stopped run always leaves a checkpoint; Ctrl-C does the same through KeyboardInterrupt.
    stop_requested = []
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True)) if _main_thread() else None
    log = open(run_dir / "log" / "train.jsonl", "a")
    start = time.monotonic()
    last_ckpt = last_reload = start
    first_step = step
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, unit="step", dynamic_ncols=True)
    try:
        while step < cfg.steps:
            if stop_after and step - first_step >= stop_after:
                break
            if cfg.minutes and time.monotonic() - start >= cfg.minutes * 60:
                break
            if stop_requested:
                break
            t0 = time.monotonic()
            # 6a. An augmented batch of crops.
            x, y = next_batch()
            x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            # 6b. Forward, loss in the HDR-transformed space, backward, update.
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model(x)
            loss = denoise_loss(pred.float(), y, cfg.ssim_weight)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise McDenoiseError(f"loss became {loss_value} at step {step}; lower --lr and resume")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            train_seconds += time.monotonic() - t0
            bar.update(1)
            # 6c. Logging, validation, checkpoints, new scenes.
            record: dict[str, Any] = {}
            if step % cfg.log_every == 0 or step == cfg.steps:
                record = {"step": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0], "train_s": round(train_seconds, 1)}
                bar.set_postfix(loss=f"{loss_value:.4f}")
            if cfg.val_every and step % cfg.val_every == 0:
                last_val = validate(model, cfg, sampler)
                record = {**record, "step": step, **last_val}
                if last_val:
                    bar.write(f"step {step}: val PSNR {last_val['val_psnr']:.2f} dB, SSIM {last_val['val_ssim']:.4f}")
            if record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            now = time.monotonic()
            if now - last_ckpt >= cfg.checkpoint_minutes * 60:
                save()
                last_ckpt = now
            if cfg.reload_minutes and now - last_reload >= cfg.reload_minutes * 60:
                if pending:
                    pending[0].result()  # no drawing while the scene list changes
                sampler.reload()
                last_reload = now
    finally:
        # 7. Stopping for any reason (budget, Ctrl-C, error) leaves a checkpoint.
        bar.close()
        if step > first_step:
            save()
        for executor in (prefetch, pool):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        log.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return {"step": step, "steps": cfg.steps, "train_seconds": train_seconds, "val": last_val,
            "train_scenes": len(sampler.train), "val_scenes": len(sampler.val), "run_dir": str(run_dir)}


def export(run_dir: str | Path, out_path: str | Path, validate_now: bool = True) -> dict[str, Any]:
    """Write the newest checkpoint's model as a weights file (``model_io.save_weights``) with
    the facts a model card needs in its metadata."""
    run_dir = Path(run_dir)
    latest = checkpoint.latest_checkpoint(run_dir)
    if latest is None:
        raise McDenoiseError(f"{run_dir}: no checkpoint to export; train first")
    ck = checkpoint.load_checkpoint(latest)
    cfg = TrainConfig(**ck["config"])
    model = build_model(ck["arch"], **ck["model_kwargs"])
    model.load_state_dict(ck["model"])
    model.eval()
    val = ck.get("val", {})
    if validate_now:
        torch.set_num_threads(max(cfg.threads, 1))
        val = validate(model, cfg, CropSampler(cfg.data, cfg.val_fraction, cfg.crop, 0.0, cfg.seed)) or val
    meta = {
        "steps": ck["step"], "train_seconds": round(ck["train_seconds"], 1), "train_scenes": len(ck["scenes"]),
        "dataset": cfg.data, "crop": cfg.crop, "batch": cfg.batch, "loss": f"L1 + {cfg.ssim_weight} MS-SSIM",
        "git": git_hash(), "device": cfg.device, **({"init": cfg.init} if cfg.init else {}), **val,
    }
    save_weights(out_path, model, ck["arch"], ck["model_kwargs"], INPUTS, meta)
    return meta
