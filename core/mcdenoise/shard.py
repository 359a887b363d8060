"""``--shard i/n``: the one rule that splits a job over n processes or machines without any
coordination between them. ``render-dataset`` applies it to scene indices and ``denoise`` to
positions in the frame list; pure Python, so neither pulls in bpy or torch for it."""

from __future__ import annotations


def in_shard(index: int, shard: tuple[int, int]) -> bool:
    """Whether item ``index`` belongs to shard ``i`` of ``n`` (``index % n == i``): every item
    lands in exactly one shard, and which one never depends on the other items."""
    i, n = shard
    return index % n == i
