"""argparse value types shared by several verbs, so a flag like ``--shard`` reads the same way
in ``render-dataset`` and ``denoise`` (farm scripts use both)."""

from __future__ import annotations

import argparse


def shard(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n: this process takes the items whose index % n == i."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard i/n needs 0 <= i < n, got {text!r}")
    return i, n
