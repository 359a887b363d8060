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

import contextlib
import ctypes
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
_malloc_keeping = False


@dataclass
class FrameInputs:
    """Radiance and aux passes of one frame, as read from the EXR (float32, H x W x C)."""

    color: np.ndarray
    albedo: np.ndarray | None = None
    normal: np.ndarray | None = None


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A pass window as a tensor, a view where torch can take one: read-only arrays and
    reversed views (negative strides) are copied, any float dtype is accepted."""
    if not a.flags.writeable or any(step < 0 for step in a.strides):
        a = np.array(a)
    return torch.from_numpy(a)


def fill_input(buf: torch.Tensor, frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> torch.Tensor:
    """Write the network input of one window into ``buf`` (h, w, C), on any device.

    Each pass is uploaded raw and transformed on the device, in a contiguous 3-channel
    scratch tensor (vectorised log1p on a 3-of-9-channel strided view is ~20x slower on CPU),
    then copied into its channels of the buffer the network reads. Missing aux passes become
    zeros, which the shipped models are trained to treat as "no aux" (aux dropout).
    """
    scratch = torch.empty(buf.shape[:2] + (3,), device=buf.device)
    buf[..., 0:3] = hdr.forward_(scratch.copy_(_tensor(frame.color[ys, xs])), exposure)
    if uses_aux:
        for lo, hi, passes, prepare in ((3, 6, frame.albedo, hdr.prepare_albedo_), (6, 9, frame.normal, hdr.prepare_normal_)):
            if passes is None:
                buf[..., lo:hi] = 0.0
            else:
                buf[..., lo:hi] = prepare(scratch.copy_(_tensor(passes[ys, xs])))
    return buf


def build_input_hwc(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (h, w, C) for one window, C-contiguous, which is exactly an NHWC
    (channels-last) tensor."""
    h, w = frame.color[ys, xs].shape[:2]
    return fill_input(torch.empty((h, w, 9 if uses_aux else 3)), frame, exposure, uses_aux, ys, xs).numpy()


def build_input(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (C, h, w) for one window, for callers (training) that want NCHW."""
    return np.ascontiguousarray(build_input_hwc(frame, exposure, uses_aux, ys, xs).transpose(2, 0, 1))


def extend_lines(buf: torch.Tensor, dim: int, start: int, stop: int, after: int, extra: int, mode: str) -> None:
    """Fill the lines of ``buf`` along ``dim`` around the filled span [start, stop): ``start``
    lines before it and ``after`` lines after it mirror the span (``mode`` "reflect", the edge
    line not repeated, like ``F.pad``) or repeat its edge line ("replicate"); then the last
    line is repeated ``extra`` more times (the alignment padding). Doing this in place for
    rows and then columns gives exactly ``F.pad``'s result without a second frame-sized copy.
    """

    def lines(a: int, b: int) -> torch.Tensor:
        return buf.narrow(dim, a, b - a)

    if start:
        dst = lines(0, start)
        dst.copy_(lines(start + 1, 2 * start + 1).flip(dim) if mode == "reflect" else lines(start, start + 1).expand_as(dst))
    if after:
        dst = lines(stop, stop + after)
        dst.copy_(lines(stop - 1 - after, stop - 1).flip(dim) if mode == "reflect" else lines(stop - 1, stop).expand_as(dst))
    end = stop + after
    if extra:
        dst = lines(end, end + extra)
        dst.copy_(lines(end - 1, end).expand_as(dst))


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


def _mallopt(keep: bool) -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # glibc's mallopt parameter numbers
        if keep:
            return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
        ok = bool(libc.mallopt(m_mmap_max, 65536)) and bool(libc.mallopt(m_trim_threshold, 128 << 10))  # glibc's defaults
        libc.malloc_trim(0)
        return ok
    except (OSError, AttributeError):
        return False  # no glibc (macOS, Windows, musl): its allocator is left as it is


def keep_freed_memory() -> bool:
    """Stop glibc from returning big freed blocks to the kernel between convolutions.

    glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free,
    so each full-resolution activation of a 1080p frame (~200 MB) is page-faulted in anew,
    layer after layer, frame after frame: that kernel work was ~40 % of a 1080p frame's
    time on CPU (1.35 s -> 0.85 s without it). Serving them from the heap and not trimming
    it keeps the pages mapped; the process holds its peak memory until it exits, which is
    what a denoise, batch, bench or train process does anyway, except for frames that fill a
    memory budget (see :func:`freed_memory_returned`). Called by the CLI only, never inside
    Blender, whose memory is not ours to tune. Returns False where there is no glibc (macOS,
    Windows, musl), which keeps the default behaviour.
    """
    global _malloc_keeping
    if not _malloc_keeping:
        _malloc_keeping = _mallopt(keep=True)
    return _malloc_keeping


def keeping_freed_memory() -> bool:
    """Whether this process keeps freed memory mapped (:func:`keep_freed_memory` took effect)."""
    return _malloc_keeping


@contextlib.contextmanager
def freed_memory_returned():
    """Within this block glibc returns freed memory at once, as by default. The batch uses it
    for sequences whose frames fill ``--max-memory``: on 8K frames within 2 GiB the heap that
    :func:`keep_freed_memory` keeps (read and write buffers, tiles of several sizes) took the
    peak past the budget. A no-op unless the process keeps freed memory."""
    if not _malloc_keeping:
        yield
        return
    _mallopt(keep=False)
    try:
        yield
    finally:
        _mallopt(keep=True)


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
