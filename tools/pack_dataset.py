#!/usr/bin/env python3
"""Copy a rendered dataset into a compact one that `mcdenoise train` reads unchanged.

Why: a remote GPU machine that cannot reach this one takes the data as a bounded upload
(64 MiB on the lent machines here), and the full dataset (32-bit float, every pass, five
sample counts, ~11 MB a scene at 256²) would fit only five scenes. Scene variety matters more
than noise levels per scene, so the pack keeps, per scene:

* ``--per-scene`` of the ``--spp`` sample counts, rotating through them by scene index so the
  pack as a whole covers every level (each file: colour, albedo and normal as half floats);
* the reference's colour only (training never reads the reference's aux passes);
* the scene JSON, written last, as `render-dataset` does, so the pack is a valid dataset.

Half floats are exact for training purposes (10-bit mantissa, far below 1-16 spp noise);
passes go through ``hdr.sanitize`` (NaN/Inf to 0, as training's loader does) clipped to the
half range (65504), which only touches extreme fireflies.
Scenes that ``training.data.split_scenes`` holds out at ``--val-fraction`` are skipped (the
remote run trains on everything it gets; validation happens here on the real validation set).
Packing stops before ``--max-mib`` would be exceeded, so the pack always fits the upload.

    python tools/pack_dataset.py data/train .pack/a --skip 0 --max-mib 58
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from mcdenoise import hdr
from mcdenoise.dataset.layout import list_scenes
from mcdenoise.io.atomic import remove_stale_temps, temp_path
from mcdenoise.io.exr import read_frame
from mcdenoise.io.write import write_exr
from mcdenoise.training.data import split_scenes

HALF_MAX = 65504.0


def _half(a: np.ndarray) -> np.ndarray:
    return hdr.sanitize(a, -HALF_MAX, HALF_MAX).astype(np.float16)


def pack_scene(entry, out_root: Path, spps: list[int]) -> int:
    """Write one scene's pack; return its size in bytes."""
    out = out_root / entry.dir.name
    remove_stale_temps(out)
    tmp = temp_path(out)
    tmp.mkdir(parents=True)
    for spp in spps:
        f = read_frame(entry.noisy(spp))
        write_exr(tmp / entry.noisy(spp).name, {
            "ViewLayer.Combined": _half(f.color),
            "ViewLayer.Denoising Albedo": _half(f.albedo),
            "ViewLayer.Denoising Normal": _half(f.normal),
        })
    write_exr(tmp / entry.ref.name, {"ViewLayer.Combined": _half(read_frame(entry.ref).color)})
    desc = json.loads(entry.desc.read_text())
    desc["packed"] = {"spp": spps, "note": "half-float colour/albedo/normal copy made by tools/pack_dataset.py"}
    (tmp / entry.desc.name).write_text(json.dumps(desc, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sum(p.stat().st_size for p in out.iterdir())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="rendered dataset (render-dataset layout)")
    ap.add_argument("out", type=Path, help="pack folder to create or extend")
    ap.add_argument("--spp", default="1,2,4,8,16", help="sample counts to rotate through (default %(default)s)")
    ap.add_argument("--per-scene", type=int, default=2, help="sample counts kept per scene (default %(default)s)")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="skip the scenes this split holds out (default %(default)s)")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N eligible scenes (to make a second pack)")
    ap.add_argument("--max-mib", type=float, default=58.0, help="stop before the pack exceeds this size (default %(default)s)")
    args = ap.parse_args(argv)

    wanted = [int(s) for s in args.spp.split(",") if s.strip()]
    train, _ = split_scenes(list_scenes(args.src), args.val_fraction)
    budget = args.max_mib * 2**20
    args.out.mkdir(parents=True, exist_ok=True)
    used = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    packed = 0
    for entry in train[args.skip:]:
        have = [s for s in wanted if s in entry.spps]
        if not have:
            continue
        start = entry.index % len(have)
        spps = sorted({have[(start + i) % len(have)] for i in range(min(args.per_scene, len(have)))})
        if (args.out / entry.dir.name / entry.desc.name).is_file():
            continue
        size = pack_scene(entry, args.out, spps)
        if used + size > budget:
            shutil.rmtree(args.out / entry.dir.name)
            break
        used += size
        packed += 1
        print(f"{entry.dir.name}: spp {spps}, {size / 2**20:.2f} MiB (pack {used / 2**20:.1f} MiB)", flush=True)
    n = len(list_scenes(args.out))
    print(f"packed {packed} new scenes; {args.out} holds {n} scenes, {used / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
