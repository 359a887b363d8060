"""Display-referred previews (PNG) of linear HDR images: for the README demo, benchmarks and
the add-on's screenshots. Previews only; nothing here feeds back into EXR files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from mcdenoise import hdr
from mcdenoise.io.atomic import atomic_output


def tonemap(rgb: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """Linear radiance -> sRGB-encoded [0, 1] (Reinhard on each channel, then the sRGB curve).
    The same curve is used for the PSNR/SSIM of benchmarks, so numbers match what one sees."""
    x = hdr.sanitize(rgb) * np.float32(exposure)
    x = x / (1.0 + x)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


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
