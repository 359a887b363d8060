"""On-disk layout of a rendered dataset: the single source of truth for names.

Training, benchmarking and the renderer all import these helpers instead of formatting paths
themselves, so a rename can never silently split a dataset into files nobody reads::

    DIR/scene_00042/scene_00042.json          scene description + render settings, written LAST
    DIR/scene_00042/scene_00042_0001spp.exr   noisy render at 1 spp (and 0002, 0004, ...)
    DIR/scene_00042/scene_00042_ref.exr       high-sample target, independent Cycles seed

Training *sequences* (``render-dataset --frames T``, T > 1) use the same scene folders with the
frame number last (frames 1..T: the animated shots' naming rule, below); every EXR of a sequence
also holds the ``Vector`` pass::

    DIR/scene_00042/scene_00042.json              description, motion, render settings, "frames": T; LAST
    DIR/scene_00042/scene_00042_0004spp_0003.exr  frame 3 at 4 spp (and every other sample count)
    DIR/scene_00042/scene_00042_ref_0003.exr      frame 3's reference, independent Cycles seed

``list_scenes`` lists still scenes only (a sequence has no ``_ref.exr``) and ``list_sequences``
sequences only, so one kind can never be read as the other.

The benchmark suite (``dataset.suite``, ``mcdenoise render-suite``) uses the same scheme with a
scene *name* (lower-case letters, digits, ``_``) in place of ``scene_NNNNN``, and a second,
independent reference, so the references' own noise can be measured (ref vs ref2)::

    SUITE/fog_spot/fog_spot.json              kind + render settings, written LAST
    SUITE/fog_spot/fog_spot_0004spp.exr       noisy render at 4 spp (and 0001, 0002, ...)
    SUITE/fog_spot/fog_spot_ref.exr           reference A: what every method is scored against
    SUITE/fog_spot/fog_spot_ref2.exr          reference B: same samples, another Cycles seed

The JSON is the "done" marker: it is written (atomically) only after every EXR of the scene is
in place, so a scene without it is unfinished and must be ignored by readers. Files being
written are temps of :mod:`mcdenoise.io.atomic` (hidden, matching none of the names below) and
are moved into place with ``os.replace``.

Pure Python on purpose (no bpy, no numpy): training code imports it on machines without Blender.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Passes every EXR holds (multilayer, one part per pass: ``ViewLayer.<Pass>``).
PASSES: tuple[str, ...] = ("Combined", "Denoising Albedo", "Denoising Normal", "Depth")
#: Part/channel prefix Blender uses for the default view layer.
VIEW_LAYER = "ViewLayer"
#: Exclusive claim on a scene folder while a process renders it (holds "host pid").
LOCK_NAME = ".lock"

SCENE_DIR_RE = re.compile(r"^scene_(\d{5,})$")
NOISY_RE = re.compile(r"^scene_(\d{5,})_(\d{4,})spp\.exr$")
REF_RE = re.compile(r"^scene_(\d{5,})_ref\.exr$")
DESC_RE = re.compile(r"^scene_(\d{5,})\.json$")


def scene_name(idx: int) -> str:
    """``scene_00042``: zero-padded so directory listings sort in index order."""
    if idx < 0:
        raise ValueError(f"scene index must be >= 0, got {idx}")
    return f"scene_{idx:05d}"


def scene_dir(root: str | Path, idx: int) -> Path:
    return Path(root) / scene_name(idx)


def noisy_path(root: str | Path, idx: int, spp: int) -> Path:
    if spp < 1:
        raise ValueError(f"spp must be >= 1, got {spp}")
    return scene_dir(root, idx) / f"{scene_name(idx)}_{spp:04d}spp.exr"


def ref_path(root: str | Path, idx: int) -> Path:
    return scene_dir(root, idx) / f"{scene_name(idx)}_ref.exr"


def desc_path(root: str | Path, idx: int) -> Path:
    return scene_dir(root, idx) / f"{scene_name(idx)}.json"


@dataclass(frozen=True)
class SceneEntry:
    """A finished scene: its index, folder and the noisy sample counts present on disk."""

    index: int
    dir: Path
    spps: tuple[int, ...]

    @property
    def ref(self) -> Path:
        return self.dir / f"{self.dir.name}_ref.exr"

    @property
    def desc(self) -> Path:
        return self.dir / f"{self.dir.name}.json"

    def noisy(self, spp: int) -> Path:
        return self.dir / f"{self.dir.name}_{spp:04d}spp.exr"


def is_done(root: str | Path, idx: int) -> bool:
    """A scene counts as rendered once its description JSON (written last) exists."""
    return desc_path(root, idx).is_file()


def list_scenes(root: str | Path) -> list[SceneEntry]:
    """Finished scenes under ``root`` (JSON and reference present), sorted by index.

    Unfinished folders (interrupted renders) are skipped rather than reported, because a reader
    can do nothing useful with them and the renderer will redo them on its next run.
    """
    entries: list[SceneEntry] = []
    for idx, d in _scene_dirs(root):
        if not (d / f"{d.name}.json").is_file() or not (d / f"{d.name}_ref.exr").is_file():
            continue
        spps = sorted(
            int(n.group(2))
            for n in (NOISY_RE.match(f.name) for f in d.iterdir())
            if n and int(n.group(1)) == idx
        )
        entries.append(SceneEntry(index=idx, dir=d, spps=tuple(spps)))
    return entries


def _scene_dirs(root: str | Path) -> list[tuple[int, Path]]:
    """(index, folder) of every ``scene_NNNNN`` folder under ``root``, by index: stills and
    sequences share the numbering (none when ``root`` does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), d) for d in root.iterdir() if (m := SCENE_DIR_RE.match(d.name)) and d.is_dir()]
    return sorted(found)  # by index, then by name


# -- the benchmark suite: named scenes, two references -------------------------------------------

SUITE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _suite_name(name: str) -> str:
    if not SUITE_NAME_RE.match(name):
        raise ValueError(f"suite scene names are lower-case letters, digits and '_', got {name!r}")
    return name


def suite_dir(root: str | Path, name: str) -> Path:
    return Path(root) / _suite_name(name)


def suite_noisy_path(root: str | Path, name: str, spp: int) -> Path:
    if spp < 1:
        raise ValueError(f"spp must be >= 1, got {spp}")
    return suite_dir(root, name) / f"{name}_{spp:04d}spp.exr"


def suite_ref_path(root: str | Path, name: str, second: bool = False) -> Path:
    """Reference A (``_ref.exr``), or with ``second`` reference B (``_ref2.exr``)."""
    return suite_dir(root, name) / f"{name}_{'ref2' if second else 'ref'}.exr"


def suite_desc_path(root: str | Path, name: str) -> Path:
    return suite_dir(root, name) / f"{name}.json"


def is_suite_render(folder_name: str, file_name: str) -> bool:
    """Whether ``file_name`` is one of the renders (noisy or reference) of suite scene ``folder_name``."""
    m = re.fullmatch(r"(.+)_(?:\d{4,}spp|ref|ref2)\.exr", file_name)
    return m is not None and m.group(1) == folder_name


@dataclass(frozen=True)
class SuiteEntry:
    """A finished suite scene: its name, folder and the noisy sample counts present on disk."""

    name: str
    dir: Path
    spps: tuple[int, ...]

    @property
    def ref(self) -> Path:
        return self.dir / f"{self.name}_ref.exr"

    @property
    def ref2(self) -> Path:
        return self.dir / f"{self.name}_ref2.exr"

    @property
    def desc(self) -> Path:
        return self.dir / f"{self.name}.json"

    def noisy(self, spp: int) -> Path:
        return self.dir / f"{self.name}_{spp:04d}spp.exr"


def list_suite(root: str | Path) -> list[SuiteEntry]:
    """Finished suite scenes under ``root`` (JSON and both references present), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    entries: list[SuiteEntry] = []
    for d in sorted(root.iterdir()):
        if not d.is_dir() or not SUITE_NAME_RE.match(d.name):
            continue
        e = SuiteEntry(d.name, d, ())
        if not (e.desc.is_file() and e.ref.is_file() and e.ref2.is_file()):
            continue
        spps = sorted(int(m.group(1)) for m in (re.fullmatch(rf"{re.escape(d.name)}_(\d{{4,}})spp\.exr", f.name)
                                                 for f in d.iterdir()) if m)
        entries.append(SuiteEntry(d.name, d, tuple(spps)))
    return entries


# -- animated shots (``dataset.sequence_render``): numbered frames for the temporal benchmark -----
#
#     SEQ/mixed_dolly/mixed_dolly.json              shot + render settings, written LAST
#     SEQ/mixed_dolly/mixed_dolly_0004spp_0001.exr  frame 1 at 4 spp, with the Vector pass
#     SEQ/mixed_dolly/mixed_dolly_ref_0001.exr      frame 1's reference
#     SEQ/mixed_dolly/mixed_dolly_ref2_0001.exr     its second, independent reference (optional)
#
# The frame number comes last, so ``mcdenoise denoise 'SEQ/mixed_dolly/mixed_dolly_0004spp_####.exr'``
# denoises a shot as a farm would.

def sequence_noisy_path(root: str | Path, shot: str, spp: int, frame: int) -> Path:
    if spp < 1:
        raise ValueError(f"spp must be >= 1, got {spp}")
    return suite_dir(root, shot) / f"{shot}_{spp:04d}spp_{frame:04d}.exr"


def sequence_ref_path(root: str | Path, shot: str, frame: int, second: bool = False) -> Path:
    """Frame ``frame``'s reference, or with ``second`` its second, independent one (``_ref2_``)."""
    return suite_dir(root, shot) / f"{shot}_{'ref2' if second else 'ref'}_{frame:04d}.exr"


def sequence_pattern(root: str | Path, shot: str, spp: int) -> str:
    """The noisy frames of a shot as a ``denoise`` frame pattern."""
    return str(suite_dir(root, shot) / f"{shot}_{spp:04d}spp_####.exr")


# -- training sequences: the shots' naming rule in the dataset's scene folders --------------------

def scene_noisy_frame_path(root: str | Path, idx: int, spp: int, frame: int) -> Path:
    """``DIR/scene_00042/scene_00042_0004spp_0003.exr``: noisy frame ``frame`` of sequence ``idx``."""
    return sequence_noisy_path(root, scene_name(idx), spp, frame)


def scene_ref_frame_path(root: str | Path, idx: int, frame: int) -> Path:
    """``DIR/scene_00042/scene_00042_ref_0003.exr``: the reference of frame ``frame``."""
    return sequence_ref_path(root, scene_name(idx), frame)


def frames_of(desc: Path) -> int | None:
    """The ``"frames"`` a scene's JSON records (sequences only); None for a still scene or a JSON
    that cannot be read."""
    import json  # noqa: PLC0415

    try:
        frames = json.loads(desc.read_text()).get("frames")
    except (OSError, ValueError, AttributeError):
        return None
    return frames if isinstance(frames, int) and frames >= 1 else None


@dataclass(frozen=True)
class SequenceEntry:
    """A finished training sequence: its index, folder, number of frames (1..frames) and the
    noisy sample counts present for every frame."""

    index: int
    dir: Path
    frames: int
    spps: tuple[int, ...]

    @property
    def desc(self) -> Path:
        return self.dir / f"{self.dir.name}.json"

    def noisy(self, spp: int, frame: int) -> Path:
        return sequence_noisy_path(self.dir.parent, self.dir.name, spp, frame)

    def ref(self, frame: int) -> Path:
        return sequence_ref_path(self.dir.parent, self.dir.name, frame)


def list_sequences(root: str | Path) -> list[SequenceEntry]:
    """Finished training sequences under ``root`` (JSON with ``"frames"`` and every frame's
    reference present), sorted by index; still scenes and unfinished folders are skipped."""
    entries: list[SequenceEntry] = []
    for idx, d in _scene_dirs(root):
        frames = frames_of(d / f"{d.name}.json")
        if frames is None:
            continue
        e = SequenceEntry(idx, d, frames, ())
        if not all(e.ref(t).is_file() for t in range(1, frames + 1)):
            continue
        found: dict[int, set[int]] = {}
        for f in d.iterdir():
            n = re.fullmatch(rf"{re.escape(d.name)}_(\d{{4,}})spp_(\d{{4,}})\.exr", f.name)
            if n:
                found.setdefault(int(n.group(1)), set()).add(int(n.group(2)))
        spps = tuple(sorted(s for s, got in found.items() if got >= set(range(1, frames + 1))))
        entries.append(SequenceEntry(e.index, d, frames, spps))
    return entries
