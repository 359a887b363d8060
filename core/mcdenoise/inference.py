"""Denoise one frame: the HDR transform, tiling with overlap, and the way back to radiance.

Tiles are cut so that their result equals the untiled result: each tile is enlarged by a
margin no smaller than the network's receptive radius (so zero padding at a tile edge never
reaches a kept pixel) and starts on the network's pooling grid (so pooling windows line up
with the whole-frame ones). Exposure is computed once per full frame. Tile inputs are built
lazily from the frame arrays, so memory grows with the tile, not with a 9-channel copy of an
8K frame.

Fast paths: the network runs channels-last (NHWC), which is both oneDNN's and cuDNN's
preferred conv layout *and* the layout of EXR arrays, so a tile goes from NumPy to the network
and back as a view, with no transposing copy. Every margin pixel is computed and thrown away,
so ``tile="auto"`` picks the largest tile that fits the memory at hand (often the whole
frame). On CUDA the network runs in fp16 (or bf16) under autocast and can be compiled.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mcdenoise import hdr
from mcdenoise.errors import DeviceError
from mcdenoise.model_io import LoadedModel

DEFAULT_TILE = 1024
EDGE_PAD = 8  # mirrored pixels around the frame, rounded up to the model's alignment
ProgressFn = Callable[[int, int], None]
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Share of free memory a tile may use: the rest is for the frame arrays, the EXR being read
# next, and on a workstation whatever else the artist has open.
CPU_MEMORY_SHARE = 0.25
GPU_MEMORY_SHARE = 0.6
MIN_AUTO_TILE, MAX_AUTO_TILE = 256, 8192
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_threads_configured = False


@dataclass
class FrameInputs:
    """Radiance and aux passes of one frame, as read from the EXR (float32, H x W x C)."""

    color: np.ndarray
    albedo: np.ndarray | None = None
    normal: np.ndarray | None = None


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


def build_input_hwc(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (h, w, C) for one window, C-contiguous, which is exactly an NHWC
    (channels-last) tensor; missing aux passes become zeros, which the shipped models are
    trained to treat as "no aux" (aux dropout)."""
    color = hdr.forward(frame.color[ys, xs], exposure)
    if not uses_aux:
        return np.ascontiguousarray(color)
    h, w = color.shape[:2]
    out = np.empty((h, w, 9), np.float32)
    out[..., 0:3] = color
    out[..., 3:6] = hdr.prepare_albedo(frame.albedo[ys, xs]) if frame.albedo is not None else 0.0
    out[..., 6:9] = hdr.prepare_normal(frame.normal[ys, xs]) if frame.normal is not None else 0.0
    return out


def build_input(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (C, h, w) for one window, for callers (training) that want NCHW."""
    return np.ascontiguousarray(build_input_hwc(frame, exposure, uses_aux, ys, xs).transpose(2, 0, 1))


def tile_grid(height: int, width: int, tile: int, margin: int, alignment: int):
    """Yield (kept window, input window) pairs as (y0, y1, x0, x1) tuples."""
    tile = max(_round_up(tile, alignment), alignment)
    margin = _round_up(margin, alignment)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            yield (y0, y1, x0, x1), (max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width))


def physical_cores() -> int:
    """Physical cores this process may run on. Hyper-threads share one core's vector units,
    so a conv net gains nothing from them and loses to the contention."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores, current = set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("physical id", "core id"):
                    current[key] = value.strip()
                elif not line.strip() and current:
                    cores.add((current.get("physical id"), current.get("core id")))
                    current = {}
    except OSError:
        pass
    if current:
        cores.add((current.get("physical id"), current.get("core id")))
    cores = {c for c in cores if c[1] is not None}  # ARM and some VMs list no core ids
    return max(1, min(allowed, len(cores))) if cores else max(1, allowed)


def configure_cpu_threads() -> int:
    """Set torch's intra-op threads to the physical core count once per process, unless the
    user chose (``OMP_NUM_THREADS`` or ``MCDENOISE_THREADS``), e.g. on a shared farm node."""
    global _threads_configured
    if not _threads_configured:
        _threads_configured = True
        wanted = os.environ.get("MCDENOISE_THREADS")
        if wanted:
            torch.set_num_threads(max(1, int(wanted)))
        elif not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(physical_cores())
    return torch.get_num_threads()


def choose_dtype(device: torch.device, precision: str = "auto", bf16_supported: bool | None = None) -> torch.dtype:
    """Compute dtype for a device. 'auto' is fp32 on CPU (without AMX, reduced precision conv
    is slower there) and fp16 on CUDA (tensor cores; our log-space activations stay far
    inside fp16's range). Asking for half precision on CPU is honoured, bf16 only where the
    GPU supports it."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
    dtype = PRECISIONS[precision]
    if dtype == torch.bfloat16 and device.type == "cuda":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if not bf16_supported:
            raise DeviceError("this GPU has no bfloat16 support; use --precision fp16")
    return dtype


def autocast_for(device: torch.device, dtype: torch.dtype):
    """Autocast context for a reduced-precision run, a no-op for fp32: weights stay fp32 and
    convs run in ``dtype``, so one loaded model serves every precision."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def activation_bytes_per_pixel(model: nn.Module, dtype: torch.dtype = torch.float32) -> int:
    """Peak activation memory per input pixel, a deliberate over-estimate: the widest
    full-resolution conv's output, about six such maps alive at once (skip, concat, conv
    in/out, allocator slack), plus 1/3 more for the coarser levels of a 2x pyramid."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first_in = convs[0].in_channels if convs else 9
    widest = max((m.out_channels for m in convs[:2]), default=64)
    if not hasattr(model, "alignment"):  # a plain stack (DnCNN): every layer at full res
        widest = max((m.out_channels for m in convs), default=64)
    element = torch.tensor([], dtype=dtype).element_size()
    return int(element * (first_in + 6 * widest * 4 / 3))


def tile_for_memory(budget_bytes: float, bytes_per_pixel: float, margin: int, alignment: int) -> int:
    """Largest kept tile side whose input window (tile + 2 margins, squared) fits the budget,
    on the alignment grid and clamped to [MIN_AUTO_TILE, MAX_AUTO_TILE]."""
    side = math.isqrt(max(int(budget_bytes // max(bytes_per_pixel, 1)), 0)) - 2 * _round_up(margin, alignment)
    side = (side // alignment) * alignment
    return int(min(max(side, MIN_AUTO_TILE), MAX_AUTO_TILE))


def available_memory(device: torch.device) -> int:
    """Free bytes on the device: CUDA's own count, or MemAvailable from /proc/meminfo."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # no /proc (macOS, Windows): assume a modest 4 GiB free


def auto_tile(model: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32) -> int:
    share = GPU_MEMORY_SHARE if device.type == "cuda" else CPU_MEMORY_SHARE
    margin = int(getattr(model, "receptive_radius", 32))
    alignment = int(getattr(model, "alignment", 1))
    return tile_for_memory(available_memory(device) * share, activation_bytes_per_pixel(model, dtype), margin, alignment)


def fast_model(model: nn.Module, device: torch.device, compile: bool = False) -> nn.Module:
    """The model in channels-last layout (converted in place, once) and, on request on
    CUDA, ``torch.compile``d; the compiled wrapper is cached per model. Compiling on CPU is
    refused: it costs minutes of a shared node for a few per cent."""
    if not getattr(model, "_mcdenoise_channels_last", False):
        model.to(memory_format=torch.channels_last)
        model._mcdenoise_channels_last = True
    if not compile:
        return model
    if device.type != "cuda":
        raise DeviceError("--compile is for CUDA only; on CPU leave it off")
    if model not in _compiled:
        _compiled[model] = torch.compile(model, dynamic=True)
    return _compiled[model]


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
    for done, ((y0, y1, x0, x1), (iy0, iy1, ix0, ix1)) in enumerate(windows, start=1):
        hwc = build_input_hwc(frame, exposure, loaded.uses_aux, slice(iy0, iy1), slice(ix0, ix1))
        x = torch.from_numpy(hwc).permute(2, 0, 1)[None]  # NCHW shape, NHWC memory: a view
        top, left = (edge if iy0 == 0 else 0), (edge if ix0 == 0 else 0)
        bottom, right = (edge if iy1 == height else 0), (edge if ix1 == width else 0)
        x = torch.nn.functional.pad(x, (left, right, top, bottom), mode=edge_mode)
        h, w = x.shape[2:]
        iy0, ix0 = iy0 - top, ix0 - left
        ph, pw = (-h) % alignment, (-w) % alignment
        if ph or pw:
            # Only tiles touching the bottom/right border get here, and since every window
            # starts on the alignment grid they pad exactly as the whole frame would.
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast_for(device, dtype):
            y = model(x)
        y = y[0, :, y0 - iy0 : y1 - iy0, x0 - ix0 : x1 - ix0].float().permute(1, 2, 0)
        out[y0:y1, x0:x1] = hdr.inverse(y.cpu().numpy(), exposure)
        if progress is not None:
            progress(done, len(windows))
    return out
