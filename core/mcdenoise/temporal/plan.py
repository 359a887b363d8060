"""Which frames a temporal batch denoises: whether the temporal path applies, each shard's
frames, and the warm-up frames a shard or a resumed run denoises first without writing them.

The temporal output of a frame depends on the ``window`` frames before it
(:mod:`mcdenoise.temporal.history`), so:

* shards take *contiguous blocks* of the frame list (shard ``i`` of ``n`` takes the ``i``-th of
  ``n`` near-equal blocks) instead of every ``n``-th frame, which would give no shard two
  consecutive frames;
* before a frame whose previous frame this run will not denoise (the first frame of a block, a
  frame after finished outputs a resumed run skips), the up to ``window`` frames before it are
  denoised as *warm-up*: read, denoised and fed to the history, never written or counted.

With both, shards joined and a resumed run give the pixels of one uninterrupted run, exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from mcdenoise.batch.plan import Job, output_is_complete, output_path
from mcdenoise.batch.sequence import FrameSource
from mcdenoise.errors import McDenoiseError
from mcdenoise.io.exr import open_exr, views
from mcdenoise.io.passes import PassNames, split_channel_name


@dataclass(frozen=True)
class TemporalChoice:
    """``use``: whether the temporal path runs; ``reason``: why, in words for ``-v``; ``tell``:
    worth saying without ``-v`` (a sequence that would run temporally but for its passes)."""

    use: bool
    reason: str
    tell: bool = False


def has_vector_pass(path: Path, names: PassNames) -> bool:
    """Whether a frame's header lists a Vector pass (one of ``names.vector``; headers only)."""
    wanted = {n.lower() for n in names.vector}
    try:
        header = open_exr(path, header_only=True)
    except McDenoiseError:
        return False  # the reader reports a broken frame when it gets to it
    return any(split_channel_name(ch.name)[1].lower() in wanted
               for part in header.parts for ch in part.header.get("channels", []))


def _views(path: Path) -> int:
    """How many views a frame holds (a stereo file: 2); its history would follow one."""
    try:
        return len(views(open_exr(path, header_only=True)))
    except McDenoiseError:
        return 0  # the reader reports a broken frame when it gets to it


def choose(sources: list[FrameSource], names: PassNames, enabled: bool = True) -> TemporalChoice:
    """The temporal path runs on a numbered sequence (a frame pattern) with at least two
    consecutive frame numbers whose first frame on disk carries a Vector pass."""
    if not enabled:
        return TemporalChoice(False, "turned off (--no-temporal)")
    if any(s.frame is None for s in sources):
        return TemporalChoice(False, "inputs are not one numbered sequence (give a frame pattern such as shot_####.exr)")
    numbers = sorted({s.frame for s in sources})
    if not any(b == a + 1 for a, b in itertools.pairwise(numbers)):
        return TemporalChoice(False, "no two consecutive frames")
    first = next((s for s in sources if not s.missing), None)
    if first is None:
        return TemporalChoice(False, "no frame on disk")
    if names.view is None and _views(first.path) > 1:
        return TemporalChoice(False, f"{first.path} holds several views (stereo), denoised frame by frame", tell=True)
    if not has_vector_pass(first.path, names):
        return TemporalChoice(False, f"no Vector pass in {first.path}, denoising frame by frame (render the Vector "
                                     "pass, with motion blur off, to denoise temporally)", tell=True)
    return TemporalChoice(True, "consecutive frames with a Vector pass")


def shard_block(sources: list[FrameSource], shard: tuple[int, int]) -> list[FrameSource]:
    """Shard ``i`` of ``n``'s contiguous block of the frame list: blocks differ in length by at
    most one frame and, like ``--shard`` everywhere, depend only on the list, never on which
    frames exist."""
    i, n = shard
    count = len(sources)
    return sources[i * count // n : (i + 1) * count // n]


def with_warmup(jobs: list[Job], sequence: list[FrameSource], window: int, out_dir: Path | None, suffix: str,
                pass_name: str, overwrite: bool) -> list[Job]:
    """``jobs`` (this run's, in frame order) with warm-up jobs inserted before each job that
    will be denoised but whose previous frame will not be: the up to ``window`` frames of
    ``sequence`` (the whole frame list, every shard's) just before it, consecutive and on disk."""
    by_number = {s.frame: s for s in sequence if s.frame is not None}
    out: list[Job] = []
    last_denoised: int | None = None
    for job in jobs:
        n = job.source.frame
        runs = not job.source.missing and (overwrite or not output_is_complete(job.output, pass_name))
        if not runs or n is None:
            out.append(job)
            continue
        if last_denoised != n - 1:
            warm: list[Job] = []
            for k in range(n - 1, n - 1 - window, -1):
                source = by_number.get(k)
                if source is None or source.missing:
                    break  # history never crosses a gap
                warm.append(Job(source, output_path(source.path, out_dir, suffix), warmup=True))
            out.extend(reversed(warm))
        out.append(job)
        last_denoised = n
    return out


def without_warmup(jobs: list[Job]) -> list[Job]:
    return [j for j in jobs if not j.warmup]


__all__ = ["TemporalChoice", "choose", "has_vector_pass", "shard_block", "with_warmup", "without_warmup"]
