"""Denoise one frame: the HDR transform, tiling with overlap, and the way back to radiance.

Tiles are cut so that their result equals the untiled result: each tile is enlarged by a
margin no smaller than the network's receptive radius (so zero padding at a tile edge never
reaches a kept pixel) and starts on the network's pooling grid (so pooling windows line up
with the whole-frame ones). Exposure is computed once per full frame. Tile inputs are built
lazily from the frame arrays, so memory grows with the tile, not with a 9-channel copy of an
8K frame.

Fast paths: the network runs channels-last (NHWC), which is both oneDNN's and cuDNN's
preferred conv layout *and* the layout of EXR arrays, so no transposing copy is ever made. A
tile's passes are copied once, raw, into the buffer the network reads, on the model's device;
the HDR transform and the mirrored frame border are then applied there in place (on a GPU the
host used to spend longer on them than the network on the frame). Every margin pixel is computed and thrown away,
so ``tile="auto"`` picks the largest tile that fits the memory at hand (often the whole
frame). On CUDA the network runs in fp16 (or bf16) under autocast and can be compiled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.inference.encode import FrameInputs, fill_input
from mcdenoise.inference.runtime import DEFAULT_TILE, auto_tile, autocast_for, choose_dtype, configure_cpu_threads, fast_model
from mcdenoise.inference.tiling import EDGE_PAD, _round_up, extend_lines, tile_grid
from mcdenoise.models.loader import LoadedModel

ProgressFn = Callable[[int, int], None]


@torch.inference_mode()
def denoise_frame(
    loaded: LoadedModel,
    frame: FrameInputs,
    tile: int | str | None = DEFAULT_TILE,
    exposure: float | None = None,
    progress: ProgressFn | None = None,
    *,
    precision: str = "auto",
    compile: bool = False,
    out_dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Return the denoised colour (H, W, 3) float32 in the input's radiance units.

    ``tile=None`` or 0 runs the frame in one piece, ``"auto"`` picks the largest tile that
    fits free memory. ``progress(done, total)`` is called after each tile; raising from it
    (e.g. :class:`mcdenoise.errors.Cancelled`) aborts cleanly. ``precision`` is auto, fp32,
    fp16 or bf16 (see :func:`choose_dtype`); ``compile`` uses ``torch.compile`` (CUDA only).
    ``out_dtype=np.float16`` halves the result's memory when it is written to a half pass
    anyway (the batch does this to keep an 8K frame within 2 GiB).
    """
    device = next(loaded.model.parameters()).device
    if device.type == "cpu":
        configure_cpu_threads()
    dtype = choose_dtype(device, precision)
    model = fast_model(loaded.model, device, compile)
    height, width = frame.color.shape[:2]
    if exposure is None:
        exposure = hdr.autoexposure(frame.color)
    alignment = int(getattr(loaded.model, "alignment", 1))
    margin = int(getattr(loaded.model, "receptive_radius", 32))
    if tile == "auto":
        tile = auto_tile(loaded.model, device, dtype)
    tile = int(tile or max(height, width))
    windows = list(tile_grid(height, width, tile, margin, alignment))
    # Frame edges get a mirrored border (a multiple of the alignment, so tiles keep the whole
    # frame's pooling grid): against the network's zero padding the outermost pixel row and
    # column came out visibly wrong (error ~60x the interior on a 128x128 Cycles frame).
    edge = _round_up(EDGE_PAD, alignment)
    edge_mode = "reflect" if min(height, width) > edge else "replicate"
    out = np.empty((height, width, 3), out_dtype)
    channels = 9 if loaded.uses_aux else 3
    for done, ((y0, y1, x0, x1), (iy0, iy1, ix0, ix1)) in enumerate(windows, start=1):
        h, w = iy1 - iy0, ix1 - ix0
        top, left = (edge if iy0 == 0 else 0), (edge if ix0 == 0 else 0)
        bottom, right = (edge if iy1 == height else 0), (edge if ix1 == width else 0)
        # Only tiles touching the bottom/right border need alignment padding, and since every
        # window starts on the alignment grid they pad exactly as the whole frame would.
        ph, pw = (-(h + top + bottom)) % alignment, (-(w + left + right)) % alignment
        buf = torch.empty((top + h + bottom + ph, left + w + right + pw, channels), device=device)
        fill_input(buf[top : top + h, left : left + w], frame, exposure, loaded.uses_aux, slice(iy0, iy1), slice(ix0, ix1))
        extend_lines(buf[:, left : left + w], 0, top, top + h, bottom, ph, edge_mode)
        extend_lines(buf, 1, left, left + w, right, pw, edge_mode)
        x = buf.permute(2, 0, 1)[None]  # NCHW shape, NHWC (channels-last) memory: a view
        with autocast_for(device, dtype):
            y = model(x)
        oy, ox = y0 - iy0 + top, x0 - ix0 + left
        # A contiguous fp32 copy of the kept window: the transform vectorises only on that.
        y = y[0, :, oy : oy + y1 - y0, ox : ox + x1 - x0].permute(1, 2, 0).to(torch.float32, memory_format=torch.contiguous_format)
        y = hdr.inverse_(y, exposure)
        kept = torch.from_numpy(out[y0:y1, x0:x1])
        kept.copy_(y.to(kept.dtype))  # converted on the device: a half result crosses to the host at half size
        if progress is not None:
            progress(done, len(windows))
    return out
