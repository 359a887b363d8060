"""The HDR transform shared by training and inference.

Path-traced radiance spans many orders of magnitude (a dim corner at 0.01, a lamp at 100) and a
network trained on one range fails on another. Like OIDN we first normalise exposure so the
image's geometric-mean luminance sits at mid grey, then compress with log1p so fireflies do not
dominate the loss. Both steps are exactly invertible for non-negative radiance, which is what
lets the denoised image go back into the EXR in the original units.
"""

from __future__ import annotations

import numpy as np

MID_GREY = 0.18
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_EPS = 1e-8


def sanitize(x: np.ndarray, lo: float | None = 0.0, hi: float | None = None) -> np.ndarray:
    """Replace NaN/±Inf by 0 and clip to [lo, hi]; renders occasionally carry such pixels and a
    single NaN would otherwise spread through every convolution it touches."""
    x = np.array(x, dtype=np.float32)  # one owned copy, cleaned in place: an 8K frame has no room for three
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if lo is not None or hi is not None:
        np.clip(x, lo, hi, out=x)
    return x


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


def forward(color: np.ndarray, exposure: float) -> np.ndarray:
    """Linear radiance -> network space: log1p(exposure * x) of non-negative radiance."""
    return np.log1p(sanitize(color) * np.float32(exposure))


def inverse(y: np.ndarray, exposure: float) -> np.ndarray:
    """Network space -> linear radiance; negative network outputs are clipped to black."""
    return np.expm1(np.maximum(np.asarray(y, dtype=np.float32), 0.0)) / np.float32(exposure)


def prepare_albedo(albedo: np.ndarray) -> np.ndarray:
    """Albedo can exceed 1 in Cycles (e.g. emissive or glossy paths); the network sees [0, 1]."""
    return sanitize(albedo, 0.0, 1.0)


def prepare_normal(normal: np.ndarray) -> np.ndarray:
    return sanitize(normal, -1.0, 1.0)
