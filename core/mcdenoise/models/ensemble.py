"""The eight flips/rotations of a render-model input, and self-ensembling over them.

Training augments with these eight transforms; at inference, averaging the network's answers
over them (each mapped back) cancels part of the error that depends on orientation, which is
the ``high`` quality: several times the compute of one pass, a better frame.

Normals are vectors in camera space (X right, Y up), so rotating or mirroring the picture has to
rotate or mirror their X/Y components too; without that the net sees geometry it never trained on.
"""

from __future__ import annotations

import torch
from torch import nn

NORMAL_X, NORMAL_Y = 6, 7  # channel indices of the normal's X and Y in the 9-channel input
OPS = tuple(range(8))


def transform(x: torch.Tensor, op: int) -> torch.Tensor:
    """Rotate ``op % 4`` quarter turns counter-clockwise, then mirror left-right if ``op >= 4``.
    ``x`` is (..., C, H, W); with C == 9 the normal channels are rotated to match."""
    k, flip = op % 4, op >= 4
    y = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        y = torch.flip(y, dims=(-1,))
    if x.shape[-3] == 9 and (k or flip):
        nx, ny = y[..., NORMAL_X, :, :], y[..., NORMAL_Y, :, :]
        for _ in range(k):  # a counter-clockwise picture rotation maps (x, y) to (-y, x)
            nx, ny = -ny, nx
        if flip:
            nx = -nx
        y = torch.cat([y[..., :NORMAL_X, :, :], nx.unsqueeze(-3), ny.unsqueeze(-3), y[..., NORMAL_Y + 1:, :, :]], dim=-3)
    return y


def inverse(y: torch.Tensor, op: int) -> torch.Tensor:
    """Undo :func:`transform`'s picture motion on an output (colour: no vector channels)."""
    k, flip = op % 4, op >= 4
    if flip:
        y = torch.flip(y, dims=(-1,))
    return torch.rot90(y, -k, dims=(-2, -1))


class SelfEnsemble(nn.Module):
    """Average of ``model`` over the first ``n`` transforms (``n`` in 1..8). Keeps the wrapped
    model's ``alignment``/``receptive_radius`` so the tiler treats it like the model itself
    (tiles are multiples of the alignment on both sides, so a quarter turn stays aligned)."""

    def __init__(self, model: nn.Module, n: int = 8):
        super().__init__()
        if not 1 <= n <= 8:
            raise ValueError(f"self-ensemble size must be 1..8, got {n}")
        self.model, self.n = model, n
        for name in ("alignment", "receptive_radius"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for op in OPS[: self.n]:
            y = inverse(self.model(transform(x, op)), op)
            total = y if total is None else total + y
        return total / self.n
