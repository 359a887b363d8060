"""The training loss, in torch, on the SSIM of ``mcdenoise.metrics`` (the one the benchmark
scores with).

Loss = (1 - w) * L1 + w * (1 - multi-scale SSIM) (OIDN trains with a similar L1 + MS-SSIM mix),
either in the network's own HDR-transformed space (``log``) or in the display space the
benchmarks score (``display``: ``preview.tonemap`` of the same exposure-normalised radiance).
The two weigh the picture very differently: log1p is nearly linear below mid grey, while the
sRGB curve of the display space is several times steeper in the shadows than at mid grey, so a
network trained in ``log`` spends little on the dark parts of a frame where PSNR finds much of
its error. The multi-scale term is the mean SSIM over three dyadic scales
rather than Wang et al.'s product of powers, which turns NaN on negative contrast terms early in
training; it still rewards structure at the coarse scales where low-spp blotches live. That is
also why ``pytorch-msssim``'s MS-SSIM (the product over five scales, images of 161+ pixels) is
not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mcdenoise.choices import LOSS_SPACES
from mcdenoise.metrics import ssim
from mcdenoise.preview import display


def multiscale_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = 3) -> torch.Tensor:
    values = []
    for i in range(scales):
        if i:
            if min(x.shape[-2:]) < 22:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        values.append(ssim(x, y))
    return torch.stack(values).mean()


def to_display(y: torch.Tensor) -> torch.Tensor:
    """Network space (``hdr.forward``: log1p of exposure-normalised radiance) -> the display
    space ``preview.tonemap`` gives the benchmarks (``preview.display``).

    Negative network outputs stay negative (expm1 is about the identity there) instead of
    being clipped as inference clips them, so ``display`` keeps a gradient for them."""
    return display(torch.where(y > 0, torch.expm1(y.clamp(min=0)), y))


def denoise_loss(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float, space: str = "log") -> torch.Tensor:
    if space not in LOSS_SPACES:
        raise ValueError(f"unknown loss space {space!r}; one of {', '.join(LOSS_SPACES)}")
    if space == "display":
        pred, target = to_display(pred), to_display(target)
    l1 = (pred - target).abs().mean()
    if ssim_weight <= 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - multiscale_ssim(pred, target))
