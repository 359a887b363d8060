"""Shared by the batch and bad-input tests: a tiny random U-Net weights file (tests check the
plumbing, not the shipped model's quality), a frame sequence writer and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenEXR
import torch

from exr_fixtures import write_blender_like
from mcdenoise.models.loader import save_weights
from mcdenoise.models import build_model

TINY_UNET = {"in_channels": 9, "out_channels": 3, "widths": [8, 8, 8, 8, 8]}


def make_tiny_weights(path: Path, inputs: str = "color+albedo+normal") -> Path:
    torch.manual_seed(0)
    config = dict(TINY_UNET, in_channels=9 if inputs != "color" else 3)
    save_weights(path, build_model("unet", **config), "unet", config, inputs)
    return path


def write_sequence(folder: Path, frames, h: int = 40, w: int = 56, name: str = "shot_{:04d}.exr", **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in frames:
        path = folder / name.format(n)
        write_blender_like(path, h=h, w=w, seed=n, **kw)
        paths.append(path)
    return paths


def run_cli(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MCDENOISE_THREADS="1")
    return subprocess.run([sys.executable, "-m", "mcdenoise", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def denoised_pass(path: Path, pass_name: str = "Denoised") -> np.ndarray:
    """The written pass's channels, straight from the file (no reader logic in between)."""
    f = OpenEXR.File(str(path), separate_channels=True)
    chans = {n: c.pixels for part in f.parts for n, c in part.channels.items() if f".{pass_name}." in f".{n}"}
    assert chans, f"{path} has no {pass_name} pass"
    return np.stack([chans[n] for n in sorted(chans)], -1)


def leftovers(folder: Path) -> list[str]:
    """Temp files an atomic write would leave if it were not atomic."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)
