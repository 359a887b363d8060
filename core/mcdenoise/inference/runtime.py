"""How a model runs on this machine: device, precision, CPU threads, the allocator, and the
memory budget that decides the tile size."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import weakref

import torch
from torch import nn

from mcdenoise.errors import DeviceError
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.tiling import _round_up
from mcdenoise.models.loader import LoadedModel

DEFAULT_TILE = 1024
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Share of free memory a tile may use: the rest is for the frame arrays, the EXR being read
# next, and on a workstation whatever else the artist has open.
CPU_MEMORY_SHARE = 0.25
GPU_MEMORY_SHARE = 0.6
MIN_AUTO_TILE, MAX_AUTO_TILE = 256, 8192
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_threads_configured = False
_malloc_keeping = False
# What the process holds besides frames and network activations: Python, torch, OpenEXR
# (~250 MB) and allocator slack, which on an 8K frame measured another ~200 MB.
PROCESS_BASE_BYTES = 512 << 20


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


def tile_for_budget(loaded: LoadedModel, inputs: FrameInputs, tile: int | str | None, max_memory: int | None, result_itemsize: int = 4) -> int | str | None:
    """``tile``, or a smaller one when the frame is so large that its arrays plus the network's
    working memory would pass ``max_memory`` bytes (CPU). On a GPU the whole-frame request
    (``None``) becomes the largest tile its free memory holds.

    With the balanced model within 2 GiB, an 8K frame (its passes already take ~1 GB) runs in
    640-pixel tiles and a 1080p frame in two 1152-pixel tiles. Tiled output equals untiled output, so
    this changes memory and time, never the result. ``result_itemsize`` is 2 when the result
    comes back in half (a half colour pass), which the budget counts too.
    """
    device = next(loaded.model.parameters()).device
    if device.type != "cpu":
        return tile or "auto"
    if not max_memory or tile == "auto":
        return tile
    h, w = inputs.color.shape[:2]
    margin = int(getattr(loaded.model, "receptive_radius", 32))
    alignment = int(getattr(loaded.model, "alignment", 1))
    frame_bytes = sum(a.nbytes for a in (inputs.color, inputs.albedo, inputs.normal) if a is not None) + h * w * 3 * result_itemsize
    fit = tile_for_memory(max_memory - PROCESS_BASE_BYTES - frame_bytes, activation_bytes_per_pixel(loaded.model), margin, alignment)
    requested = int(tile or max(h, w))
    return tile if requested <= fit else fit
