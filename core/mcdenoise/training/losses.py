"""The training loss, in torch, on the SSIM of ``mcdenoise.metrics`` (the one the benchmark
scores with).

Loss = (1 - w) * L1 + w * (1 - multi-scale SSIM) in the HDR-transformed space (OIDN trains with
a similar L1 + MS-SSIM mix). The multi-scale term is the mean SSIM over three dyadic scales
rather than Wang et al.'s product of powers, which turns NaN on negative contrast terms early in
training; it still rewards structure at the coarse scales where low-spp blotches live. That is
also why ``pytorch-msssim``'s MS-SSIM (the product over five scales, images of 161+ pixels) is
not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mcdenoise.metrics import ssim


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
