"""How a denoised frame is scored against its reference, shared by training validation and the
quality benchmark so the numbers in a training log and in ``bench`` mean the same thing.

PSNR and SSIM are taken on tonemapped images (``preview.tonemap`` at the reference's exposure,
the curve the crops are shown with); relMSE on linear radiance.
"""

from __future__ import annotations

import numpy as np
import torch

from mcdenoise import hdr
from mcdenoise.preview import tonemap
from mcdenoise.training.losses import ssim

REL_EPS = 1e-2


def psnr_tonemapped(x: np.ndarray, ref: np.ndarray, exposure: float) -> float:
    mse = float(np.mean((tonemap(x, exposure) - tonemap(ref, exposure)) ** 2, dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim_tonemapped(x: np.ndarray, ref: np.ndarray, exposure: float) -> float:
    def as_tensor(im: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(tonemap(im, exposure).transpose(2, 0, 1).copy())[None]

    return float(ssim(as_tensor(x), as_tensor(ref)))


def rel_mse(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean of (x - r)^2 / (r^2 + 0.01) on linear radiance."""
    x, ref = hdr.sanitize(x, lo=None), hdr.sanitize(ref)
    return float(np.mean((x - ref) ** 2 / (ref**2 + REL_EPS), dtype=np.float64))
