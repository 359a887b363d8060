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


@dataclass(frozen=True)
class Tier:
    """One ``--quality``: a shipped weights file, the U-Net row it holds, and how many of the
    eight flips/rotations its output is averaged over (``models.ensemble``; 1 = none)."""

    name: str
    weights: str  # file name in mcdenoise/weights/
    width_row: str  # key of UNET_WIDTHS
    ensemble: int
    description: str  # one line, shown as the add-on menu's tooltip

    @property
    def widths(self) -> tuple[int, ...]:
        return UNET_WIDTHS[self.width_row]

    @property
    def label(self) -> str:
        return self.name.capitalize()


TIERS: dict[str, Tier] = {tier.name: tier for tier in (
    Tier("fast", "fast.pt", "fast", 1, "The small model: about half the time of Balanced, for previews"),
    Tier("balanced", "default.pt", "balanced", 1, "The default model"),
    Tier("high", "high.pt", "high", 4, "A wider model averaged over 4 rotations: about 5x the time of Balanced, cleaner finals"),
)}
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

# ``--device`` of the verbs that run the network; "cuda:N" also picks a GPU. ``render-dataset``
# instead names where Blender's Cycles renders.
TORCH_DEVICES = ("auto", "cpu", "cuda")
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
    """Whether ``--device NAME`` names a device: one of TORCH_DEVICES (any case) or cuda:N."""
    base, colon, index = name.lower().partition(":")
    return base in TORCH_DEVICES and (not colon or (base == "cuda" and index.isdigit()))

# The smallest tile side anyone may ask for (0 is the whole frame): a tile is cut on the model's
# 16-pixel grid and computes a margin of its receptive radius on each side, so below this almost
# all the work is margin (tens of times slower for the same result).
MIN_TILE_SIDE = 64
