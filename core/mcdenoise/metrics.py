"""How a denoised frame is scored against its reference, shared by training validation and the
quality benchmark so the numbers in a training log and in ``bench`` mean the same thing; the
training loss (``training.losses``) builds on the same SSIM.

PSNR and SSIM are taken on tonemapped images (``preview.tonemap`` at the reference's exposure,
the curve the crops are shown with); relMSE on linear radiance.

SSIM is ours rather than ``pytorch-msssim``'s: that one agrees only to ~4e-7 (separable window,
other rounding), and on images under 11 pixels it skips smoothing where ours shrinks the window.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mcdenoise import hdr
from mcdenoise.preview import tonemap

REL_EPS = 1e-2
_C1, _C2 = 0.01**2, 0.03**2  # Wang et al.'s K1, K2 for images of range 1


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32, device=device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, size: int = 11) -> torch.Tensor:
    """Per-pixel SSIM of (N, C, H, W) images with range ~1 (Wang et al. 2004, Gaussian window),
    over the pixels where the whole window fits."""
    c = x.shape[1]
    size = min(size, x.shape[-1], x.shape[-2])
    win = _gaussian_window(c, size, device=x.device).to(x.dtype)
    mu_x = F.conv2d(x, win, groups=c)
    mu_y = F.conv2d(y, win, groups=c)
    sxx = F.conv2d(x * x, win, groups=c) - mu_x**2
    syy = F.conv2d(y * y, win, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, win, groups=c) - mu_x * mu_y
    return ((2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (sxx + syy + _C2))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ssim_map(x, y).mean()


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of values on a [0, 1] scale (tonemapped colour, albedo, normals mapped to [0, 1])."""
    mse = float(np.mean((x - ref) ** 2, dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def psnr_tonemapped(x: np.ndarray, ref: np.ndarray, exposure: float) -> float:
    return psnr(tonemap(x, exposure), tonemap(ref, exposure))


def ssim_tonemapped(x: np.ndarray, ref: np.ndarray, exposure: float) -> float:
    def as_tensor(im: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(tonemap(im, exposure).transpose(2, 0, 1).copy())[None]

    return float(ssim(as_tensor(x), as_tensor(ref)))


def rel_mse(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean of (x - r)^2 / (r^2 + 0.01) on linear radiance."""
    x, ref = hdr.sanitize(x, lo=None), hdr.sanitize(ref)
    return float(np.mean((x - ref) ** 2 / (ref**2 + REL_EPS), dtype=np.float64))
