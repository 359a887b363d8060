"""The eight flips/rotations of a render-model input, and self-ensembling over them.

Training augments with these eight transforms; at inference, averaging the network's answers
over them (each mapped back) cancels part of the error that depends on orientation, which is
how the ``balanced`` (default) and ``high`` qualities run: four times the compute of one pass,
a better frame.

Some input channels are 2-D vectors in the picture plane (X right, Y up): the normal's X/Y, the
motion vectors. Rotating or mirroring the picture has to rotate or mirror them too, or the net
sees geometry it never trained on; which channels they are comes from the input layout
(:func:`mcdenoise.features.vector_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mcdenoise.features import vector_pairs

OPS = tuple(range(8))


def transform(x: torch.Tensor, op: int, vectors: Sequence[tuple[int, int]] = ()) -> torch.Tensor:
    """Rotate ``op % 4`` quarter turns counter-clockwise, then mirror left-right if ``op >= 4``.
    ``x`` is (..., C, H, W); each (x, y) channel pair in ``vectors`` is rotated to match."""
    k, flip = op % 4, op >= 4
    y = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        y = torch.flip(y, dims=(-1,))
    if not vectors or not (k or flip):
        return y
    turned: dict[int, torch.Tensor] = {}
    for cx, cy in vectors:
        vx, vy = y[..., cx, :, :], y[..., cy, :, :]
        for _ in range(k):  # a counter-clockwise picture rotation maps (x, y) to (-y, x)
            vx, vy = -vy, vx
        if flip:
            vx = -vx
        turned[cx], turned[cy] = vx.unsqueeze(-3), vy.unsqueeze(-3)
    pieces, start = [], 0
    for c in sorted(turned):  # untouched channel runs as slices, turned channels in between
        if c > start:
            pieces.append(y[..., start:c, :, :])
        pieces.append(turned[c])
        start = c + 1
    pieces.append(y[..., start:, :, :])
    return torch.cat(pieces, dim=-3)


def inverse(y: torch.Tensor, op: int) -> torch.Tensor:
    """Undo :func:`transform`'s picture motion on an output (colour: no vector channels)."""
    k, flip = op % 4, op >= 4
    if flip:
        y = torch.flip(y, dims=(-1,))
    return torch.rot90(y, -k, dims=(-2, -1))


class SelfEnsemble(nn.Module):
    """Average of ``model`` over the first ``n`` transforms (``n`` in 1..8) of an input of
    layout ``inputs``. Keeps the wrapped model's ``alignment``/``receptive_radius`` so the tiler
    treats it like the model itself (tiles are multiples of the alignment on both sides, so a
    quarter turn stays aligned)."""

    def __init__(self, model: nn.Module, n: int = 8, *, inputs: str):
        super().__init__()
        if not 1 <= n <= 8:
            raise ValueError(f"self-ensemble size must be 1..8, got {n}")
        self.model, self.n, self.vectors = model, n, vector_pairs(inputs)
        self.alignment, self.receptive_radius = model.alignment, model.receptive_radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for op in OPS[: self.n]:
            y = inverse(self.model(transform(x, op, self.vectors)), op)
            total = y if total is None else total + y
        return total / self.n
