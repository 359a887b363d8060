"""The user-facing quality/speed choice, ``--quality``: the shipped model of a tier.

Each quality is a row of ``mcdenoise.choices.TIERS``: a shipped weights file, the U-Net width
row it holds, and a self-ensemble size.

* ``fast``: the small U-Net, ``weights/fast.pt``, for previews.
* ``balanced``: the default U-Net, ``weights/default.pt``.
* ``high``: the wide U-Net, ``weights/high.pt``, averaged over 4 rotations (``models.ensemble``)
  for a cleaner final frame. The wide network was grown from the balanced one
  (``models.unet.widen``) and trained further, which is what made it better than balanced on a
  CPU-only budget. Four rotations rather than all eight flips/rotations: the other four added
  little for twice the time.

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

from mcdenoise.choices import DEFAULT_QUALITY, QUALITIES, TIERS, Tier
from mcdenoise.errors import WeightsError
from mcdenoise.features import SHIPPED_INPUTS, channel_count
from mcdenoise.models import WIDTHS, build_model
from mcdenoise.models.ensemble import SelfEnsemble
from mcdenoise.models.loader import ENSEMBLE_META, WEIGHTS_DIR, LoadedModel, load_model

__all__ = ["DEFAULT_QUALITY", "QUALITIES", "WEIGHTS_DIR", "WIDTHS", "ensemble_size", "load_for_cli", "load_quality", "load_weights",
           "macs_per_pixel", "model_for_quality", "shipped_qualities", "weights_path", "with_ensemble"]


def _tier(quality: str) -> Tier:
    if quality not in TIERS:
        raise WeightsError(f"unknown quality {quality!r}; use one of {', '.join(QUALITIES)}")
    return TIERS[quality]


def weights_path(quality: str) -> Path:
    """Where the shipped weights of a quality live (the file may be missing)."""
    return WEIGHTS_DIR / _tier(quality).weights


def ensemble_size(quality: str) -> int:
    return _tier(quality).ensemble


def shipped_qualities() -> list[str]:
    return [q for q in QUALITIES if weights_path(q).is_file()]


def load_quality(quality: str = DEFAULT_QUALITY, device: str | torch.device = "cpu") -> LoadedModel:
    """Load the shipped model of a quality, or fail saying what is shipped."""
    path = weights_path(quality)
    if not path.is_file():
        shipped = shipped_qualities()
        raise WeightsError(f"no weights are shipped for quality {quality!r} ({path} is missing); "
                           f"shipped qualities: {', '.join(shipped) or 'none'}", fix="quality_shipped" if shipped else "reinstall")
    return with_ensemble(load_model(path, device=device), ensemble_size(quality))


def with_ensemble(loaded: LoadedModel, n: int) -> LoadedModel:
    """``loaded`` run as the average of its answers over ``n`` flips/rotations (1: as it is).
    The count is recorded in ``meta["self_ensemble"]``, where a saved file keeps it too."""
    if n <= 1:
        return loaded
    return replace(loaded, model=SelfEnsemble(loaded.model, n, inputs=loaded.inputs).eval(), meta={**loaded.meta, ENSEMBLE_META: n})


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """A weights file as it is meant to run: with the self-ensemble its metadata asks for (a
    shot fine-tune of ``high`` keeps ``high``'s rotations; ``loader.load_model`` checked the count)."""
    loaded = load_model(path, device=device)
    return with_ensemble(loaded, int(loaded.meta.get(ENSEMBLE_META, 1)))


def names_quality(spec: str | os.PathLike) -> bool:
    """Whether a model named on a command line or in a config is a quality (``balanced``)
    rather than a weights file; a file of that name in the working directory wins."""
    return str(spec) in QUALITIES and not Path(spec).exists()


def load_named(spec: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """A quality's shipped model (with its self-ensemble) or a weights file, by :func:`names_quality`."""
    return load_quality(str(spec), device) if names_quality(spec) else load_weights(spec, device=device)


def load_for_cli(weights: str | os.PathLike | None, quality: str | None, device: str | torch.device = "auto") -> LoadedModel:
    """``--weights`` and ``--quality`` name a model two ways, so giving both is an error
    rather than one silently winning; giving neither loads the default (balanced)."""
    if weights is not None and quality is not None:
        raise WeightsError("both a weights file and a quality were given (a weights file already fixes the model size)",
                           fix="weights_or_quality")
    if weights is not None:
        return load_weights(weights, device=device)
    return load_quality(quality or DEFAULT_QUALITY, device=device)


def model_for_quality(quality: str, inputs: str = SHIPPED_INPUTS) -> nn.Module:
    """An untrained network of a quality's cost (self-ensemble included) reading layout
    ``inputs``, for speed benchmarks: speed does not depend on the weight values."""
    tier = _tier(quality)
    model = build_model("unet", in_channels=channel_count(inputs), out_channels=3, **tier.config).eval()
    return SelfEnsemble(model, tier.ensemble, inputs=inputs).eval() if tier.ensemble > 1 else model


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


def prefilter_for_quality(quality: str) -> nn.Module | None:
    """The aux prefilter the quality's shipped weights carry (None when they carry none or are
    not shipped), for speed benchmarks: what it costs is part of what the quality costs."""
    path = weights_path(quality)
    return load_model(path).prefilter if path.is_file() else None
