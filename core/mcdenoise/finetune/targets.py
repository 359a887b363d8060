"""Pooled training targets: the targets of a frame's windows, averaged where they overlap.

``finetune`` renders each training window of a frame with seeds of its own, its target at the
same sample count as every other window's. Where windows of one frame overlap (all of the
frame, for a shot no larger than a window, which is then rendered again with other seeds) their
targets are independent renders of the same pixels, so their mean is a target with the samples
of all of them, for no render time: seven 64-sample targets of a 128-pixel frame make one of
448 samples. The noisy inputs stay as rendered, one per window. Measured on metals_orbit
(docs/finetune.md), the pooled targets trained a better model than the same windows' own.

The pooled dataset is written beside the rendered one, never over it, and marked finished only
when whole, so a job killed while pooling pools again from the renders when resumed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mcdenoise.dataset import layout
from mcdenoise.errors import McDenoiseError

MARKER = "pooled.json"
COLOUR_PART = "ViewLayer.Combined"


def staging(dst: str | Path) -> Path:
    """Where a pooled dataset is built before it is renamed to ``dst`` (what a kill may leave)."""
    dst = Path(dst)
    return dst.with_name(dst.name + ".part")


def pooled(root: Path) -> dict | None:
    """The record of a finished pooled dataset at ``root`` (None: not there or not finished)."""
    marker = Path(root) / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def pool(src: str | Path, dst: str | Path) -> dict:
    """Write ``dst``: the scenes of ``src`` with each target replaced by the per-pixel mean of
    the targets of the same frame covering that pixel. Returns (and records in ``dst``) how
    many targets a pixel holds on average. A finished ``dst`` of as many windows is kept."""
    import numpy as np

    from mcdenoise import hdr
    from mcdenoise.io.exr import read_frame
    from mcdenoise.io.write import write_exr

    src, dst = Path(src), Path(dst)
    entries = layout.list_scenes(src)
    done = pooled(dst)
    if done is not None and done.get("windows") == len(entries):
        return done
    records = {e.index: json.loads(layout.desc_path(src, e.index).read_text()) for e in entries}
    by_frame: dict[int, list[layout.SceneEntry]] = {}
    for e in entries:
        by_frame.setdefault(int(records[e.index]["frame"]), []).append(e)
    part = staging(dst)
    shutil.rmtree(part, ignore_errors=True)
    coverage = []
    for frame, group in sorted(by_frame.items()):
        boxes = {e.index: records[e.index]["window"] for e in group}
        height = max(b[3] for b in boxes.values())
        width = max(b[2] for b in boxes.values())
        total, count = np.zeros((height, width, 3)), np.zeros((height, width, 1))
        for e in group:
            x0, y0, x1, y1 = boxes[e.index]
            colour = hdr.sanitize(read_frame(e.ref).color)
            if colour.shape[:2] != (y1 - y0, x1 - x0):
                raise McDenoiseError(f"{e.ref}: the target is {colour.shape[1]}x{colour.shape[0]} but its record says "
                                     f"window {boxes[e.index]}", fix="finetune_work",
                                     work=src.parent)
            total[y0:y1, x0:x1] += colour
            count[y0:y1, x0:x1] += 1
        mean = total / np.maximum(count, 1)
        for e in group:
            x0, y0, x1, y1 = boxes[e.index]
            out = layout.scene_dir(part, e.index)
            out.mkdir(parents=True)
            for f in e.dir.iterdir():
                if f.name != e.ref.name:
                    _link_or_copy(f, out / f.name)
            write_exr(out / e.ref.name, {COLOUR_PART: mean[y0:y1, x0:x1].astype(np.float32)}, multipart=True)
            coverage.append(float(count[y0:y1, x0:x1].mean()))
    record = {"windows": len(entries), "frames": len(by_frame),
              "targets_per_pixel": round(float(np.mean(coverage)), 3) if coverage else 0.0}
    (part / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    part.rename(dst)
    return record


def _link_or_copy(src: Path, dst: Path) -> None:
    """The noisy renders are only read: a hard link costs no space (a copy where links fail)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
