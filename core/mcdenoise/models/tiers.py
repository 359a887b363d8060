"""The user-facing quality/speed choice: ``--quality fast|balanced|high``.

Each quality is a shipped weights file plus a self-ensemble size (``QUALITY_MODELS``):

* ``fast``: the small U-Net (``WIDTHS["fast"]``), ``weights/fast.pt``; about half the cost.
* ``balanced``: the default U-Net, ``weights/default.pt``.
* ``high``: the wide U-Net (``WIDTHS["high"]``), ``weights/high.pt``, averaged over 4 rotations
  (``models.ensemble``): about 5x the time of balanced for a cleaner final frame. The wide
  network was grown from the balanced one (``models.unet.widen``) and trained further, which
  is what made it better than balanced on a CPU-only budget. The 4 rotations add 0.4 dB at
  4 spp; all 8 flips/rotations added only 0.03 dB more for twice the time.

A quality whose weights are not shipped is an error that says which qualities are, never a
silent switch to another model: an artist who picked ``high`` for a final frame must not get
``fast`` without knowing. Measured costs and quality are in ``docs/speed.md``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from mcdenoise.errors import WeightsError
from mcdenoise.models.loader import DEFAULT_WEIGHTS, WEIGHTS_DIR, LoadedModel, load_model
from mcdenoise.models import WIDTHS, build_model
from mcdenoise.models.ensemble import SelfEnsemble

# quality -> (weights file in WEIGHTS_DIR, U-Net width row of that file, self-ensemble size)
QUALITY_MODELS: dict[str, tuple[str, str, int]] = {
    "fast": ("fast.pt", "fast", 1),
    "balanced": (DEFAULT_WEIGHTS.name, "balanced", 1),
    "high": ("high.pt", "high", 4),
}
QUALITIES = tuple(QUALITY_MODELS)
DEFAULT_QUALITY = "balanced"


def _check(quality: str) -> tuple[str, str, int]:
    if quality not in QUALITY_MODELS:
        raise WeightsError(f"unknown quality {quality!r}; use one of {', '.join(QUALITIES)}")
    return QUALITY_MODELS[quality]


def weights_path(quality: str) -> Path:
    """Where the shipped weights of a quality live (the file may be missing)."""
    return WEIGHTS_DIR / _check(quality)[0]


def ensemble_size(quality: str) -> int:
    return _check(quality)[2]


def shipped_qualities() -> list[str]:
    return [q for q in QUALITIES if weights_path(q).is_file()]


def load_quality(quality: str = DEFAULT_QUALITY, device: str | torch.device = "cpu") -> LoadedModel:
    """Load the shipped model of a quality, or fail saying what is shipped."""
    path = weights_path(quality)
    if not path.is_file():
        shipped = ", ".join(shipped_qualities()) or "none (reinstall mcdenoise)"
        raise WeightsError(
            f"no weights are shipped for --quality {quality} ({path} is missing); shipped qualities: {shipped}. "
            "Pick one of those, or pass a trained file with --weights"
        )
    loaded = load_model(path, device=device)
    n = ensemble_size(quality)
    if n > 1:
        loaded = replace(loaded, model=SelfEnsemble(loaded.model, n).eval(), meta={**loaded.meta, "self_ensemble": n})
    return loaded


def load_for_cli(weights: str | os.PathLike | None, quality: str | None, device: str | torch.device = "auto") -> LoadedModel:
    """``--weights`` and ``--quality`` name a model two ways, so giving both is an error
    rather than one silently winning; giving neither loads the default (balanced)."""
    if weights is not None and quality is not None:
        raise WeightsError("give --weights or --quality, not both (a weights file already fixes the model size)")
    if weights is not None:
        return load_model(weights, device=device)
    return load_quality(quality or DEFAULT_QUALITY, device=device)


def model_for_quality(quality: str, in_channels: int = 9) -> nn.Module:
    """An untrained network of a quality's cost (self-ensemble included), for speed
    benchmarks: speed does not depend on the weight values."""
    _, widths, n = _check(quality)
    model = build_model("unet", in_channels=in_channels, out_channels=3, widths=WIDTHS[widths]).eval()
    return SelfEnsemble(model, n).eval() if n > 1 else model


def macs_per_pixel(model: nn.Module, size: int = 64) -> float:
    """Multiply-accumulates per input pixel, counted from a forward pass on a small square
    (conv layers only; the rest is memory traffic, not arithmetic)."""
    total = 0

    def hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        with torch.inference_mode():
            model(torch.zeros(1, first.in_channels, size, size))
    finally:
        for h in handles:
            h.remove()
    return total / (size * size)
