"""Loss and image-quality measures, in torch so training and the benchmark share one SSIM.

Loss = (1 - w) * L1 + w * (1 - multi-scale SSIM) in the HDR-transformed space (OIDN trains with
a similar L1 + MS-SSIM mix). The multi-scale term is the mean SSIM over three dyadic scales
rather than Wang et al.'s product of powers, which turns NaN on negative contrast terms early in
training; it still rewards structure at the coarse scales where low-spp blotches live.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_C1, _C2 = 0.01**2, 0.03**2


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32, device=device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, size: int = 11) -> torch.Tensor:
    """Per-pixel SSIM of (N, C, H, W) images with range ~1 (Wang et al. 2004, Gaussian window)."""
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


def multiscale_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = 3) -> torch.Tensor:
    values = []
    for i in range(scales):
        if i:
            if min(x.shape[-2:]) < 22:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        values.append(ssim(x, y))
    return torch.stack(values).mean()


def denoise_loss(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    l1 = (pred - target).abs().mean()
    if ssim_weight <= 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - multiscale_ssim(pred, target))
