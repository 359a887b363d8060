"""How a model runs on this machine: one policy object (:class:`Runtime`: device, precision, CPU
threads, memory budget, compile) and the one rule that turns it into a tile size for a frame.

The CLI, the Blender add-on and ``bench --speed`` all build a :class:`Runtime` and ask it for
the tile, so one button runs one memory policy wherever it is pressed. Tiled output equals
untiled output (:mod:`mcdenoise.inference.tiling`): the tile changes memory and time, never the
result. Every margin pixel is computed and thrown away, so the rule takes the largest tile that
fits, often the whole frame.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from dataclasses import dataclass, field

import numpy as np
import psutil
import torch
from torch import nn

from mcdenoise import choices, features
from mcdenoise.errors import DeviceError, InputFileError
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.tiling import _round_up

PRECISIONS = {name: getattr(torch, dtype) for name, dtype in choices.PRECISION_DTYPES.items()}
# The CLI's --max-memory default, also the Blender add-on's budget.
DEFAULT_MAX_MEMORY = int(choices.DEFAULT_MAX_MEMORY_GIB * 2**30)
# Share of free memory the network may use without an explicit budget: the rest is for the
# frame arrays, the EXR being read next, and on a workstation whatever else the artist has open.
CPU_MEMORY_SHARE = 0.25
GPU_MEMORY_SHARE = 0.6
MIN_TILE, MAX_TILE = 256, 8192
# What the process holds besides frames and network activations: Python, torch, OpenEXR and
# allocator slack. An explicit budget is for the whole process, so it pays for these too.
PROCESS_BASE_BYTES = 512 << 20
CPU = torch.device("cpu")
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_threads_configured = False


def physical_cores() -> int:
    """Physical cores this process may run on. Hyper-threads share one core's vector units,
    so a conv net gains nothing from them and loses to the contention."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        allowed = os.cpu_count() or 1
    cores = psutil.cpu_count(logical=False)  # None where the system does not say (some VMs)
    return max(1, min(allowed, cores or allowed))


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads`` when given, else once per process the physical
    core count, unless the user chose (``MCDENOISE_THREADS`` or ``OMP_NUM_THREADS``), e.g. on a
    shared farm node."""
    global _threads_configured
    if threads:
        torch.set_num_threads(threads)
    elif not _threads_configured:
        wanted = os.environ.get("MCDENOISE_THREADS")
        if wanted:
            torch.set_num_threads(max(1, int(wanted)))
        elif not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(physical_cores())
    _threads_configured = True
    return torch.get_num_threads()


def gpu_devices() -> list[str]:
    """The GPU kinds of ``choices.GPU_DEVICES`` this PyTorch can use on this machine, in that
    order (the order ``auto`` prefers). Each backend is asked only where this build has it."""
    found = []
    if torch.cuda.is_available():  # NVIDIA, or AMD through a ROCm build (torch.version.hip)
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found.append("xpu")
    return found


def gpu_name(kind: str) -> str:
    """How a message names a GPU kind: a ROCm build's "cuda" is an AMD GPU."""
    if kind == "cuda":
        return "ROCm" if getattr(torch.version, "hip", None) else "CUDA"
    return kind.upper()


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device ``--device NAME`` means here. 'auto' takes the first GPU PyTorch sees,
    else the CPU; asking for a GPU kind PyTorch does not see is an error rather than a silent
    fallback, so a farm node's misconfiguration is noticed."""
    name = (name or "auto").lower()
    if not choices.is_torch_device(name):
        raise DeviceError(f"unknown device {name!r}; use {choices.spoken(choices.TORCH_DEVICES)} "
                          f"({choices.indexed_devices()} picks one GPU)")
    base = name.partition(":")[0]
    if base == "auto":
        gpus = gpu_devices()
        return torch.device(gpus[0] if gpus else "cpu")
    if base == "cpu":
        return CPU
    if base not in gpu_devices():
        raise DeviceError(f"device {name!r} was asked for but PyTorch sees no {gpu_name(base)} GPU", fix="device_cuda")
    return torch.device(name)


def choose_dtype(device: torch.device, precision: str = "auto", bf16_supported: bool | None = None) -> torch.dtype:
    """Compute dtype for a device. 'auto' is fp32 on CPU (without AMX, reduced precision conv
    is slower there) and fp16 on CUDA (tensor cores; our log-space activations stay far
    inside fp16's range). Asking for half precision on CPU is honoured, bf16 only where the
    GPU supports it."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use {choices.spoken(choices.PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype == torch.bfloat16 and device.type == "cuda":
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if not bf16_supported:
            raise DeviceError("this GPU has no bfloat16 support", fix="precision_fp16")
    return dtype


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs where oneDNN runs bf16 convs natively; elsewhere bf16 is
    emulated and slower than fp32 (``--precision bf16`` warns, ``bench --speed`` skips it)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def autocast_for(device: torch.device, dtype: torch.dtype):
    """Autocast context for a reduced-precision run, a no-op for fp32: weights stay fp32 and
    convs run in ``dtype``, so one loaded model serves every precision."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def activation_bytes_per_pixel(model: nn.Module, dtype: torch.dtype = torch.float32) -> int:
    """Peak activation memory per input pixel, a deliberate over-estimate: the widest
    full-resolution conv's output (the first two convs run at full resolution in every
    architecture here), about six such maps alive at once (skip, concat, conv in/out, allocator
    slack), plus 1/3 more for the coarser levels of a 2x pyramid."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first_in = convs[0].in_channels if convs else features.channel_count(features.DEFAULT_INPUTS)
    widest = max((m.out_channels for m in convs[:2]), default=64)
    element = torch.tensor([], dtype=dtype).element_size()
    return int(element * (first_in + 6 * widest * 4 / 3))


def tile_for_memory(budget_bytes: float, bytes_per_pixel: float, margin: int, alignment: int) -> int:
    """Largest kept tile side whose input window (tile + 2 margins, squared) fits the budget,
    on the alignment grid and clamped to [MIN_TILE, MAX_TILE]."""
    side = math.isqrt(max(int(budget_bytes // max(bytes_per_pixel, 1)), 0)) - 2 * _round_up(margin, alignment)
    side = (side // alignment) * alignment
    return int(min(max(side, MIN_TILE), MAX_TILE))


def available_memory(device: torch.device) -> int:
    """Free bytes on the device: a discrete GPU's own count (CUDA/ROCm, XPU), else the
    system's available memory (the CPU, and Apple's MPS, whose GPU shares it)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "xpu":
        free, _total = torch.xpu.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class Runtime:
    """How to run a model here.

    Args:
        device: where the model's weights are (:meth:`for_model` reads it off the model).
        precision: auto, fp32, fp16 or bf16 (see :func:`choose_dtype`).
        threads: CPU intra-op threads; None = ``MCDENOISE_THREADS``, else ``OMP_NUM_THREADS``,
            else the physical cores (:func:`configure_cpu_threads`).
        max_memory: bytes the whole process may hold on CPU (``--max-memory``); 0 = no limit;
            None = no explicit budget, a share of the free memory instead. A GPU always uses a
            share of its free memory.
        max_tile: the largest tile side the user allows (``--tile``); None = the whole frame
            when it fits.
        compile: ``torch.compile`` the model (CUDA only).

    Building one checks the options, so an impossible precision or ``compile`` on CPU fails
    before any frame is read.
    """

    device: torch.device = CPU
    precision: str = "auto"
    threads: int | None = None
    max_memory: int | None = None
    max_tile: int | None = None
    compile: bool = False
    dtype: torch.dtype = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))
        object.__setattr__(self, "dtype", choose_dtype(self.device, self.precision))
        # Compiling on CPU costs minutes of a shared node for a few per cent.
        if self.compile and self.device.type != "cuda":
            raise DeviceError(f"cannot compile the model on {self.device.type}", fix="compile_cuda")

    @classmethod
    def for_model(cls, model: nn.Module, **options) -> Runtime:
        """A runtime for the device ``model``'s weights are on."""
        return cls(next(model.parameters()).device, **options)

    def tile_for(self, model: nn.Module, frame: FrameInputs, result_itemsize: int = 4) -> int | None:
        """The tile to denoise ``frame`` in: None (the whole frame) when its longer side fits the
        memory at hand, else the largest aligned tile that does; never above ``max_tile``.

        The memory at hand is a share of the GPU's free memory on a GPU; on CPU ``max_memory``
        minus what the process and the frame's arrays (its passes, and the result of
        ``result_itemsize`` bytes per value: 2 when it comes back in half) already take, or
        without a budget a share of the free memory (which the frame's arrays are already out of).
        """
        room = self._network_memory(frame, result_itemsize)
        if room is None:
            return self.max_tile
        # On a GPU the activations take the compute dtype; on CPU they are counted as fp32
        # whatever the precision (bf16 needs about half), so a budgeted run tiles the same at
        # every precision.
        dtype = self.dtype if self.device.type in choices.GPU_DEVICES else torch.float32
        fit = tile_for_memory(room, activation_bytes_per_pixel(model, dtype), model.receptive_radius, model.alignment)
        height, width = frame.color.shape[:2]
        return self.max_tile if (self.max_tile or max(height, width)) <= fit else fit

    def check_frame_fits(self, pixels: int, bytes_per_pixel: int, path: os.PathLike | str) -> None:
        """Refuse, before it is decoded, a frame of ``pixels`` whose own arrays
        (``bytes_per_pixel``) and the process alone exceed ``max_memory``: no tile can make
        it fit, and decoding it would take the process past the budget it was given."""
        if not self.max_memory:
            return
        need = PROCESS_BASE_BYTES + pixels * bytes_per_pixel
        if need > self.max_memory:
            raise InputFileError(
                f"{path}: a frame of {pixels / 1e6:.0f} megapixels needs about {need / 2**30:.1f} GiB, "
                f"more than the memory budget of {self.max_memory / 2**30:.2f} GiB even in tiles",
                fix="max_memory", need_gib=f"{math.ceil(need / 2**30)}")

    def _network_memory(self, frame: FrameInputs, result_itemsize: int) -> float | None:
        """Bytes the network's working memory may take for ``frame``; None for no limit."""
        if self.device.type in choices.GPU_DEVICES:
            return available_memory(self.device) * GPU_MEMORY_SHARE
        if self.max_memory is None:
            return available_memory(self.device) * CPU_MEMORY_SHARE
        if self.max_memory == 0:
            return None
        height, width = frame.color.shape[:2]
        passes = sum(a.nbytes for a in vars(frame).values() if isinstance(a, np.ndarray))
        return self.max_memory - PROCESS_BASE_BYTES - passes - height * width * 3 * result_itemsize

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """``model`` ready to run here: CPU threads set, channels-last layout (converted in
        place, once: NHWC is oneDNN's and cuDNN's preferred conv layout and the layout of EXR
        arrays, so no transposing copy is made) and, on request, ``torch.compile``d (the
        compiled wrapper is cached per model)."""
        if self.device.type == "cpu":
            configure_cpu_threads(self.threads)
        if not getattr(model, "_mcdenoise_channels_last", False):
            model.to(memory_format=torch.channels_last)
            model._mcdenoise_channels_last = True
        if not self.compile:
            return model
        if model not in _compiled:
            _compiled[model] = torch.compile(model, dynamic=True)
        return _compiled[model]
