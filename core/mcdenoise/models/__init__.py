"""Model registry: an architecture name plus a plain kwargs dict fully rebuilds a network, which
is what weight files store so that CLI, add-on, training and benchmarks build models one way."""

from __future__ import annotations

from typing import Any

from torch import nn

from mcdenoise.models.dncnn import DnCNN
from mcdenoise.models.unet import WIDTHS, ResidualUNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "dncnn": DnCNN,
    "unet": ResidualUNet,
}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None
    return cls(**kwargs)


__all__ = ["ARCHITECTURES", "WIDTHS", "DnCNN", "ResidualUNet", "build_model"]
