"""Turn what a user or a farm manager passes on the command line into an ordered frame list.

Accepted forms: plain files, directories (their ``*.exr``), globs (``renders/*.exr``) and frame
patterns, written Houdini/Nuke style (``shot_####.exr``) or printf style (``shot_%04d.exr``).
A pattern is expanded over ``--frames`` (``1001-1240``, ``1-100x2``, ``1,5,9-12``) or, without
it, over the first to the last frame found on disk. Frames of a pattern that are not on disk
are kept in the list as *missing* rather than dropped, because a gap in a render is something
the farm must hear about, and because keeping them keeps ``--shard i/n`` assignments stable
whichever frames happen to exist.

Not ``fileseq``: it refuses a ``#`` in a folder name, takes ``@`` as a pattern, and accepts
ranges we reject (``10-1``, ``1-10y3``, ``1-10:3``, ``1.5``), so the accepted inputs would change.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mcdenoise.errors import InputFileError
from mcdenoise.io.atomic import is_temp
from mcdenoise.shard import in_shard

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%0?(\d*)d")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class FrameSource:
    """One input of the batch; ``frame`` is the frame number when it came from a pattern."""

    path: Path
    frame: int | None = None
    missing: bool = False


@dataclass(frozen=True)
class FramePattern:
    prefix: str
    width: int
    suffix: str

    def path(self, frame: int) -> Path:
        return Path(f"{self.prefix}{frame:0{self.width}d}{self.suffix}")

    def frames_on_disk(self) -> list[int]:
        prefix = glob.escape(self.prefix)
        found = []
        number = re.compile(re.escape(os.path.basename(self.prefix)) + r"(-?\d+)" + re.escape(self.suffix) + "$")
        for name in glob.glob(prefix + "*" + glob.escape(self.suffix)):
            m = number.match(Path(name).name)
            if m and len(m.group(1).lstrip("-")) >= self.width:
                found.append(int(m.group(1)))
        return sorted(set(found))


def parse_pattern(text: str) -> FramePattern | None:
    """``shot_####.exr`` or ``shot_%04d.exr`` -> FramePattern; None for anything else. Only the
    file name may hold the frame number (a ``#`` in a folder name is left alone)."""
    folder, name = text.rpartition("/")[0], text.rpartition("/")[2]
    lead = folder + "/" if folder else ""
    m = _HASHES.search(name)
    if m:
        return FramePattern(lead + name[: m.start()], len(m.group(0)), name[m.end() :])
    m = _PRINTF.search(name)
    if m:
        return FramePattern(lead + name[: m.start()], int(m.group(1) or 1), name[m.end() :])
    return None


# The most frames one --frames may list: far above any shot, below lists that would take
# gigabytes and minutes to build before the first frame.
MAX_FRAMES = 1_000_000


def parse_frames(text: str) -> list[int]:
    """``1001-1240``, ``1-100x2`` (every 2nd), ``1,5,9-12`` -> sorted unique frame numbers."""
    frames: set[int] = set()
    for item in text.replace(" ", "").split(","):
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?", item)
        if not m:
            raise ValueError(f"cannot read frame range {item!r}; use e.g. 1001-1240, 1-100x2 or 1,5,9-12")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise ValueError(f"frame range {item!r} is empty; write first-last with first <= last")
        if (last - first) // step + 1 + len(frames) > MAX_FRAMES:
            raise ValueError(f"frame range {text!r} holds more than {MAX_FRAMES:,} frames; split the job")
        frames.update(range(first, last + 1, step))
    return sorted(frames)


def _is_exr(path: Path) -> bool:
    # Hidden files are never inputs, nor are the temps of atomic writes (in flight, or left by a
    # killed run), which io.atomic names as hidden files too.
    return path.suffix.lower() == ".exr" and not path.name.startswith(".") and not is_temp(path)


def expand_inputs(items: list[str], frames: list[int] | None = None) -> list[FrameSource]:
    """Expand command-line inputs, in the order given, into frame sources.

    ``frames`` applies to frame patterns only. A glob or directory that matches nothing is an
    error (a typo must not turn into a silently empty farm job); a plain path that does not
    exist is kept and fails when read, with the reader's message.
    """
    sources: list[FrameSource] = []
    for item in items:
        pattern = parse_pattern(item)
        path = Path(item)
        if pattern is not None and not path.exists():
            numbers = frames if frames is not None else pattern.frames_on_disk()
            if not numbers:
                raise InputFileError(f"{item}: no frames match this pattern", fix="frame_pattern")
            if frames is None:
                numbers = list(range(numbers[0], numbers[-1] + 1))
            for n in numbers:
                p = pattern.path(n)
                sources.append(FrameSource(p, n, missing=not p.exists()))
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _is_exr(p))
            if not found:
                raise InputFileError(f"{path}: folder holds no .exr files")
            sources.extend(FrameSource(p) for p in found)
        elif _GLOB_CHARS & set(item) and not path.exists():
            found = sorted(Path(p) for p in glob.glob(item) if _is_exr(Path(p)))
            if not found:
                raise InputFileError(f"{item}: no .exr files match this glob")
            sources.extend(FrameSource(p) for p in found)
        else:
            sources.append(FrameSource(path))
    return sources


def select_shard(sources: list[FrameSource], shard: tuple[int, int]) -> list[FrameSource]:
    """This shard's frames (``mcdenoise.shard``, the rule of ``render-dataset --shard``), by
    position in the full list, missing frames included, so each machine's share never depends
    on which frames others have."""
    return [s for index, s in enumerate(sources) if in_shard(index, shard)]
