"""Denoise one frame: the HDR transform, tiling with overlap, and the way back to radiance.

Tiles are cut so that their result equals the untiled result (:mod:`mcdenoise.inference.tiling`);
which tile a frame gets is the runtime's decision (:meth:`Runtime.tile_for`). Exposure is
computed once per full frame. Tile inputs are built lazily from the frame arrays, so memory
grows with the tile, not with a 9-channel copy of an 8K frame.

Fast paths: the network runs channels-last (NHWC), which is both oneDNN's and cuDNN's
preferred conv layout *and* the layout of EXR arrays, so no transposing copy is ever made. A
tile's passes are copied once, raw, into the buffer the network reads, on the model's device;
the HDR transform and the mirrored frame border are then applied there in place, so the host
does no per-pixel work a GPU could do. On CUDA the network runs in fp16 (or bf16) under
autocast and can be compiled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.features import channel_count
from mcdenoise.inference.encode import FrameInputs, fill_input
from mcdenoise.inference.runtime import Runtime, autocast_for
from mcdenoise.inference.tiling import EDGE_PAD, _round_up, extend_lines, tile_grid
from mcdenoise.models.loader import LoadedModel

ProgressFn = Callable[[int, int], None]


@torch.inference_mode()
def denoise_frame(
    loaded: LoadedModel,
    frame: FrameInputs,
    tile: int | None = None,
    exposure: float | None = None,
    progress: ProgressFn | None = None,
    *,
    runtime: Runtime | None = None,
    out_dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Return the denoised colour (H, W, 3) float32 in the input's radiance units.

    ``tile`` is the kept tile side, None for the whole frame in one piece (callers that
    follow the memory policy get it from :meth:`Runtime.tile_for`). ``progress(done, total)``
    is called after each tile; raising from it (e.g. :class:`mcdenoise.errors.Cancelled`)
    aborts cleanly. ``runtime`` gives the precision, CPU threads and compile (default: the
    model's device at auto precision). ``out_dtype=np.float16`` halves the result's memory
    when it is written to a half pass anyway (the batch does this to keep an 8K frame within
    its budget).
    """
    device = next(loaded.model.parameters()).device
    runtime = runtime or Runtime(device)
    if runtime.device.type != device.type:
        raise ValueError(f"the model is on {device} but the runtime is for {runtime.device}")
    if exposure is None:
        exposure = hdr.autoexposure(frame.color)
    if loaded.prefilter is not None:  # the aux the colour network was trained on: cleaned first
        from mcdenoise.inference.prefilter import clean_aux

        frame = clean_aux(loaded.prefilter, frame, tile, runtime)
    height, width = frame.color.shape[:2]
    out = np.empty((height, width, 3), out_dtype)
    limit = float(np.finfo(out_dtype).max)  # radiance past the pass's pixel type is kept at its largest value, not Inf

    def fill(buf: torch.Tensor, ys: slice, xs: slice) -> None:
        fill_input(buf, frame, exposure, loaded.inputs, ys, xs)

    def finish(y: torch.Tensor) -> torch.Tensor:
        return hdr.inverse_(y, exposure).clamp_(max=limit)

    run_tiled(loaded.model, channel_count(loaded.inputs), fill, finish, out, tile, runtime, progress)
    return out


def run_tiled(
    model: torch.nn.Module,
    channels: int,
    fill: Callable[[torch.Tensor, slice, slice], None],
    finish: Callable[[torch.Tensor], torch.Tensor],
    out: np.ndarray,
    tile: int | None,
    runtime: Runtime,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Run ``model`` over a frame in tiles whose results equal the untiled result, into ``out``
    (H, W, C): the one tiling loop, for the colour network and the aux prefilter alike.
    ``fill(buf, ys, xs)`` writes the network input of the frame window (ys, xs) into ``buf``
    (h, w, ``channels``) on the model's device; ``finish`` maps the kept output (h, w, C, fp32)
    to what ``out`` holds."""
    device = next(model.parameters()).device
    net = runtime.prepare_model(model)
    height, width = out.shape[:2]
    alignment, margin = model.alignment, model.receptive_radius
    windows = list(tile_grid(height, width, tile or max(height, width), margin, alignment))
    # Frame edges get a mirrored border (a multiple of the alignment, so tiles keep the whole
    # frame's pooling grid): against the network's zero padding the outermost pixel row and
    # column come out visibly wrong.
    edge = _round_up(EDGE_PAD, alignment)
    edge_mode = "reflect" if min(height, width) > edge else "replicate"
    for done, ((y0, y1, x0, x1), (iy0, iy1, ix0, ix1)) in enumerate(windows, start=1):
        h, w = iy1 - iy0, ix1 - ix0
        top, left = (edge if iy0 == 0 else 0), (edge if ix0 == 0 else 0)
        bottom, right = (edge if iy1 == height else 0), (edge if ix1 == width else 0)
        # Only tiles touching the bottom/right border need alignment padding, and since every
        # window starts on the alignment grid they pad exactly as the whole frame would.
        ph, pw = (-(h + top + bottom)) % alignment, (-(w + left + right)) % alignment
        buf = torch.empty((top + h + bottom + ph, left + w + right + pw, channels), device=device)
        fill(buf[top : top + h, left : left + w], slice(iy0, iy1), slice(ix0, ix1))
        extend_lines(buf[:, left : left + w], 0, top, top + h, bottom, ph, edge_mode)
        extend_lines(buf, 1, left, left + w, right, pw, edge_mode)
        x = buf.permute(2, 0, 1)[None]  # NCHW shape, NHWC (channels-last) memory: a view
        with autocast_for(device, runtime.dtype):
            y = net(x)
        oy, ox = y0 - iy0 + top, x0 - ix0 + left
        # A contiguous fp32 copy of the kept window: the transform vectorises only on that.
        y = finish(y[0, :, oy : oy + y1 - y0, ox : ox + x1 - x0].permute(1, 2, 0).to(torch.float32, memory_format=torch.contiguous_format))
        kept = torch.from_numpy(out[y0:y1, x0:x1])
        kept.copy_(y.to(kept.dtype))  # converted on the device: a half result crosses to the host at half size
        if progress is not None:
            progress(done, len(windows))
    return out
