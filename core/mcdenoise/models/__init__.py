"""Model registry: an architecture name plus a plain kwargs dict fully rebuilds a network, which
is what weight files store so that CLI, add-on, training and benchmarks build models one way."""

from __future__ import annotations

from typing import Any

from torch import nn

from mcdenoise import choices
from mcdenoise.models.dncnn import DnCNN
from mcdenoise.models.unet import WIDTHS, ResidualUNet

# The class of each name in ``choices.ARCHITECTURES``, in the table's order.
ARCHITECTURES: dict[str, type[nn.Module]] = dict(zip(choices.ARCHITECTURES, (ResidualUNet, DnCNN), strict=True))


# What inference needs of every architecture to cut tiles whose result equals the untiled
# result (``inference.tiling``): how many pixels on each side a kept output pixel depends on,
# and the grid its poolings need (frame sizes are padded to it, tiles start on it).
CONTRACT = ("receptive_radius", "alignment")


def check_contract(model: nn.Module) -> nn.Module:
    """``model``, once it is known to declare :data:`CONTRACT` as positive ints."""
    for name in CONTRACT:
        value = getattr(model, name, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TypeError(f"{type(model).__name__} must declare {name} as a positive int (pixels), got {value!r}")
    return model


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    return check_contract(cls(**kwargs))


__all__ = ["ARCHITECTURES", "CONTRACT", "WIDTHS", "DnCNN", "ResidualUNet", "build_model", "check_contract"]
