"""``render-suite``: suite scene -> noisy EXRs + two independent references + JSON marker.

The same machinery as the training renders (``dataset.render``: device setup, output and
bounce settings with Cycles' denoiser off, atomic EXR writes, the exposure probe, per-folder
locks, cleanup of an interrupted scene), so the suite differs from the training data in its
scenes only. Resumable (a scene whose JSON exists is skipped) and deterministic: every Cycles
seed derives from the scene's name, and the exposure probe is not jittered.

Two references per scene, rendered alike but with independent seeds: the PSNR of one against
the other says how much of a score is the references' own noise (a perfect denoiser would score
about 3 dB above it against reference A).
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from mcdenoise.dataset import layout
from mcdenoise.dataset.blender_scene import import_bpy
from mcdenoise.dataset.render import (
    BOUNCES,
    _setup_device,
    acquire_scene,
    calibrate_exposure,
    clean_partial,
    configure,
    cycles_seed,
    release_scene,
    render_exr,
    render_noisy,
)
from mcdenoise.dataset.suite import SCENES, SUITE_VERSION, build
from mcdenoise.errors import McDenoiseError, OutputError
from mcdenoise.io.atomic import atomic_output

DEFAULT_SPPS = (1, 2, 4, 8, 16)
DEFAULT_REF_SPP = 1024


def suite_seed(name: str) -> int:
    """The scene seed every Cycles seed of a suite scene derives from (``render.cycles_seed``):
    a stable hash of its name, so renaming a scene is the only thing that changes its noise."""
    return zlib.crc32(f"mcdenoise-suite:{name}".encode())


def _clean(folder: Path) -> None:
    """Leftovers of an interrupted run: stale temps and the probe (``render.clean_partial``),
    then any render of this scene, since the scene is redone from scratch."""
    clean_partial(folder)
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and layout.is_suite_render(folder.name, f.name):
                f.unlink()


def render_suite_scene(root: Path, name: str, res: int, spps: list[int], ref_spp: int, ref_threshold: float,
                       device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Render one suite scene completely and write its JSON marker last; returns the JSON record.

    ``ref_threshold`` > 0 renders the references with Cycles' adaptive sampling at that noise
    threshold (up to ``ref_spp``); 0 renders exactly ``ref_spp`` samples in every pixel.
    """
    bpy = import_bpy()
    t0 = time.perf_counter()
    folder = layout.suite_dir(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    _clean(folder)
    scene = build(name)
    used_device = _setup_device(bpy, scene, device)
    configure(scene, res, threads)
    if ref_threshold > 0:
        scene.cycles.adaptive_threshold = ref_threshold  # used by the reference renders only
    seed = suite_seed(name)
    t_build = time.perf_counter() - t0
    exposure = calibrate_exposure(bpy, scene, folder, seed, res, jitter_stops=(0.0, 0.0))
    seconds, noisy_seeds = render_noisy(bpy, scene, seed, spps, lambda spp: layout.suite_noisy_path(root, name, spp))
    ref_seeds = {}
    for role, second in (("ref", False), ("ref2", True)):
        t = time.perf_counter()
        ref_seeds[role] = cycles_seed(seed, role)
        render_exr(bpy, scene, layout.suite_ref_path(root, name, second), ref_spp, ref_seeds[role],
                   adaptive=ref_threshold > 0)
        seconds[role] = round(time.perf_counter() - t, 3)
    seconds["build"] = round(t_build, 3)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    entry = SCENES[name]
    record = {
        "layout_version": 1, "suite_version": SUITE_VERSION, "name": name, "kind": entry.kind,
        "summary": entry.summary,
        "render": {
            "resolution": [res, res], "spp": list(spps), "ref_spp": ref_spp, "noisy_seeds": noisy_seeds,
            "ref_seeds": ref_seeds,
            "adaptive_sampling": {"noisy": False, "ref": ref_threshold > 0, "ref_threshold": ref_threshold},
            "denoising": False, "bounces": BOUNCES, "device": used_device, "threads": threads,
            "blender": bpy.app.version_string, "passes": list(layout.PASSES), **exposure, "seconds": seconds,
        },
    }
    with atomic_output(layout.suite_desc_path(root, name)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def render_suite(root: str | Path, names: list[str] | None = None, res: int = 256, spps: list[int] | None = None,
                 ref_spp: int = DEFAULT_REF_SPP, ref_threshold: float = 0.0, device: str = "cpu",
                 threads: int = 0, progress: bool = True) -> dict[str, Any]:
    """Render every unfinished scene of ``names`` (default: the whole suite, in table order)."""
    from tqdm import tqdm

    import_bpy()  # fail early and clearly, before creating any folder
    names = list(names or SCENES)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        raise McDenoiseError(f"unknown suite scene(s) {', '.join(unknown)}; known: {', '.join(SCENES)}")
    spps = list(spps or DEFAULT_SPPS)
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create suite folder {root}: {exc}") from exc

    def done(name: str) -> bool:
        return layout.suite_desc_path(root, name).is_file()

    skipped = [n for n in names if done(n)]
    busy: list[str] = []
    times: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm([n for n in names if not done(n)], unit="scene", disable=not progress, dynamic_ncols=True,
               desc=f"render {root.name}", file=sys.stderr)
    for name in bar:
        folder = layout.suite_dir(root, name)
        if not acquire_scene(folder):
            busy.append(name)
            continue
        try:
            if done(name):  # finished by another process meanwhile
                skipped.append(name)
                continue
            rec = render_suite_scene(root, name, res, spps, ref_spp, ref_threshold, device, threads)
        finally:
            release_scene(folder)
        times.append(rec["render"]["seconds"]["total"])
        bar.set_postfix(scene=name, last=f"{times[-1]:.1f}s")
        if not progress:  # one line per scene instead of a bar: readable in a log file
            s = rec["render"]["seconds"]
            print(f"{name} ({rec['kind']}) done in {times[-1]:.1f} s (refs {s['ref']:.1f} + {s['ref2']:.1f} s, "
                  f"exposure {rec['render']['exposure']:.3g})", flush=True)
    bar.close()
    return {"rendered": len(times), "skipped": len(skipped), "busy": len(busy), "selected": len(names),
            "seconds": time.perf_counter() - t0, "mean_scene_seconds": sum(times) / len(times) if times else 0.0}
