"""Display-referred previews (PNG) of linear HDR images: for the README demo, benchmarks and
the add-on's screenshots. Previews only; nothing here feeds back into EXR files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mcdenoise import hdr
from mcdenoise.io.atomic import atomic_output


_SRGB_KNEE = 0.0031308


def display(x: torch.Tensor) -> torch.Tensor:
    """Exposure-scaled linear radiance -> sRGB-encoded [0, 1): Reinhard on each channel, then
    the sRGB curve. The one definition of the space benchmarks score in: :func:`tonemap` runs it
    on images, and the training loss (``training.losses``) on the network's output. Negative
    values, which a network's output may hold and a render never does, continue the curve's
    linear toe, so a loss computed here still has a gradient that pushes them back up."""
    mapped = torch.where(x > 0, x / (1 + x.clamp(min=0)), x)
    curve = 1.055 * mapped.clamp(min=_SRGB_KNEE).pow(1 / 2.4) - 0.055
    return torch.where(mapped <= _SRGB_KNEE, 12.92 * mapped, curve)


def tonemap(rgb: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """Linear radiance -> sRGB-encoded [0, 1] (:func:`display` of the cleaned radiance times
    ``exposure``). The same curve is used for the PSNR/SSIM of benchmarks, so numbers match
    what one sees."""
    x = hdr.sanitize(rgb) * np.float32(exposure)
    return display(torch.from_numpy(x)).numpy()


def to_uint8(rgb: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    return (np.clip(tonemap(rgb, exposure), 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Save a uint8 (H, W, 3) image atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def side_by_side(images: list[np.ndarray], exposure: float | None = None, gap: int = 4) -> np.ndarray:
    """Tonemap linear images with one shared exposure and place them left to right."""
    if exposure is None:
        exposure = hdr.autoexposure(images[-1])  # geometric-mean grey shows as mid grey
    tiles = [to_uint8(im, exposure) for im in images]
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    canvas = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for t in tiles:
        canvas[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return canvas
