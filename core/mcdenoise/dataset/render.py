"""The render loop: description -> Blender scene -> noisy EXRs + reference EXR + JSON marker.

Built to run unattended for hours and be killed at any moment:

* resumable: a scene whose JSON exists is skipped; the JSON is written last, atomically;
* atomic: every file is written to a temp beside it (:mod:`mcdenoise.io.atomic`) and moved
  into place with ``os.replace``, so readers never see a half-written EXR;
* sharded: ``shard=(i, n)`` keeps indices with ``index % n == i`` so several processes or
  machines can share one dataset folder without coordination;
* deterministic: the scene and every Cycles seed derive from the scene seed only.

With ``frames`` > 1 each scene is a training *sequence* (:func:`render_sequence`): the same
scene made animated, frames 1..T, resumable frame by frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

from mcdenoise.dataset import layout
from mcdenoise.dataset.blender_scene import build_scene, import_bpy
from mcdenoise.dataset.scene_description import describe_scene, describe_sequence
from mcdenoise.errors import OutputError
from mcdenoise.io.atomic import atomic_output, is_stale, pid_alive
from mcdenoise.shard import in_shard

#: Bounce limits: Blender's defaults, plus one volume bounce so fog scatters light.
BOUNCES = {"max_bounces": 12, "diffuse_bounces": 4, "glossy_bounces": 4,
           "transmission_bounces": 12, "volume_bounces": 1, "transparent_max_bounces": 8}
#: Target mean luminance of the exposure probe; per-scene jitter spreads exposures over stops.
EXPOSURE_TARGET = 0.18
#: Noise threshold of the adaptively sampled reference (Blender's default is 0.01).
REF_ADAPTIVE_THRESHOLD = 0.01


def select_indices(start: int, count: int, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """Scene indices ``start .. start+count-1`` that belong to shard ``i`` of ``n``."""
    return [k for k in range(start, start + count) if in_shard(k, shard)]


def cycles_seed(scene_seed: int, role: str) -> int:
    """A Cycles seed per render: noise is a pure function of the seed, so every render of a
    scene needs its own, and the reference must be independent of all noisy inputs (Noise2Noise)."""
    return random.Random(f"mcdenoise:{scene_seed}:{role}").randrange(1, 2**31 - 1)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Blender prints 'Saved: ...' on fd 1 for every file; keep the progress bar readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _setup_device(bpy: Any, scene: Any, device: str) -> str:
    """CPU always works; for ``gpu`` try the GPU backends in turn and fall back to CPU."""
    scene.cycles.device = "CPU"
    if device != "gpu":
        return "CPU"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == backend
            scene.cycles.device = "GPU"
            return backend
    print("mcdenoise render-dataset: no GPU available to Cycles, rendering on CPU", file=sys.stderr)
    return "CPU"


def set_output(scene: Any, threads: int, view_layer: Any = None) -> None:
    """What every render we make writes, and nothing about the picture itself: multilayer
    32-bit EXR with Combined, Depth and the Denoising Data passes, Cycles' own denoiser off.
    Shared by the dataset renders and ``finetune``'s renders of an artist's shot, which must
    keep the shot's resolution, bounces and exposure (``view_layer``: its layer to render)."""
    r = scene.render
    r.use_file_extension = False  # we choose the exact (temporary) file name ourselves
    r.use_persistent_data = True  # reuse BVH and shaders across the renders of one scene
    r.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        r.threads = threads
    # Blender 5.0: media type first, otherwise the multilayer format is not selectable.
    r.image_settings.media_type = "MULTI_LAYER_IMAGE"
    r.image_settings.file_format = "OPEN_EXR_MULTILAYER"
    r.image_settings.color_depth = "32"
    r.image_settings.exr_codec = "ZIP"
    vl = view_layer if view_layer is not None else scene.view_layers[0]
    vl.use_pass_combined = True
    vl.use_pass_z = True
    vl.cycles.denoising_store_passes = True  # Denoising Albedo / Normal, as artists export them
    scene.cycles.use_denoising = False


def configure(scene: Any, res: int, threads: int) -> None:
    """Output format and sampling settings shared by every render of a scene."""
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x = r.resolution_y = res
    r.resolution_percentage = 100
    set_output(scene, threads)
    scene.view_settings.view_transform = "Standard"
    c = scene.cycles
    c.use_adaptive_sampling = False  # uniform noise level per spp: what the model trains on
    c.adaptive_threshold = REF_ADAPTIVE_THRESHOLD  # used by the reference render only
    for k, v in BOUNCES.items():
        setattr(c, k, v)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and Ctrl-C until the block ends, then deliver them to the handlers that were
    installed. Blender runs Cycles' engine as Python inside a render and swallows exceptions
    raised there, so a stop request arriving mid-render would otherwise be lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def render_exr(bpy: Any, scene: Any, final: Path, samples: int, seed: int, adaptive: bool = False) -> None:
    """Render once and move the EXR into place; the final name appears only when complete."""
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = adaptive
    scene.cycles.seed = seed
    with atomic_output(final) as tmp:
        scene.render.filepath = str(tmp)
        with signals_held(), _quiet_stdout():
            bpy.ops.render.render(write_still=True)
        if not tmp.is_file() or tmp.stat().st_size == 0:  # the temp is created empty
            raise OutputError(f"Blender did not write {tmp} (disk full or folder not writable?)")


def _mean_luminance(path: Path) -> float:
    """Mean luminance of the Combined pass, ignoring the brightest 1 % (lamps, fireflies)."""
    import numpy as np  # noqa: PLC0415

    from mcdenoise import hdr  # noqa: PLC0415 (imports torch, which rendering needs only here)
    from mcdenoise.io.exr import read_frame  # noqa: PLC0415
    from mcdenoise.io.passes import PassNames  # noqa: PLC0415

    color = read_frame(path, PassNames(color=("Combined",), layer=layout.VIEW_LAYER)).color
    rgb = hdr.sanitize(color, lo=None).astype(np.float64)
    lum = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    return float(np.minimum(lum, np.percentile(lum, 99)).mean())


def calibrate_exposure(bpy: Any, scene: Any, folder: Path, scene_seed: int, res: int,
                       jitter_stops: tuple[float, float] = (-1.5, 0.75)) -> dict[str, float]:
    """Pick ``film_exposure`` from a tiny probe render so no frame comes out black or blown.

    Light energies are sampled blindly, so the raw brightness spans many stops; a probe of a few
    samples at low resolution costs well under a second and fixes that. The target is jittered
    by a seed-derived amount within ``jitter_stops`` so the dataset still covers dark and bright
    frames; the benchmark suite passes (0, 0) and exposes every scene alike.
    """
    probe = folder / "exposure_probe.exr"
    scene.render.resolution_percentage = max(1, min(100, round(100 * 64 / res)))
    try:
        render_exr(bpy, scene, probe, 8, cycles_seed(scene_seed, "probe"))
        mean = _mean_luminance(probe)
    finally:
        scene.render.resolution_percentage = 100
        probe.unlink(missing_ok=True)
    target = EXPOSURE_TARGET * 2 ** random.Random(f"mcdenoise:{scene_seed}:exposure").uniform(*jitter_stops)
    exposure = min(64.0, max(1 / 128, target / mean)) if mean > 0 else 1.0
    scene.cycles.film_exposure = exposure
    return {"probe_mean": round(mean, 6), "target": round(target, 6), "exposure": round(exposure, 6)}


def clean_partial(folder: Path) -> list[Path]:
    """Remove what an interrupted run left behind; its scene is redone from scratch.

    Called with the scene's lock held, so no live process of this host writes here; temps are
    still removed only when stale (io.atomic's rule), which keeps those of other hosts.
    """
    removed = []
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and (is_stale(f) or f.name == "exposure_probe.exr"
                                or layout.NOISY_RE.match(f.name) or layout.REF_RE.match(f.name)):
                f.unlink()
                removed.append(f)
    return removed


def acquire_scene(folder: Path) -> bool:
    """Claim a scene folder with an exclusive ``.lock`` file; False if another process has it.

    Two unsharded runs on one folder (say, a script started twice) would otherwise delete each
    other's in-flight files as "stale". A lock left by a dead process on this host is taken over;
    one from another host is respected (use ``--shard`` across machines instead).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / layout.LOCK_NAME
    me = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
                stale = host == me and not pid_alive(int(pid))
            except (OSError, ValueError):  # vanished, or its owner is still writing it
                stale = False
            if not stale:
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{me} {os.getpid()}\n")
        return True
    return False


def release_scene(folder: Path) -> None:
    (folder / layout.LOCK_NAME).unlink(missing_ok=True)


def summary_line(stats: dict[str, Any], selection: str = "") -> str:
    """What a render run did, in one line for the log (``render-dataset`` and ``render-suite``
    alike): ``stats`` as the renderers return it, ``selection`` e.g. " (shard 0/4)"."""
    busy = f"{stats['busy']} locked by another process, " if stats["busy"] else ""
    return (f"{stats['rendered']} rendered, {stats['skipped']} already done, {busy}{stats['selected']} selected{selection} "
            f"in {stats['seconds']:.1f} s ({stats['mean_scene_seconds']:.1f} s/scene)")


def render_noisy(bpy: Any, scene: Any, seed: int, spps: list[int], path_for: Callable[[int], Path]) -> tuple[dict[str, float], dict[str, int]]:
    """Render the noisy inputs of one scene, each sample count with its own Cycles seed (derived
    from the scene seed, so a re-render is the same image): returns seconds per render
    (``"4spp"``) and the seeds used, for the scene's JSON record."""
    seconds: dict[str, float] = {}
    seeds: dict[str, int] = {}
    for spp in spps:
        t = time.perf_counter()
        seeds[str(spp)] = cycles_seed(seed, f"noisy:{spp}")
        render_exr(bpy, scene, path_for(spp), spp, seeds[str(spp)])
        seconds[f"{spp}spp"] = round(time.perf_counter() - t, 3)
    return seconds, seeds


def render_scene(root: Path, index: int, seed: int, res: int, spps: list[int], ref_spp: int,
                 device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Render one scene completely and write its JSON marker last; returns the JSON record."""
    bpy = import_bpy()
    t0 = time.perf_counter()
    folder = layout.scene_dir(root, index)
    folder.mkdir(parents=True, exist_ok=True)
    clean_partial(folder)
    desc = describe_scene(seed)
    scene = build_scene(desc)
    used_device = _setup_device(bpy, scene, device)
    configure(scene, res, threads)
    t_build = time.perf_counter() - t0
    exposure = calibrate_exposure(bpy, scene, folder, seed, res)
    seconds, noisy_seeds = render_noisy(bpy, scene, seed, spps, lambda spp: layout.noisy_path(root, index, spp))
    t = time.perf_counter()
    ref_seed = cycles_seed(seed, "ref")
    # Adaptive sampling only for the target: it stays zero-mean noise (all Noise2Noise needs)
    # and skips converged pixels, which on a CPU roughly halves the dominant cost.
    render_exr(bpy, scene, layout.ref_path(root, index), ref_spp, ref_seed, adaptive=True)
    seconds["ref"] = round(time.perf_counter() - t, 3)
    seconds["build"] = round(t_build, 3)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    record = {
        "layout_version": 1,
        "index": index,
        "seed": seed,
        "description": desc,
        "render": {
            "resolution": [res, res], "spp": list(spps), "ref_spp": ref_spp,
            "noisy_seeds": noisy_seeds, "ref_seed": ref_seed, "adaptive_sampling": {"noisy": False, "ref": True, "ref_threshold": REF_ADAPTIVE_THRESHOLD},
            "denoising": False, "bounces": BOUNCES, "device": used_device,
            "blender": bpy.app.version_string, "passes": list(layout.PASSES),
            **exposure, "seconds": seconds,
        },
    }
    with atomic_output(layout.desc_path(root, index)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def motion_summary(desc: dict[str, Any], refs: list[Path], res: int) -> dict[str, Any]:
    """What moves in a sequence and how fast, for its JSON: the drawn motion in pixels per frame
    at the render size, and the image motion the Vector pass of the references measures (motion
    to the previous frame; ``moving``: the share of pixels moving more than half a pixel)."""
    import numpy as np  # noqa: PLC0415

    from mcdenoise.io.exr import read_frame  # noqa: PLC0415
    from mcdenoise.io.passes import PassNames  # noqa: PLC0415

    anim = desc["animation"]
    means, p95s, moving = [], [], []
    for path in refs:
        vector = read_frame(path, PassNames(color=("Combined",), layer=layout.VIEW_LAYER), features=("vector",)).vector
        speed = np.hypot(vector[..., 0], vector[..., 1]).astype(np.float64)
        means.append(round(float(speed.mean()), 3))
        p95s.append(round(float(np.percentile(speed, 95)), 3))
        moving.append(round(float((speed > 0.5).mean()), 3))
    return {
        "camera": anim["camera"]["move"],
        "camera_px_per_frame": round(anim["camera"]["speed"] * res, 2),
        "objects": [{"index": o["index"], "kind": o["kind"], "px_per_frame": round(o["speed"] * res, 2),
                     "turn_per_frame": o["turn"]} for o in anim["objects"]],
        "light_moves": anim["light"] is not None,
        "vector_px_mean": means, "vector_px_p95": p95s, "moving_share": moving,
    }


def render_sequence(root: Path, index: int, seed: int, res: int, spps: list[int], ref_spp: int, frames: int,
                    device: str = "cpu", threads: int = 0) -> dict[str, Any]:
    """Render training sequence ``index`` (frames 1..``frames``, every noisy sample count and a
    reference per frame, all with the Vector pass) and write its JSON marker last.

    Resumable per frame: a file already in place is not rendered again, and every pose and seed
    is a function of the scene seed and the frame, so a frame rendered by a later run has the
    pixels an uninterrupted run would have given it. The exposure is calibrated once, on frame 1
    (the same probe as a still scene), and kept for every frame, as an artist's shot keeps its own.
    """
    bpy = import_bpy()
    t0 = time.perf_counter()
    folder = layout.scene_dir(root, index)
    folder.mkdir(parents=True, exist_ok=True)
    clean_partial(folder)  # stale temps and a killed run's probe; finished frames stay
    desc = describe_sequence(seed)
    scene = build_scene(desc, frames)
    used_device = _setup_device(bpy, scene, device)
    configure(scene, res, threads)
    scene.render.use_motion_blur = False  # Blender writes the Vector pass only without motion blur
    scene.view_layers[0].use_pass_vector = True
    t_build = time.perf_counter() - t0
    scene.frame_set(1)
    exposure = calibrate_exposure(bpy, scene, folder, seed, res)
    seconds: dict[str, dict[str, float]] = {}
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        # A new Cycles seed every frame (what Blender's animated seed does for an artist), each
        # a function of (scene seed, role, frame); the references' independent of the inputs'.
        jobs = [(f"{spp}spp", layout.scene_noisy_frame_path(root, index, spp, frame), spp, f"noisy:{spp}:{frame}", False)
                for spp in spps]
        jobs.append(("ref", layout.scene_ref_frame_path(root, index, frame), ref_spp, f"ref:{frame}", True))
        seconds[str(frame)] = {}
        for name, path, samples, role, adaptive in jobs:
            if not path.is_file():  # else rendered by an earlier, interrupted run
                t = time.perf_counter()
                render_exr(bpy, scene, path, samples, cycles_seed(seed, role), adaptive=adaptive)
                seconds[str(frame)][name] = round(time.perf_counter() - t, 3)
    refs = [layout.scene_ref_frame_path(root, index, frame) for frame in range(1, frames + 1)]
    record = {
        "layout_version": 1,
        "index": index,
        "seed": seed,
        "frames": frames,
        "description": desc,
        "motion": motion_summary(desc, refs, res),
        "render": {
            "resolution": [res, res], "spp": list(spps), "ref_spp": ref_spp,
            "seeds": "per frame: render.cycles_seed(seed, 'noisy:<spp>:<frame>'), cycles_seed(seed, 'ref:<frame>')",
            "adaptive_sampling": {"noisy": False, "ref": True, "ref_threshold": REF_ADAPTIVE_THRESHOLD},
            "motion_blur": False, "denoising": False, "bounces": BOUNCES, "device": used_device,
            "blender": bpy.app.version_string, "passes": [*layout.PASSES, "Vector"],
            **exposure, "seconds": {"build": round(t_build, 3), "frames": seconds,
                                    "total": round(time.perf_counter() - t0, 3)},
        },
    }
    with atomic_output(layout.desc_path(root, index)) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _check_kind(root: Path, idx: int, frames: int) -> None:
    """A finished scene must be of the kind asked for: a still scene is not a sequence, and a
    sequence of T frames is not one of another length (its JSON says it is done)."""
    found = layout.frames_of(layout.desc_path(root, idx))
    if (frames == 1 and found is None) or found == frames:
        return
    have = "a still scene" if found is None else f"a sequence of {found} frames"
    want = "a still scene" if frames == 1 else f"{frames} frames"
    raise OutputError(f"{layout.scene_dir(root, idx)} already holds {have}, not {want}: render still scenes and "
                      f"sequences of each length into separate dataset folders")


def render_dataset(root: str | Path, count: int, start: int = 0, seed_offset: int = 0, res: int = 256,
                   spps: list[int] | None = None, ref_spp: int = 256, shard: tuple[int, int] = (0, 1),
                   device: str = "cpu", threads: int = 0, progress: bool = True, frames: int = 1) -> dict[str, Any]:
    """Render every unfinished scene of this shard (``frames`` > 1: every unfinished sequence);
    returns counts and timings for the summary."""
    from tqdm import tqdm  # noqa: PLC0415

    import_bpy()  # fail early and clearly, before creating any folder
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    spps = spps or [1, 2, 4, 8, 16]
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create dataset folder {root}: {exc}") from exc
    todo = select_indices(start, count, shard)
    skipped = [i for i in todo if layout.is_done(root, i)]
    for i in skipped:
        _check_kind(root, i, frames)
    pending = [i for i in todo if not layout.is_done(root, i)]
    times: list[float] = []
    t0 = time.perf_counter()
    bar = tqdm(pending, unit="scene", disable=not progress, dynamic_ncols=True,
               desc=f"render {root.name}", file=sys.stderr)
    busy: list[int] = []
    for idx in bar:
        folder = layout.scene_dir(root, idx)
        if not acquire_scene(folder):
            busy.append(idx)
            continue
        try:
            if layout.is_done(root, idx):  # finished by another process meanwhile
                skipped.append(idx)
                continue
            if frames > 1:
                rec = render_sequence(root, idx, seed_offset + idx, res, spps, ref_spp, frames, device, threads)
            else:
                rec = render_scene(root, idx, seed_offset + idx, res, spps, ref_spp, device, threads)
        finally:
            release_scene(folder)
        times.append(rec["render"]["seconds"]["total"])
        bar.set_postfix(scene=idx, last=f"{times[-1]:.1f}s")
        if not progress:  # one line per scene instead of a bar: readable in a log file
            what = f"{frames} frames, camera {rec['motion']['camera']}, " if frames > 1 else ""
            print(f"{layout.scene_name(idx)} done in {times[-1]:.1f} s ({what}exposure "
                  f"{rec['render']['exposure']:.3g})", flush=True)
    bar.close()
    return {"rendered": len(times), "skipped": len(skipped), "busy": len(busy), "selected": len(todo),
            "seconds": time.perf_counter() - t0,
            "mean_scene_seconds": sum(times) / len(times) if times else 0.0}


__all__ = ["render_dataset", "render_scene", "render_sequence", "select_indices", "cycles_seed"]
