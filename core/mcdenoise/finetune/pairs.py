"""Training pairs that already exist as files (``finetune --pairs noisy/ refs/``): renders from
another renderer, or made by hand, matched by frame number and laid out as a training dataset.

A file's frame number is the last run of digits in its name (``shot_0042.exr``,
``beauty.1042.exr``); the two folders may name their files differently. Every noisy frame needs
a reference of the same number and size (extra references are ignored), and the files are
linked, not copied, into the dataset layout that ``training`` reads (``dataset.layout``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from mcdenoise.batch.sequence import expand_inputs
from mcdenoise.dataset import layout
from mcdenoise.errors import InputFileError
from mcdenoise.io.atomic import atomic_output
from mcdenoise.io.exr import open_exr

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
PAIRS_SPP = 1  # the sample-count label of a pair's noisy file in the layout (any one label will do)


@dataclass(frozen=True)
class Pair:
    frame: int
    noisy: Path
    ref: Path


def frame_number(path: Path) -> int | None:
    """The last run of digits in the file name without its extension, or None."""
    m = _LAST_NUMBER.search(path.name[: -len(path.suffix)] if path.suffix else path.name)
    return int(m.group(1)) if m else None


def _numbered(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder of EXR renders")
    found: dict[int, Path] = {}
    for source in expand_inputs([str(folder)]):  # the batch's rule for a folder's frames
        n = frame_number(source.path)
        if n is None:
            raise InputFileError(f"{source.path}: no frame number in the file name", fix="pairs_match")
        if n in found:
            raise InputFileError(f"{found[n]} and {source.path} are both frame {n}", fix="pairs_match")
        found[n] = source.path
    return found


def frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of an EXR's data window, from its header."""
    (x0, y0), (x1, y1) = open_exr(path, header_only=True).parts[0].header["dataWindow"]
    return int(x1 - x0 + 1), int(y1 - y0 + 1)


def match_pairs(noisy_dir: str | Path, refs_dir: str | Path) -> list[Pair]:
    """Noisy renders and their references, by frame number, sizes checked; sorted by frame."""
    noisy, refs = _numbered(Path(noisy_dir)), _numbered(Path(refs_dir))
    unmatched = sorted(set(noisy) - set(refs))
    if unmatched:
        shown = ", ".join(str(noisy[n]) for n in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
        raise InputFileError(f"no reference in {refs_dir} for {len(unmatched)} noisy frame(s): {shown}", fix="pairs_match")
    pairs = [Pair(n, noisy[n], refs[n]) for n in sorted(noisy)]
    for p in pairs:
        a, b = frame_size(p.noisy), frame_size(p.ref)
        if a != b:
            raise InputFileError(f"{p.noisy} is {a[0]}x{a[1]} but its reference {p.ref} is {b[0]}x{b[1]}", fix="pairs_size")
    return pairs


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # no symlinks here (Windows without the privilege): copy
        shutil.copyfile(src, dst)


def stage_pair(root: Path, index: int, pair: Pair) -> None:
    """Lay one pair out as scene ``index`` of the dataset at ``root``, its JSON last."""
    if layout.is_done(root, index):
        return
    layout.scene_dir(root, index).mkdir(parents=True, exist_ok=True)
    _link(pair.noisy, layout.noisy_path(root, index, PAIRS_SPP))
    _link(pair.ref, layout.ref_path(root, index))
    record = {"frame": pair.frame, "noisy": str(pair.noisy.resolve()), "ref": str(pair.ref.resolve())}
    with atomic_output(layout.desc_path(root, index)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
