"""Denoise one frame: the HDR transform, tiling with overlap, and the way back to radiance.

Tiles are cut so that their result equals the untiled result: each tile is enlarged by a
margin no smaller than the network's receptive radius (so zero padding at a tile edge never
reaches a kept pixel) and starts on the network's pooling grid (so pooling windows line up
with the whole-frame ones). Exposure is computed once per full frame. Tile inputs are built
lazily from the frame arrays, so memory grows with the tile, not with a 9-channel copy of an
8K frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.model_io import LoadedModel

DEFAULT_TILE = 1024
ProgressFn = Callable[[int, int], None]


@dataclass
class FrameInputs:
    """Radiance and aux passes of one frame, as read from the EXR (float32, H x W x C)."""

    color: np.ndarray
    albedo: np.ndarray | None = None
    normal: np.ndarray | None = None


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


def build_input(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (C, h, w) for one window; missing aux passes become zeros, which the
    shipped models are trained to treat as "no aux" (aux dropout)."""
    color = hdr.forward(frame.color[ys, xs], exposure)
    planes = [color]
    if uses_aux:
        h, w = color.shape[:2]
        albedo = hdr.prepare_albedo(frame.albedo[ys, xs]) if frame.albedo is not None else np.zeros((h, w, 3), np.float32)
        normal = hdr.prepare_normal(frame.normal[ys, xs]) if frame.normal is not None else np.zeros((h, w, 3), np.float32)
        planes += [albedo, normal]
    return np.ascontiguousarray(np.concatenate(planes, axis=-1).transpose(2, 0, 1))


def tile_grid(height: int, width: int, tile: int, margin: int, alignment: int):
    """Yield (kept window, input window) pairs as (y0, y1, x0, x1) tuples."""
    tile = max(_round_up(tile, alignment), alignment)
    margin = _round_up(margin, alignment)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            yield (y0, y1, x0, x1), (max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width))


@torch.inference_mode()
def denoise_frame(
    loaded: LoadedModel,
    frame: FrameInputs,
    tile: int | None = DEFAULT_TILE,
    exposure: float | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Return the denoised colour (H, W, 3) float32 in the input's radiance units.

    ``tile=None`` or 0 runs the frame in one piece. ``progress(done, total)`` is called after
    each tile; raising from it (e.g. :class:`mcdenoise.errors.Cancelled`) aborts cleanly.
    """
    model = loaded.model
    device = next(model.parameters()).device
    height, width = frame.color.shape[:2]
    if exposure is None:
        exposure = hdr.autoexposure(frame.color)
    alignment = int(getattr(model, "alignment", 1))
    margin = int(getattr(model, "receptive_radius", 32))
    tile = tile or max(height, width)
    windows = list(tile_grid(height, width, tile, margin, alignment))
    out = np.empty((height, width, 3), np.float32)
    for done, ((y0, y1, x0, x1), (iy0, iy1, ix0, ix1)) in enumerate(windows, start=1):
        x = torch.from_numpy(build_input(frame, exposure, loaded.uses_aux, slice(iy0, iy1), slice(ix0, ix1)))[None]
        h, w = x.shape[-2:]
        ph, pw = (-h) % alignment, (-w) % alignment
        if ph or pw:
            # Only tiles touching the bottom/right border get here, and since every window
            # starts on the alignment grid they pad exactly as the whole frame would.
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        y = model(x.to(device)).float()[0, :, :h, :w].cpu().numpy()
        y = y[:, y0 - iy0 : y1 - iy0, x0 - ix0 : x1 - ix0].transpose(1, 2, 0)
        out[y0:y1, x0:x1] = hdr.inverse(y, exposure)
        if progress is not None:
            progress(done, len(windows))
    return out
