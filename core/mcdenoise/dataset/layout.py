"""On-disk layout of a rendered dataset: the single source of truth for names.

Training, benchmarking and the renderer all import these helpers instead of formatting paths
themselves, so a rename can never silently split a dataset into files nobody reads::

    DIR/scene_00042/scene_00042.json          scene description + render settings, written LAST
    DIR/scene_00042/scene_00042_0001spp.exr   noisy render at 1 spp (and 0002, 0004, ...)
    DIR/scene_00042/scene_00042_ref.exr       high-sample target, independent Cycles seed

The JSON is the "done" marker: it is written (atomically) only after every EXR of the scene is
in place, so a scene without it is unfinished and must be ignored by readers. Files being
written carry ``TMP_SUFFIX`` and are moved into place with ``os.replace``.

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
#: Suffix of a file still being written; never a valid dataset file.
TMP_SUFFIX = ".partial"
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


def tmp_path(final: str | Path) -> Path:
    """Where ``final`` is written before being renamed: same folder, so ``os.replace`` is atomic."""
    final = Path(final)
    return final.with_name(final.name + TMP_SUFFIX)


def is_tmp(path: str | Path) -> bool:
    return Path(path).name.endswith(TMP_SUFFIX)


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
    root = Path(root)
    if not root.is_dir():
        return []
    entries: list[SceneEntry] = []
    for d in sorted(root.iterdir()):
        m = SCENE_DIR_RE.match(d.name)
        if not m or not d.is_dir():
            continue
        idx = int(m.group(1))
        if not (d / f"{d.name}.json").is_file() or not (d / f"{d.name}_ref.exr").is_file():
            continue
        spps = sorted(
            int(n.group(2))
            for n in (NOISY_RE.match(f.name) for f in d.iterdir())
            if n and int(n.group(1)) == idx
        )
        entries.append(SceneEntry(index=idx, dir=d, spps=tuple(spps)))
    entries.sort(key=lambda e: e.index)
    return entries
