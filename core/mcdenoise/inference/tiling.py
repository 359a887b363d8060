"""Cutting a frame into tiles whose result equals the untiled result, and the mirrored border
around the frame.

Each tile is enlarged by a margin no smaller than the network's receptive radius (so zero
padding at a tile edge never reaches a kept pixel) and starts on the network's pooling grid (so
pooling windows line up with the whole-frame ones).
"""

from __future__ import annotations

import math

import torch

EDGE_PAD = 8  # mirrored pixels around the frame, rounded up to the model's alignment


def _round_up(x: int, m: int) -> int:
    return int(math.ceil(x / m) * m)


def extend_lines(buf: torch.Tensor, dim: int, start: int, stop: int, after: int, extra: int, mode: str) -> None:
    """Fill the lines of ``buf`` along ``dim`` around the filled span [start, stop): ``start``
    lines before it and ``after`` lines after it mirror the span (``mode`` "reflect", the edge
    line not repeated, like ``F.pad``) or repeat its edge line ("replicate"); then the last
    line is repeated ``extra`` more times (the alignment padding). Doing this in place for
    rows and then columns gives exactly ``F.pad``'s result without a second frame-sized copy.
    """

    def lines(a: int, b: int) -> torch.Tensor:
        return buf.narrow(dim, a, b - a)

    if start:
        dst = lines(0, start)
        dst.copy_(lines(start + 1, 2 * start + 1).flip(dim) if mode == "reflect" else lines(start, start + 1).expand_as(dst))
    if after:
        dst = lines(stop, stop + after)
        dst.copy_(lines(stop - 1 - after, stop - 1).flip(dim) if mode == "reflect" else lines(stop - 1, stop).expand_as(dst))
    end = stop + after
    if extra:
        dst = lines(end, end + extra)
        dst.copy_(lines(end - 1, end).expand_as(dst))


def tile_grid(height: int, width: int, tile: int, margin: int, alignment: int):
    """Yield (kept window, input window) pairs as (y0, y1, x0, x1) tuples."""
    tile = max(_round_up(tile, alignment), alignment)
    margin = _round_up(margin, alignment)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            yield (y0, y1, x0, x1), (max(y0 - margin, 0), min(y1 + margin, height), max(x0 - margin, 0), min(x1 + margin, width))
