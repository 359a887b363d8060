"""Every list of choices mcdenoise offers, written once: quality tiers, U-Net width rows,
architectures, compute precisions and devices.

The CLI's ``choices=`` and validators, the tiers loader, the training config, the benchmarks and
the Blender add-on's menus all read these tables, so adding a tier or a precision is one edit.
Pure Python on purpose (no torch, no numpy): the add-on imports this module to draw its quality
menu in a Blender that may not have PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# U-Net channels per level, full resolution first, bottleneck last (``models.unet``); a row is
# what ``train --widths`` picks and what a tier's weights file was trained with.
UNET_WIDTHS: dict[str, tuple[int, ...]] = {
    "fast": (16, 24, 32, 48, 64),
    "balanced": (24, 32, 48, 64, 80),
    "high": (32, 48, 64, 80, 96),
}

# U-Net decoders, ``train --decoder``: how the decoder's convs are sized from the encoder's widths,
# and whether the finest level also reads the network's input (``models.unet``, ``input_skip``).
# ``mirror``: each level as wide as the encoder's (every shipped file). ``wide``: as OIDN's U-Net
# builds its decoder: the two finest levels at least 64 channels wide, the last conv at least 32,
# and the input concatenated into the finest level, so the last convs see the albedo and normal
# unmixed at full resolution (where the default loses most to OIDN-Accurate: albedo edges).
UNET_DECODERS: dict[str, str] = {
    "mirror": "each decoder level as wide as the encoder's",
    "wide": "OIDN-like: the two finest levels 64 channels wide, the input read again at the last level",
}
DEFAULT_DECODER = "mirror"


def decoder_widths(widths: tuple[int, ...] | list[int], decoder: str = DEFAULT_DECODER) -> list[int]:
    """The 8 decoder conv widths (two per level, coarsest first) of a ``UNET_DECODERS`` row."""
    c1, c2, c3, c4, _ = widths
    if decoder == "mirror":
        return [c4, c4, c3, c3, c2, c2, c1, c1]
    if decoder == "wide":
        return [c4, c4, c3, c3, max(c2, 64), max(c2, 64), max(c1, 64), max(c1, 32)]
    raise ValueError(f"unknown decoder {decoder!r}; use one of {', '.join(UNET_DECODERS)}")


def decoder_config(widths: tuple[int, ...] | list[int], decoder: str) -> dict:
    """What a ``UNET_DECODERS`` row adds to a U-Net's constructor arguments, as a weights file
    stores them (``ResidualUNet.arch_config``): the decoder's widths only where they are not the
    mirrored ones and the input skip only where there is one, so plain files read as they always did."""
    sizes = decoder_widths(widths, decoder)  # ValueError for an unknown row
    config: dict = {} if sizes == decoder_widths(widths) else {"decoder": sizes}
    return config if decoder == DEFAULT_DECODER else {**config, "input_skip": True}


@dataclass(frozen=True)
class Tier:
    """One ``--quality``: a shipped weights file, the U-Net row it holds, and how many of the
    eight flips/rotations its output is averaged over (``models.ensemble``; 1 = none)."""

    name: str
    weights: str  # file name in mcdenoise/weights/
    width_row: str  # key of UNET_WIDTHS
    ensemble: int
    description: str  # one line, shown as the add-on menu's tooltip
    decoder: str = "mirror"  # key of UNET_DECODERS

    @property
    def widths(self) -> tuple[int, ...]:
        return UNET_WIDTHS[self.width_row]

    @property
    def config(self) -> dict:
        """The U-Net's size arguments of its weights file: widths, and the decoder's where it is not mirrored."""
        return {"widths": list(self.widths), **decoder_config(self.widths, self.decoder)}

    @property
    def label(self) -> str:
        return self.name.capitalize()


TIERS: dict[str, Tier] = {tier.name: tier for tier in (
    Tier("fast", "fast.pt", "fast", 1, "The small model in one pass: about a fifth of the time of Balanced, for previews"),
    Tier("balanced", "default.pt", "balanced", 4, "The default model, averaged over 4 rotations"),
    Tier("high", "high.pt", "high", 4, "A wider model averaged over 4 rotations: about twice the time of Balanced"),
)}
# Why the default averages 4 rotations: on a CPU, Blender's own denoiser (OIDN-Accurate: albedo and
# normal prefiltered, then colour) takes about 7x OIDN high's time at 1080p, and the project's
# budget is that time; the rotations add about 0.3 dB for 4x the balanced network's cost, still
# about a quarter of OIDN-Accurate's (docs/speed.md).
QUALITIES = tuple(TIERS)
DEFAULT_QUALITY = "balanced"
DEFAULT_WIDTHS = TIERS[DEFAULT_QUALITY].width_row  # what ``train`` builds unless told otherwise

# Network architectures of the model registry (``models.ARCHITECTURES``, in this order):
# ``unet`` is the render model, ``dncnn`` the paper baseline.
ARCHITECTURES = ("unet", "dncnn")
DEFAULT_ARCH = "unet"

# ``--precision``: "auto" (fp16 on CUDA, fp32 on CPU) or a compute dtype, named by torch's name.
PRECISION_DTYPES: dict[str, str] = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("auto", *PRECISION_DTYPES)
DEFAULT_PRECISION = "auto"
# ``train --precision``: "auto" (bf16 autocast on CUDA and on a CPU with native bf16, fp32
# elsewhere), fp32, or bf16 autocast. No fp16: its range needs loss scaling to train.
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")
# ``train --loss-space``: where the loss compares output and target. "log" is the network's own
# space (log1p of exposure-normalised radiance); "display" is what the benchmarks score, the
# frame tonemapped (Reinhard, then the sRGB curve), which weighs dark regions far more.
LOSS_SPACES = ("log", "display")



@dataclass(frozen=True)
class Device:
    """One ``--device`` (a PyTorch device type) and where a PyTorch build can have it: the
    add-on's menu offers only the devices of the platform it runs on."""

    name: str  # what --device takes, torch's device type
    label: str  # the add-on's menu entry
    description: str  # its tooltip
    indexed: bool  # "NAME:N" picks one of several
    systems: tuple[str, ...]  # platform.system() values where PyTorch ships it ("" for every one)
    machines: tuple[str, ...] = ()  # platform.machine() values it needs (empty: any)

    def on_platform(self, system: str, machine: str) -> bool:
        return ("" in self.systems or system in self.systems) and (not self.machines or machine.lower() in self.machines)


# ``--device`` of the verbs that run the network; "cuda:N" and "xpu:N" also pick a GPU. ROCm
# builds of PyTorch drive AMD GPUs under the name cuda. "auto" takes the first GPU kind PyTorch
# sees, in GPU_DEVICES order. ``render-dataset`` instead names where Blender's Cycles renders.
DEVICES: dict[str, Device] = {device.name: device for device in (
    Device("auto", "Automatic", "The GPU when PyTorch sees one (CUDA, ROCm, Apple MPS or Intel XPU), else the CPU",
           False, ("",)),
    Device("cpu", "CPU", "Always the CPU", False, ("",)),
    Device("cuda", "GPU (CUDA / ROCm)", "An NVIDIA GPU, or an AMD GPU with a ROCm build of PyTorch", True,
           ("Linux", "Windows")),
    Device("mps", "GPU (Apple MPS)", "The GPU of an Apple silicon Mac, through Metal", False, ("Darwin",),
           ("arm64", "aarch64")),
    Device("xpu", "GPU (Intel XPU)", "An Intel GPU (Arc, Data Center) with an XPU build of PyTorch", True,
           ("Linux", "Windows")),
)}
TORCH_DEVICES = tuple(DEVICES)
GPU_DEVICES = tuple(name for name in DEVICES if name not in ("auto", "cpu"))
DEFAULT_DEVICE = "auto"
CYCLES_DEVICES = ("cpu", "gpu")
DEFAULT_CYCLES_DEVICE = "cpu"

# ``--max-memory`` of ``denoise`` and ``bench --speed`` (GiB the process may hold on CPU), also
# the Blender add-on's budget (``inference.runtime.Runtime``).
DEFAULT_MAX_MEMORY_GIB = 2.0


def spoken(names: Iterable[str]) -> str:
    """``auto, cpu or cuda``: a list of choices as messages and help texts write it."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def is_torch_device(name: str) -> bool:
    """Whether ``--device NAME`` names a device: one of TORCH_DEVICES (any case), or NAME:N for
    the kinds that number their GPUs (cuda:1, xpu:0)."""
    base, colon, index = name.lower().partition(":")
    return base in DEVICES and (not colon or (DEVICES[base].indexed and index.isdigit()))


def indexed_devices() -> str:
    """``cuda:N or xpu:N``: how a help text names the numbered forms."""
    return spoken(f"{device.name}:N" for device in DEVICES.values() if device.indexed)

# The smallest tile side anyone may ask for (0 is the whole frame): a tile is cut on the model's
# 16-pixel grid and computes a margin of its receptive radius on each side, so below this almost
# all the work is margin (tens of times slower for the same result).
MIN_TILE_SIDE = 64
