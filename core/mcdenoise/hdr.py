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
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The smallest exposure: the smallest normal float32. A colour pass near float32's limit (1e38)
# asks for less, which float32 would hold only as a subnormal or zero (and zero divides the
# result back to Inf).
_MIN_EXPOSURE = float(np.finfo(np.float32).tiny)
_BAND_PIXELS = 1 << 18  # pixels converted to float64 at a time by autoexposure


def sanitize_(x: torch.Tensor, lo: float | None = 0.0, hi: float | None = None) -> torch.Tensor:
    """In place: NaN/±Inf become 0, then clip to [lo, hi]. Renders occasionally carry such
    pixels and a single NaN would otherwise spread through every convolution it touches."""
    x.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    if lo is not None or hi is not None:
        x.clamp_(lo, hi)
    return x


def forward_(x: torch.Tensor, exposure: float) -> torch.Tensor:
    """In place: linear radiance -> network space, log1p(exposure * x) of non-negative radiance
    (a product past float32's range, a pixel near its limit in a dark frame, is kept at it)."""
    return sanitize_(x).mul_(exposure).clamp_(max=FLOAT32_MAX).log1p_()


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
    on the *full* frame, never per tile, so tiles of one frame share one exposure. The sums are
    in float64, a band of rows at a time: in float32 a frame of valid values near 1e38 sums to
    Inf, and the frame is never copied whole. The result is at least the smallest normal
    float32, so the transform and its inverse stay finite.
    """
    color = np.asarray(color)
    h, w = color.shape[:2]
    if h < block or w < block:
        lum = _luminance64(color)
    else:
        hb, wb = h // block, w // block
        lum = np.empty((hb, wb))
        step = max(_BAND_PIXELS // (wb * block * block), 1)  # block rows per band
        for i in range(0, hb, step):
            band = _luminance64(color[i * block : min(i + step, hb) * block, : wb * block])
            lum[i : i + step] = band.reshape(-1, block, wb, block).mean(axis=(1, 3))
    valid = lum[lum > 1e-6]
    if valid.size == 0:
        return 1.0
    return max(float(MID_GREY / np.exp(np.mean(np.log(valid)))), _MIN_EXPOSURE)


def _luminance64(color: np.ndarray) -> np.ndarray:
    """Luminance of sanitised colour (NaN/Inf -> 0, negatives -> 0), in float64."""
    x = np.nan_to_num(np.array(color, dtype=np.float64), copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.maximum(x, 0.0, out=x)
    return x @ _LUMA.astype(np.float64)


def prepare_albedo_(albedo: torch.Tensor) -> torch.Tensor:
    """Albedo can exceed 1 in Cycles (e.g. emissive or glossy paths); the network sees [0, 1]."""
    return sanitize_(albedo, 0.0, 1.0)


def prepare_normal_(normal: torch.Tensor) -> torch.Tensor:
    return sanitize_(normal, -1.0, 1.0)


def prepare_albedo(albedo: np.ndarray) -> np.ndarray:
    return prepare_albedo_(_owned(albedo)).numpy()


def prepare_normal(normal: np.ndarray) -> np.ndarray:
    return prepare_normal_(_owned(normal)).numpy()
