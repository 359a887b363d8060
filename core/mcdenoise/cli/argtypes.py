"""argparse value types shared by several verbs, so a flag like ``--shard`` or ``--device``
reads the same way in every verb that has it (farm scripts use several). A bad value is then
argparse's usage error, before any work, rather than a check inside a verb's ``main``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from mcdenoise.choices import MIN_TILE_SIDE, TORCH_DEVICES, is_torch_device, spoken


def shard(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n: this process takes the items of ``mcdenoise.shard.in_shard``."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def torch_device(text: str) -> str:
    """A name of ``choices.DEVICES`` (``auto``, ``cpu``, ``cuda``, ``mps``, ``xpu``) or ``cuda:N`` /
    ``xpu:N``, kept as written (whether that GPU is there is checked when the model loads)."""
    if not is_torch_device(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use {spoken(TORCH_DEVICES)}")
    return text


def names(allowed: Iterable[str], what: str) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``allowed`` (``fast,high``; empty for none)."""
    allowed = tuple(allowed)

    def parse(text: str) -> list[str]:
        picked = [v.strip() for v in text.split(",") if v.strip()]
        for name in picked:
            if name not in allowed:
                raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; use {', '.join(allowed)}")
        return picked

    return parse


def int_list(text: str) -> list[int]:
    """Comma-separated integers, in the order given: ``1,4``."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def frame_list(text: str) -> list[int]:
    """Frame numbers as ``batch.sequence.parse_frames`` reads them: ``1-12``, ``1-100x2``, ``1,5,9-12``."""
    from mcdenoise.batch.sequence import parse_frames

    try:
        return parse_frames(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def at_least(low: int) -> Callable[[str], int]:
    """An integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"  # argparse names the type in its messages
    return parse


# The smallest --max-memory (GiB): the process itself takes half a GiB
# (inference.runtime.PROCESS_BASE_BYTES), so a smaller budget fits no frame at all.
MIN_MEMORY_GIB = 0.75


def memory_gib(text: str) -> float:
    """A memory budget in GiB: a finite number >= :data:`MIN_MEMORY_GIB`, or 0 for no limit."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GiB, got {text!r}") from None
    if not math.isfinite(value) or (value != 0 and value < MIN_MEMORY_GIB):
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or a number of GiB >= {MIN_MEMORY_GIB}, got {text!r}")
    return value


def tile_side(text: str) -> int:
    """A tile side in pixels: 0 (the whole frame) or at least :data:`MIN_TILE_SIDE`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of pixels, got {text!r}") from None
    if value != 0 and value < MIN_TILE_SIDE:
        raise argparse.ArgumentTypeError(f"must be 0 (the whole frame) or >= {MIN_TILE_SIDE} pixels, got {value}")
    return value


def png_path(text: str) -> Path:
    """A path ending in .png (a preview is PNG bytes whatever the name says)."""
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"a preview is a PNG image, so its name must end in .png, got {text!r}")
    return path
