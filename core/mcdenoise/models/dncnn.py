"""DnCNN — Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep
CNN for Image Denoising", IEEE TIP 26(7), 2017.

Exactly the paper's network: Conv+ReLU, (Conv+BN+ReLU) x (depth-2), Conv; 3x3 kernels, 64
features, zero padding. It predicts the *noise*, and the clean estimate is input minus noise.
The module keeps the authors' attribute name (``dncnn``, an ``nn.Sequential``) so their
published state dicts load without renaming. ``in_channels`` may exceed ``out_channels`` to feed
auxiliary features (albedo, normal); the residual is then taken on the first ``out_channels``.

Args:
    in_channels: 1 for the paper's grey models, 9 for colour + albedo + normal.
    out_channels: channels of the image being denoised (1 grey, 3 colour).
    depth: 17 for DnCNN-S, 20 for the blind DnCNN-B and DnCNN-3.
    features: 64 in the paper.
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    # The tiling contract (``models.check_contract``): no pooling, so any size and tile origin
    # works; each 3x3 conv widens the receptive field by one pixel on each side, so a kept pixel
    # depends on ``depth`` pixels each side (set in ``__init__``).
    alignment = 1
    receptive_radius: int

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 17, features: int = 64):
        super().__init__()
        if depth < 3:
            raise ValueError("DnCNN needs depth >= 3")
        if in_channels < out_channels:
            raise ValueError("in_channels must include the image being denoised")
        self.out_channels = out_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, 3, padding=1, bias=False),
                nn.BatchNorm2d(features, eps=1e-5),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(features, out_channels, 3, padding=1, bias=True))
        self.dncnn = nn.Sequential(*layers)
        self.receptive_radius = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.out_channels] - self.dncnn(x)
