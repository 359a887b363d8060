"""Auto-denoise on the render setups artists have, in real Blender: compositing on with two view
layers, lossy codecs and a write-back that fails its check, stereo renders (one file and a file
per view), and an animation with Overwrite off. Tiny frames (32 px, 1-2 spp) and an untrained
network: these check which passes are read and written, not the model's quality.

Each script runs in a fresh Blender process through ``test_addon.run_blender``, and renders each
frame twice with the same seed: without the add-on, kept as Blender wrote it, then with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from mcdenoise.inference.frames import denoise_file
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.models.loader import load_model
from test_addon import blender_python, channels, run_blender

pytestmark = pytest.mark.slow


# Helpers every script here uses: compositing on (4.x: the scene's node tree; 5.0: a compositor
# node group), and a copy of each written file as Blender wrote it.
COMMON = r'''
import shutil

def render_twice(sc, path, **render_args):
    """Render with auto-denoise off and keep that file as Blender wrote it (``.as_written``),
    then the same frames again (Cycles is deterministic for one seed) with auto-denoise on.
    Reading the file from a render_write handler instead hangs Blender 4.5 at exit."""
    folder, prefix = os.path.split(path[:-4] if path.endswith(".exr") else path)
    there = set(os.listdir(folder))
    sc.mcdenoise.auto_denoise = False
    bpy.ops.render.render(**render_args)
    for name in set(os.listdir(folder)) - there:
        if name.startswith(prefix) and name.endswith(".exr"):
            full = os.path.join(folder, name)
            shutil.move(full, full[:-4] + ".as_written")
    sc.mcdenoise.auto_denoise = True
    bpy.ops.render.render(**render_args)

# Each file's (inode, mtime, size) as Blender left it, taken first in render_write: the add-on
# replaces a file it changes (a new inode), so an equal stamp after the render means untouched.
stamps = {}

@bpy.app.handlers.persistent
def stamp(scene, *_):
    folder = args["dir"]
    prefix = os.path.basename(bpy.path.abspath(scene.render.filepath)).removesuffix(".exr")
    for name in os.listdir(folder):  # the files of this render's output path
        if name.startswith(prefix) and name.endswith(".exr") and "_denoised" not in name:
            st = os.stat(os.path.join(folder, name))
            stamps[name] = [st.st_ino, st.st_mtime_ns, st.st_size]

bpy.app.handlers.render_write.insert(0, stamp)

def stamps_now():
    """Which files still carry the stamp they had when Blender wrote them."""
    folder = args["dir"]
    return {name: list((lambda st: [st.st_ino, st.st_mtime_ns, st.st_size])(os.stat(os.path.join(folder, name)))) == s
            for name, s in stamps.items() if os.path.exists(os.path.join(folder, name))}

import os
prefs.backend, prefs.python_path = args["backend"], args["python"]
status_module = sys.modules["bl_ext.user_default.mcdenoise.status"]
'''


def blender_run(script: str, tmp_path: Path, untrained: Path, version: str, backend: str, addon_zip: Path, **args) -> dict:
    # A script's handler still registered at exit crashes Blender 4.2 there: remove it first.
    script = COMMON + script + "\nbpy.app.handlers.render_write.remove(stamp)\n"
    return run_blender(script, tmp_path, untrained, blender=blender_python(version), zip=str(addon_zip),
                       backend=backend, python=sys.executable, dir=str(tmp_path), **args)


def as_written(path: Path) -> Path:
    return path.with_suffix(".as_written")


def pixels(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """Every channel of every part, keyed by (part's view, channel name)."""
    return {(str(part.header.get("view", "")), name): np.asarray(ch.pixels)
            for part in OpenEXR.File(str(path), separate_channels=True).parts for name, ch in part.channels.items()}


def core_denoised(weights: Path, path: Path, names: PassNames, tmp_path: Path) -> np.ndarray:
    """What the core makes of ``names``'s passes of ``path`` (the add-on must give the same)."""
    return denoise_file(load_model(weights, device="cpu"), path, tmp_path / "core.exr", names).denoised


LAYERS = r'''
sc = bpy.context.scene
second = sc.view_layers.new("Second")
sc = tiny_scene(2, 1, args["frame"], size=32)
second.samples = 1  # another render than ViewLayer's, so each layer's result is its own
compositing_on(sc)
bpy.ops.mcdenoise.setup_passes()
render_twice(sc, args["frame"], write_still=True)
out["status"] = status()
'''


@pytest.mark.parametrize(("version", "backend"), [("4.5", "EXTERNAL"), ("5.0", "BLENDER")])
def test_compositing_on_with_two_view_layers_denoises_each_layer_from_its_own_passes(
        addon_zip, untrained, tmp_path, version, backend):
    """Blender writes Composite.Combined ahead of the view layers; each view layer gets its own
    Denoised pass from its own Combined, albedo and normal, and the composite none."""
    frame = tmp_path / "frame.exr"
    out = blender_run(LAYERS, tmp_path, untrained, version, backend, addon_zip, frame=str(frame))

    assert not out["status"].startswith("Error") and "ViewLayer, Second" in out["status"], out["status"]
    before = channels(as_written(frame))
    assert "Composite.Combined.R" in before
    new = {f"{layer}.Denoised.{c}" for layer in ("ViewLayer", "Second") for c in "RGB"}
    assert channels(frame) == before | new  # nothing lost, no Composite.Denoised
    results = {}
    for layer in ("ViewLayer", "Second"):
        got = read_frame(frame, PassNames(color=("Denoised",), layer=layer)).color
        expected = core_denoised(untrained, as_written(frame), PassNames(layer=layer), tmp_path)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        results[layer] = got
    assert np.abs(results["ViewLayer"] - results["Second"]).max() > 1e-3
    kept = pixels(as_written(frame))
    after = pixels(frame)
    for key, plane in kept.items():  # every pass Blender wrote, bit for bit
        np.testing.assert_array_equal(after[key], plane, err_msg=str(key))


LOSSY = r'''
sc = tiny_scene(2, 1, args["frame"], size=32)
bpy.ops.mcdenoise.setup_passes()
sc.render.image_settings.exr_codec = "DWAA"
render_twice(sc, args["frame"], write_still=True)
out["status"] = status()
out["untouched"] = stamps_now()
if args["break_check"]:
    # A write-back whose file comes out cut short must leave the rendered file as it was.
    writeback = sys.modules["bl_ext.user_default.mcdenoise.writeback"]
    real_run = writeback.worker.run
    def cut_short(job, *a, **k):
        outcome = real_run(job, *a, **k)
        data = open(job.out_path, "rb").read()
        open(job.out_path, "wb").write(data[: len(data) // 2])
        return outcome
    writeback.worker.run = cut_short
    sc.render.filepath = args["second"]
    render_twice(sc, args["second"], write_still=True)
    writeback.worker.run = real_run
    out["broken_status"] = status()
    out["untouched"] = stamps_now()
'''


@pytest.mark.parametrize(("version", "backend"), [("4.2", "EXTERNAL"), ("5.0", "BLENDER")])
def test_lossy_codec_output_is_never_reencoded_and_a_failed_check_keeps_the_file(
        addon_zip, untrained, tmp_path, version, backend):
    """DWAA output: Blender 4.x writes one part, which a rewrite would re-encode whole, so the
    file stays as Blender wrote it and the pass goes to frame_denoised.exr with a note saying why;
    Blender 5 writes one part per pass, so the pass is added in place and every other part keeps
    its bytes. A write-back whose result fails the check changes nothing."""
    frame, second = tmp_path / "frame.exr", tmp_path / "second.exr"
    out = blender_run(LOSSY, tmp_path, untrained, version, backend, addon_zip, frame=str(frame), second=str(second),
                      break_check=version == "5.0")

    original = as_written(frame)
    single_part = len(OpenEXR.File(str(original), header_only=True).parts) == 1
    assert single_part == version.startswith("4"), version
    if single_part:
        assert out["untouched"]["frame.exr"], out["untouched"]
        copy = tmp_path / "frame_denoised.exr"
        assert "DWAA" in out["status"] and "frame.exr left untouched" in out["status"] and str(copy) in out["status"], out["status"]
        assert channels(copy) == channels(original) | {f"ViewLayer.Denoised.{c}" for c in "RGB"}
    else:
        assert not out["status"].startswith("Error") and str(frame) in out["status"], out["status"]
        assert channels(frame) == channels(original) | {f"ViewLayer.Denoised.{c}" for c in "RGB"}
        kept, after = pixels(original), pixels(frame)
        for key, plane in kept.items():
            np.testing.assert_array_equal(after[key], plane, err_msg=str(key))
        assert not (tmp_path / "frame_denoised.exr").exists()
        # The check refused the cut-short file: the second render is as Blender wrote it, no temp left.
        assert out["broken_status"].startswith("Error") and "incomplete" in out["broken_status"], out["broken_status"]
        assert out["untouched"] == {"frame.exr": False, "second.exr": True}, out["untouched"]
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


STEREO = r'''
sc = tiny_scene(1, 1, args["still"], size=32)
bpy.ops.mcdenoise.setup_passes()
sc.render.use_multiview = True
sc.render.views_format = "STEREO_3D"
sc.render.image_settings.views_format = "INDIVIDUAL"
# A still (the output path, a view suffix) and an animation frame (frame_path with a view).
render_twice(sc, args["still"], write_still=True)
out["still_status"] = status()
sc.render.filepath = args["anim"]
sc.frame_start = sc.frame_end = 3
render_twice(sc, args["anim"], animation=True)
out["anim_status"] = status()
out["frame_paths"] = [sc.render.frame_path(frame=3, view=v) for v in ("left", "right")]
'''


def test_stereo_per_view_files_are_each_denoised(addon_zip, untrained, tmp_path):
    """A stereo render with a file per view: each of ``_L`` and ``_R`` (as ``frame_path(view=)``
    names them, and as a still's output path with the view's suffix) gets its own Denoised pass
    from its own passes. Both views in one file: tests/test_stereo.py."""
    still, anim = tmp_path / "still.exr", tmp_path / "anim_"
    out = blender_run(STEREO, tmp_path, untrained, "5.0", "BLENDER", addon_zip, still=str(still), anim=str(anim))

    views = {"still": [tmp_path / "still_L.exr", tmp_path / "still_R.exr"],
             "anim": [tmp_path / "anim_0003_L.exr", tmp_path / "anim_0003_R.exr"]}
    assert [str(p) for p in views["anim"]] == out["frame_paths"]
    results = []
    for kind, paths in views.items():
        assert not out[f"{kind}_status"].startswith("Error"), out[f"{kind}_status"]
        for path in paths:
            assert channels(path) == channels(as_written(path)) | {f"ViewLayer.Denoised.{c}" for c in "RGB"}, path
            got = read_frame(path, PassNames(color=("Denoised",))).color
            np.testing.assert_allclose(got, core_denoised(untrained, as_written(path), PassNames(), tmp_path), rtol=1e-4, atol=1e-5)
            results.append(got)
    assert np.abs(results[0] - results[1]).max() > 1e-3  # the right view is its own, not the left's again


ANIMATION = r'''
import threading
sc = tiny_scene(1, 1, args["anim"], size=32)
bpy.ops.mcdenoise.setup_passes()
sc.frame_start, sc.frame_end = 1, 3
# Frame 2 is already on disk (an earlier render, another seed): with Overwrite off Blender skips it.
sc.frame_set(2)
sc.cycles.seed = 5
bpy.ops.render.render(write_still=False)
bpy.data.images["Render Result"].save_render(args["existing"])
existing_mtime = os.stat(args["existing"]).st_mtime_ns
sc.cycles.seed = 1
sc.frame_set(1)
sc.render.use_overwrite = False
# Which thread the model ran on, and whether the render had finished the frame's handlers by then.
writeback = sys.modules["bl_ext.user_default.mcdenoise.writeback"]
real_run = writeback.worker.run
out["threads"] = []
def recording(job, *a, **k):
    out["threads"].append(threading.current_thread().name)
    return real_run(job, *a, **k)
writeback.worker.run = recording
render_twice(sc, args["anim"], animation=True)
out["status"] = status()
out["pending_after_render"] = sys.modules["bl_ext.user_default.mcdenoise.jobs"].pending()
out["existing_untouched"] = os.stat(args["existing"]).st_mtime_ns == existing_mtime
'''


@pytest.mark.parametrize(("version", "backend"), [("4.2", "EXTERNAL"), ("5.0", "BLENDER")])
def test_animation_frames_are_denoised_off_the_render_thread_and_skipped_frames_untouched(
        addon_zip, untrained, tmp_path, version, backend):
    """Render Animation of frames 1-3 with Overwrite off and frame 2 already on disk: Blender
    skips frame 2, which stays as it was; every frame rendered gets its Denoised pass, by the
    add-on's queue thread (the render handlers only queue), and a background render returns only
    once the queue is empty."""
    anim = tmp_path / "anim_"
    existing = tmp_path / "anim_0002.exr"
    out = blender_run(ANIMATION, tmp_path, untrained, version, backend, addon_zip, anim=str(anim), existing=str(existing))

    assert out["pending_after_render"] == 0
    assert out["threads"] and set(out["threads"]) == {"mcdenoise-queue"}, out["threads"]
    assert len(out["threads"]) == 2, out["threads"]  # frames 1 and 3: one view layer each
    assert not as_written(existing).exists() and out["existing_untouched"]  # skipped by both renders
    assert not any(".Denoised." in c for c in channels(existing))
    for number in (1, 3):
        path = tmp_path / f"anim_{number:04d}.exr"
        assert channels(path) == channels(as_written(path)) | {f"ViewLayer.Denoised.{c}" for c in "RGB"}, path
    assert "frame 3" in out["status"] and not out["status"].startswith("Error"), out["status"]


OPENED = r'''
# A packed EXR whose file is gone, and frame 2 of an image sequence, with the Denoise button.
img = bpy.data.images.load(args["packed"])
img.pack()
os.remove(args["packed"])
out["packed"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=img.name))
out["packed_status"] = status()
shown = bpy.data.images.get(img.name + " (denoised)")
out["packed_shown"] = list(shown.size) if shown is not None else None
seq = bpy.data.images.load(args["first"])
seq.source = "SEQUENCE"
bpy.context.scene.frame_set(2)
out["sequence"] = sorted(bpy.ops.mcdenoise.denoise_image(image_name=seq.name))
out["sequence_status"] = status()
'''


def test_packed_image_and_image_sequence_frame_are_denoised_by_the_button(addon_zip, untrained, tmp_path):
    """Packed images and image sequences were refused as 'not an EXR'. A packed one is denoised
    from its bytes; a sequence's file is the one of the current frame, and its copy lands beside it."""
    from exr_fixtures import write_blender_like

    packed = tmp_path / "packed.exr"
    write_blender_like(packed, 32, 32, seed=3)
    for number in (1, 2):
        write_blender_like(tmp_path / f"seq_{number:04d}.exr", 32, 32, seed=number * 10)
    out = blender_run(OPENED, tmp_path, untrained, "5.0", "BLENDER", addon_zip, packed=str(packed),
                      first=str(tmp_path / "seq_0001.exr"))

    assert out["packed"] == ["FINISHED"] and out["packed_shown"] == [32, 32], out["packed_status"]
    assert out["sequence"] == ["FINISHED"], out["sequence_status"]
    written = tmp_path / "seq_0002_denoised.exr"
    assert str(written) in out["sequence_status"] and not (tmp_path / "seq_0001_denoised.exr").exists()
    got = read_frame(written, PassNames(color=("Denoised",))).color
    np.testing.assert_allclose(got, core_denoised(untrained, tmp_path / "seq_0002.exr", PassNames(), tmp_path), rtol=1e-4, atol=1e-5)
