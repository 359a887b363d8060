"""Animated shots for the temporal benchmark (``mcdenoise render-suite --shots``): a suite scene
(``dataset.suite``) with a moving camera and moving objects, rendered frame by frame as an
artist renders an animation: a new Cycles seed every frame (Blender's animated seed), motion
blur off and the Vector pass on, noisy frames at a few samples and a reference per frame.

The same machinery as the suite (``dataset.render``: output settings, exposure probe, atomic
writes, per-folder locks) and the same determinism: every seed derives from the shot's name and
the frame number, so a re-run renders the same pixels. Resumable: a frame whose file exists is
not rendered again, and the shot's JSON is written last. (In one process Cycles gives a
few-sample render other noise after a 1024-sample render than before one, same seed or not, so
the first noisy frame a resumed run renders is another draw of the same noise than an
uninterrupted run would have written; the frames after it match again.) Files are named by ``dataset.layout``
(``<shot>_0004spp_0001.exr``, ``<shot>_ref_0001.exr``), the frame number last, so the noisy
frames are a ``denoise`` frame pattern.

Each shot is also saved as ``<shot>/<shot>.blend`` (:func:`save_blend`): the same scene, motion,
resolution, exposure and bounces, frames 1 .. ``frames``, Blender's animated seed, at the noisy
sample count. ``mcdenoise finetune`` reads that file, so a model tuned on some frames of a shot
can be scored by ``bench --sequence`` on frames of the same shot it never saw (issue 19's
measurement, ``tools/finetune_table.py``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcdenoise.dataset import layout
from mcdenoise.dataset.blender_scene import _aim, import_bpy
from mcdenoise.dataset.render import (
    BOUNCES,
    _quiet_stdout,
    _setup_device,
    acquire_scene,
    calibrate_exposure,
    clean_partial,
    configure,
    cycles_seed,
    release_scene,
    render_exr,
)
from mcdenoise.dataset.suite import build
from mcdenoise.dataset.suite_render import suite_seed
from mcdenoise.errors import McDenoiseError, OutputError
from mcdenoise.io.atomic import atomic_output

# The motion of every shot is keyed over this many frames; a shot rendered with fewer frames
# shows the start of the same motion (the motion per frame never depends on --frames).
SPAN = 24


@dataclass(frozen=True)
class Shot:
    """An animated shot: the suite scene it starts from, what moves, and the function that keys
    the motion on frames 1 .. SPAN + 1 (``animate(bpy, scene)``)."""

    scene: str
    summary: str
    animate: Callable[[Any, Any], None]


def _key_camera(bpy: Any, start: tuple[float, ...], end: tuple[float, ...], target: tuple[float, ...],
                target_end: tuple[float, ...] | None = None) -> None:
    """The camera travels in a straight line from ``start`` to ``end`` over the span, aimed at
    ``target`` on every frame (keyed each frame, so it never drifts off between keys); with
    ``target_end`` the point it aims at travels too (a pan)."""
    cam = bpy.context.scene.camera
    for frame in range(1, SPAN + 2):
        t = (frame - 1) / SPAN
        cam.location = [a + (b - a) * t for a, b in zip(start, end)]
        _aim(cam, target if target_end is None else [a + (b - a) * t for a, b in zip(target, target_end)])
        cam.keyframe_insert("location", frame=frame)
        cam.keyframe_insert("rotation_euler", frame=frame)


def _key_object(bpy: Any, name: str, location: tuple[float, ...] | None = None, turn: float = 0.0) -> None:
    """Object ``name`` moves by ``location`` and turns ``turn`` radians about Z over the span."""
    obj = bpy.data.objects[name]
    start_loc, start_rot = tuple(obj.location), tuple(obj.rotation_euler)
    for frame, t in ((1, 0.0), (SPAN + 1, 1.0)):
        if location is not None:
            obj.location = [a + d * t for a, d in zip(start_loc, location)]
            obj.keyframe_insert("location", frame=frame)
        if turn:
            obj.rotation_euler = (start_rot[0], start_rot[1], start_rot[2] + turn * t)
            obj.keyframe_insert("rotation_euler", frame=frame)


def _mixed_dolly(bpy: Any, scene: Any) -> None:
    # The still life of the suite's "mixed": glass, chrome, a textured book, a candle flame.
    _key_camera(bpy, (-0.35, -1.4, 0.65), (0.45, -1.15, 0.5), (0.0, 0.4, 0.12))
    _key_object(bpy, "obj1", location=(0.5, -0.15, 0.0))  # the chrome ball rolls across the table
    _key_object(bpy, "obj4", turn=math.pi / 2)  # the gold torus turns
    _key_object(bpy, "obj2", turn=-0.4)  # the book turns


def _metals_orbit(bpy: Any, scene: Any) -> None:
    _key_camera(bpy, (0.6, -2.6, 1.3), (-0.2, -2.5, 1.2), (0.2, 0.8, 0.4))
    _key_object(bpy, "obj2", turn=math.pi / 3)  # the copper Suzanne turns: moving highlights
    _key_object(bpy, "obj0", location=(0.4, 0.2, 0.0))  # the chrome ball slides


def _interior_pan(bpy: Any, scene: Any) -> None:
    # The suite's "interior": wave-textured floor, a sun patch through the window, bounce light.
    _key_camera(bpy, (2.4, -2.2, 1.6), (1.5, -1.7, 1.45), (-0.6, 1.2, 0.9), (-1.4, 0.7, 0.8))  # dolly in, pan to the window
    _key_object(bpy, "obj14", location=(-0.35, 0.15, 0.0))  # the coated ball rolls across the table
    _key_object(bpy, "obj8", location=(0.0, -0.3, 0.0))  # the sofa is pushed forward


def _fog_orbit(bpy: Any, scene: Any) -> None:
    # The suite's "fog_spot": a spot cut into shafts by pillars in a fog volume.
    _key_camera(bpy, (0.6, -3.5, 1.3), (-0.5, -3.2, 1.2), (0.0, 1.0, 1.1))
    _key_object(bpy, "obj0", turn=math.pi / 2)  # the lit Suzanne turns: its shadow shaft moves


def _glass_orbit(bpy: Any, scene: Any) -> None:
    # The suite's "glass_caustics": clear, tinted and frosted glass under a small point light.
    _key_camera(bpy, (0.2, -2.6, 1.5), (-0.5, -2.4, 1.4), (0.0, 0.5, 0.3))
    _key_object(bpy, "obj0", location=(0.3, -0.1, 0.0))  # the clear ball slides: its caustic moves
    _key_object(bpy, "obj2", turn=math.pi / 2)  # the frosted Suzanne turns
    _key_object(bpy, "obj3", turn=0.6)  # the amber block turns


SHOTS: dict[str, Shot] = {
    "mixed_dolly": Shot("mixed", "the 'mixed' still life (glass, chrome, textured book, candle flame, depth of field) "
                                 "with a sideways dolly, a rolling chrome ball and turning objects", _mixed_dolly),
    "metals_orbit": Shot("metals", "the 'metals' corner with the camera tracking sideways, a turning copper Suzanne "
                                   "and a sliding chrome ball (moving highlights)", _metals_orbit),
    "interior_pan": Shot("interior", "the 'interior' room (wave-textured floor, sun patch, bounce light) with the camera "
                                     "dollying in and panning to the window, a rolling ball and a sofa pushed forward",
                         _interior_pan),
    "fog_orbit": Shot("fog_spot", "the 'fog_spot' volume (spot shafts between pillars in fog) with the camera moving "
                                  "sideways and the lit Suzanne turning", _fog_orbit),
    "glass_orbit": Shot("glass_caustics", "the 'glass_caustics' table (clear, tinted and frosted glass, caustics) with "
                                          "the camera moving sideways, a sliding glass ball and turning glass objects",
                        _glass_orbit),
}


def build_shot(name: str) -> Any:
    """Build shot ``name`` (its suite scene, then its motion) with motion blur off and the Vector
    pass on; returns the scene."""
    if name not in SHOTS:
        raise McDenoiseError(f"unknown shot {name!r}; known: {', '.join(SHOTS)}")
    bpy = import_bpy()
    scene = build(SHOTS[name].scene)
    SHOTS[name].animate(bpy, scene)
    scene.render.use_motion_blur = False  # the Vector pass is written only without motion blur
    scene.frame_set(1)
    return scene


def blend_path(root: str | Path, name: str) -> Path:
    """Where shot ``name``'s .blend lives: ``<root>/<name>/<name>.blend``."""
    return layout.suite_dir(root, name) / f"{name}.blend"


def blend_spp(spps: list[int]) -> int:
    """The noisy sample count the .blend keeps: the rendered one nearest 4 in stops (the count
    ``bench --sequence`` scores by default), the lower one on a tie."""
    return min(sorted(spps), key=lambda n: abs(math.log2(n) - 2))


def save_blend(scene: Any, root: Path, name: str, frames: int, spp: int) -> Path:
    """Save the prepared shot (built, configured, exposure set) as ``blend_path``: the same
    scene, motion, resolution, exposure and bounces as its renders, frames 1 .. ``frames``, the
    noisy sample count, Blender's animated seed (a new noise pattern every frame, as an artist
    renders), motion blur off and the Vector pass on. What ``mcdenoise finetune`` renders from
    it is what the shot's noisy frames show."""
    bpy = import_bpy()
    c, r = scene.cycles, scene.render
    settings = [(scene, "frame_start", 1), (scene, "frame_end", frames), (c, "samples", spp),
                (c, "use_adaptive_sampling", False), (c, "use_animated_seed", True),
                (c, "seed", cycles_seed(suite_seed(name), "blend")), (r, "threads_mode", "AUTO"),
                (r, "use_file_extension", True), (r, "filepath", f"//render/{name}_####")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in settings]
    path = blend_path(root, name)
    try:  # the renders that follow keep their own settings: set for the file, then put back
        for owner, attr, value in settings:
            setattr(owner, attr, value)
        with atomic_output(path) as tmp, _quiet_stdout():
            tmp.unlink()  # saved over, the empty temp would stay behind as Blender's .blend1 backup
            bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, compress=True)
    finally:
        for owner, attr, value in saved:
            setattr(owner, attr, value)
    return path


def _prepare(name: str, res: int, threads: int, device: str = "cpu") -> tuple[Any, str]:
    """Build shot ``name`` with every setting its renders use (all but the exposure); returns
    (scene, Cycles device used)."""
    bpy = import_bpy()
    scene = build_shot(name)
    used_device = _setup_device(bpy, scene, device)
    configure(scene, res, threads)
    scene.view_layers[0].use_pass_vector = True
    return scene, used_device


def blend_of_rendered(root: Path, name: str) -> Path:
    """The .blend of a shot rendered before shots were saved with one: built again and set up
    from its JSON (resolution, frames, sample counts and the exposure the frames were rendered
    at, not a new probe)."""
    record = json.loads(layout.suite_desc_path(root, name).read_text())
    r = record["render"]
    scene, _ = _prepare(name, int(r["resolution"][0]), 0)
    scene.cycles.film_exposure = float(r["exposure"])
    return save_blend(scene, root, name, int(record["frames"]), blend_spp(list(r["spp"])))


def _frames_on_disk(root: Path, name: str, frames: int, second: bool = False) -> list[int]:
    """The frames of a shot that have a (``second``) reference on disk."""
    return [f for f in range(1, frames + 1) if layout.sequence_ref_path(root, name, f, second=second).is_file()]


def render_shot(root: Path, name: str, frames: int, res: int, spps: list[int], ref_spp: int,
                device: str = "cpu", threads: int = 0, log: Callable[[str], None] = print,
                ref_frames: list[int] | None = None, second_ref_frames: list[int] | None = None) -> dict[str, Any]:
    """Render frames 1 .. ``frames`` of shot ``name`` (each noisy sample count, a reference on
    ``ref_frames``, default every frame, and a second, independent reference on
    ``second_ref_frames``, default none) and write the shot's JSON last; returns the JSON record.

    References are nearly all of a shot's cost (1024 spp against 4); a shot that is fine-tuned
    on its first frames and scored on the rest needs them only on the frames scored. A second
    reference lets ``bench --sequence`` take the references' own noise out of the flicker
    figure. A finished shot run again keeps the exposure its JSON records, so frames added
    later match the frames already on disk, and its first references where they are unless
    ``ref_frames`` asks for more."""
    bpy = import_bpy()
    t0 = time.perf_counter()
    folder = layout.suite_dir(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    clean_partial(folder)  # stale temps and the exposure probe of a killed run
    scene, used_device = _prepare(name, res, threads, device)
    with_ref = set(range(1, frames + 1) if ref_frames is None else ref_frames)
    with_second = set(second_ref_frames or ())
    seed = suite_seed(name)
    desc = layout.suite_desc_path(root, name)
    before: dict[str, float] = {}  # a finished shot's recorded seconds, added to
    before_total = 0.0
    if desc.is_file():
        record = json.loads(desc.read_text())
        recorded = record["render"]
        if recorded["resolution"] != [res, res] or record["frames"] != frames or recorded["ref_spp"] != ref_spp:
            raise McDenoiseError(f"{name} in {root} was rendered at {recorded['resolution'][0]} px with "
                                 f"{record['frames']} frames and {recorded['ref_spp']}-spp references; add to it with "
                                 "those settings, or render into another folder")
        exposure = {k: recorded[k] for k in ("probe_mean", "target", "exposure")}
        scene.cycles.film_exposure = float(exposure["exposure"])
        before = recorded.get("seconds", {}).get("frames", {})
        before_total = float(recorded.get("seconds", {}).get("total", 0.0))
        if ref_frames is None:  # adding to a shot: its first references stay where they are
            with_ref = set(recorded.get("ref_frames", with_ref))
    else:
        exposure = calibrate_exposure(bpy, scene, folder, seed, res, jitter_stops=(0.0, 0.0))
    blend = save_blend(scene, root, name, frames, blend_spp(spps))
    seconds: dict[str, float] = {}
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        jobs = [(layout.sequence_noisy_path(root, name, spp, frame), spp, f"noisy:{spp}:{frame}", False) for spp in spps]
        if frame in with_ref:
            jobs.append((layout.sequence_ref_path(root, name, frame), ref_spp, f"ref:{frame}", False))
        if frame in with_second:
            jobs.append((layout.sequence_ref_path(root, name, frame, second=True), ref_spp, f"ref2:{frame}", False))
        t = time.perf_counter()
        todo = [job for job in jobs if not job[0].is_file()]
        for path, samples, role, adaptive in todo:
            render_exr(bpy, scene, path, samples, cycles_seed(seed, role), adaptive=adaptive)
        spent = time.perf_counter() - t
        seconds[str(frame)] = round(before.get(str(frame), 0.0) + spent, 3)
        log(f"{name} frame {frame}/{frames} in {spent:.1f} s" if todo else f"{name} frame {frame}/{frames} already done")
    record = {
        "layout_version": 1, "shot": name, "scene": SHOTS[name].scene, "summary": SHOTS[name].summary,
        "frames": frames, "blend": blend.name,
        "render": {"resolution": [res, res], "spp": list(spps), "ref_spp": ref_spp,
                   # from the files, so a shot resumed with other reference frames lists what it has
                   "ref_frames": _frames_on_disk(root, name, frames),
                   "ref2_frames": _frames_on_disk(root, name, frames, second=True),
                   "seeds": "per frame: noisy:<spp>:<frame>, ref:<frame>, ref2:<frame>",
                   "motion_blur": False, "passes": [*layout.PASSES, "Vector"], "bounces": BOUNCES, "device": used_device,
                   "threads": threads, "blender": bpy.app.version_string, **exposure,
                   "seconds": {"frames": seconds, "total": round(before_total + time.perf_counter() - t0, 3)}},
    }
    with atomic_output(layout.suite_desc_path(root, name)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def render_shots(root: str | Path, names: list[str], frames: int = 12, res: int = 128, spps: list[int] | None = None,
                 ref_spp: int = 256, device: str = "cpu", threads: int = 0, progress: bool = True,
                 ref_frames: list[int] | None = None, second_ref_frames: list[int] | None = None) -> dict[str, Any]:
    """Render every unfinished shot of ``names`` (references on ``ref_frames``, default all; a
    second reference on ``second_ref_frames``, default none); returns counts and timings for the
    summary line. A shot is finished when its JSON is written and it has every second reference
    asked for: a finished shot asked for second references renders just those."""
    for which, chosen in (("reference", ref_frames), ("second reference", second_ref_frames)):
        if chosen is not None:
            outside = sorted(f for f in chosen if not 1 <= f <= frames)
            if outside or not chosen:
                raise McDenoiseError(f"{which} frames must lie in the shots' frames 1-{frames}"
                                     + (f"; {', '.join(map(str, outside[:8]))} do not" if outside else ""))
    import_bpy()  # fail early and clearly, before creating any folder
    unknown = [n for n in names if n not in SHOTS]
    if unknown:
        raise McDenoiseError(f"unknown shot(s) {', '.join(unknown)}; known: {', '.join(SHOTS)}")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {root}: {exc}") from exc
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)
    done = [n for n in names if layout.suite_desc_path(root, n).is_file()
            and all(layout.sequence_ref_path(root, n, f, second=True).is_file() for f in second_ref_frames or ())]
    busy: list[str] = []
    times: list[float] = []
    t0 = time.perf_counter()
    for name in names:
        if name in done:
            if not blend_path(root, name).is_file():
                log(f"{name}: wrote {blend_of_rendered(root, name)}")
            continue
        folder = layout.suite_dir(root, name)
        if not acquire_scene(folder):
            busy.append(name)
            continue
        started = time.perf_counter()  # this run's time: a shot that is added to records its earlier time too
        try:
            render_shot(root, name, frames, res, list(spps or [4]), ref_spp, device, threads, log, ref_frames,
                        second_ref_frames)
        finally:
            release_scene(folder)
        times.append(time.perf_counter() - started)
    return {"rendered": len(times), "skipped": len(done), "busy": len(busy), "selected": len(names),
            "seconds": time.perf_counter() - t0, "mean_scene_seconds": sum(times) / len(times) if times else 0.0}
