"""The HDR transform shared by training and inference.

Path-traced radiance spans many orders of magnitude (a dim corner at 0.01, a lamp at 100) and a
network trained on one range fails on another. Like OIDN we first normalise exposure so the
image's geometric-mean luminance sits at mid grey, then compress with log1p so fireflies do not
dominate the loss. Both steps are exactly invertible for non-negative radiance, which is what
lets the denoised image go back into the EXR in the original units.

The arithmetic lives once, in the in-place ``*_`` functions on torch tensors: inference runs
them on the model's device (on a GPU the host would otherwise spend more time transforming a
4K frame than the network spends denoising it) and inside the buffer the network reads, so no
temporary frame-sized arrays are made. The NumPy functions training and the benchmarks call
are the same operations on an owned copy.
"""

from __future__ import annotations

import numpy as np
import torch

MID_GREY = 0.18
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def sanitize_(x: torch.Tensor, lo: float | None = 0.0, hi: float | None = None) -> torch.Tensor:
    """In place: NaN/±Inf become 0, then clip to [lo, hi]. Renders occasionally carry such
    pixels and a single NaN would otherwise spread through every convolution it touches."""
    x.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    if lo is not None or hi is not None:
        x.clamp_(lo, hi)
    return x


def forward_(x: torch.Tensor, exposure: float) -> torch.Tensor:
    """In place: linear radiance -> network space, log1p(exposure * x) of non-negative radiance."""
    return sanitize_(x).mul_(exposure).log1p_()


def inverse_(y: torch.Tensor, exposure: float) -> torch.Tensor:
    """In place: network space -> linear radiance; negative network outputs are clipped to black."""
    return y.clamp_(min=0.0).expm1_().div_(exposure)


def _owned(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float32))  # one owned copy, cleaned in place


def sanitize(x: np.ndarray, lo: float | None = 0.0, hi: float | None = None) -> np.ndarray:
    """NumPy form of :func:`sanitize_`, on a float32 copy (the input is left alone)."""
    return sanitize_(_owned(x), lo, hi).numpy()


def forward(color: np.ndarray, exposure: float) -> np.ndarray:
    """NumPy form of :func:`forward_`."""
    return forward_(_owned(color), exposure).numpy()


def inverse(y: np.ndarray, exposure: float) -> np.ndarray:
    """NumPy form of :func:`inverse_`."""
    return inverse_(_owned(y), exposure).numpy()


def autoexposure(color: np.ndarray, block: int = 16) -> float:
    """Scale that brings the geometric-mean luminance to mid grey.

    Computed on block averages (as OIDN does) so single fireflies barely move it, and always
    on the *full* frame, never per tile, so tiles of one frame share one exposure.
    """
    lum = np.tensordot(sanitize(color), _LUMA, axes=([-1], [0]))
    h, w = lum.shape
    hb, wb = max(h // block, 1), max(w // block, 1)
    if h >= block and w >= block:
        lum = lum[: hb * block, : wb * block].reshape(hb, block, wb, block).mean(axis=(1, 3))
    valid = lum[lum > 1e-6]
    if valid.size == 0:
        return 1.0
    return float(MID_GREY / np.exp(np.mean(np.log(valid.astype(np.float64)))))


def prepare_albedo_(albedo: torch.Tensor) -> torch.Tensor:
    """Albedo can exceed 1 in Cycles (e.g. emissive or glossy paths); the network sees [0, 1]."""
    return sanitize_(albedo, 0.0, 1.0)


def prepare_normal_(normal: torch.Tensor) -> torch.Tensor:
    return sanitize_(normal, -1.0, 1.0)


def prepare_albedo(albedo: np.ndarray) -> np.ndarray:
    return prepare_albedo_(_owned(albedo)).numpy()


def prepare_normal(normal: np.ndarray) -> np.ndarray:
    return prepare_normal_(_owned(normal)).numpy()
