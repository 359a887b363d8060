"""Checkpoints of a training run and exact resume.

A checkpoint holds everything that decides the next step: model, optimizer and scheduler
states, every RNG (python, numpy's global one, torch, and the crop sampler's own generator),
the step and the accumulated training wall time. Resuming from it therefore reproduces the
uninterrupted run bit for bit on CPU. Files follow OIDN's run-dir contract:
``RUN/checkpoints/checkpoint_<step>.pth`` plus ``RUN/checkpoints/latest`` (the newest file's
name), written atomically; only the last few are kept. They hold tensors, dicts and ints only,
so they load with ``weights_only=True`` too.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcdenoise.errors import McDenoiseError
from mcdenoise.io.atomic import atomic_output, is_stale

LATEST = "latest"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(_tuples(states["python"]))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(x: Any) -> Any:
    """torch.save turns python's nested state tuples into lists on some paths; put them back."""
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any], keep: int = 3) -> Path:
    ckpt_dir = checkpoint_dir(run_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"checkpoint_{step}.pth"
    with atomic_output(path) as tmp:
        torch.save({**payload, "step": step, "rng": rng_states()}, tmp)
    with atomic_output(ckpt_dir / LATEST) as tmp:
        Path(tmp).write_text(path.name + "\n")
    old = sorted(ckpt_dir.glob("checkpoint_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
    for p in old[:-keep] if keep > 0 else []:
        if p != path:
            p.unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    marker = checkpoint_dir(run_dir) / LATEST
    if not marker.is_file():
        return None
    path = checkpoint_dir(run_dir) / marker.read_text().strip()
    if not path.is_file():
        raise McDenoiseError(f"{marker} names {path.name}, which is missing; delete {marker} to start over")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise McDenoiseError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def restore(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            sampler: torch.Generator) -> dict[str, Any] | None:
    """Put a small run's newest checkpoint back (its model, optimizer, the generator its draws
    come from and the global RNGs) and return it, or None for a new run: how the runs with
    their own loop (``train-temporal``, ``train-prefilter``) resume exactly."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    ck = load_checkpoint(latest)
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    sampler.set_state(ck["sampler"])
    set_rng_states(ck["rng"])
    return ck


def load_latest(run_dir: str | Path) -> dict[str, Any]:
    """The newest checkpoint of a run, for writing its weights file: refused when the run has none."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise McDenoiseError(f"{run_dir}: no checkpoint to export; train first")
    return load_checkpoint(latest)


def tidy_temp_files(run_dir: str | Path) -> None:
    """Remove the temp files of checkpoints a killed run was writing (see :mod:`mcdenoise.io.atomic`)."""
    folder = checkpoint_dir(run_dir)
    for p in folder.iterdir() if folder.is_dir() else ():
        if is_stale(p):
            with contextlib.suppress(OSError):
                p.unlink()
