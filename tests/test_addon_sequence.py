"""Animations in the extension, in real Blender: auto-denoise keeps a temporal history between
``render_write`` calls (and starts it again where it must), and Denoise sequence denoises frames
already on disk, Overwrite-skipped ones included, with the same temporal path, missing frames
reported and a cancel leaving every file whole.

A cube slides across a 32 px frame over 4 frames (1 spp, animated seed, Vector pass on through
Set up passes) with an untrained network: the checks are which path ran and which pixels came
out, compared with the core (``mcdenoise denoise`` single-frame, and its temporal path on the
same files), not the model's quality.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from test_addon import channels, run_blender
from test_addon_frames import core_denoised

pytestmark = pytest.mark.slow

ANIMATED = r'''
import os, hashlib
sc = tiny_scene(1, 1, "//unused", size=32)
assert sorted(bpy.ops.mcdenoise.setup_passes()) == ["FINISHED"]
out["vector_pass_on"] = all(vl.use_pass_vector for vl in sc.view_layers)
sc.cycles.use_animated_seed = True
cube = bpy.data.objects["cube"]
cube.location = (-0.6, 0.0, 0.5); cube.keyframe_insert("location", frame=1)
cube.location = (0.9, 0.3, 0.5); cube.keyframe_insert("location", frame=4)
prefs.backend = "BLENDER"
status_module = sys.modules["bl_ext.user_default.mcdenoise.status"]
messages = []
real_report = status_module.report
def report(message, error=False):
    messages.append(("ERROR " if error else "") + message)
    real_report(message, error)
status_module.report = report
pushes = []

def render(prefix, first, last, step=1):
    sc.render.filepath = os.path.join(args["dir"], prefix)
    sc.frame_start, sc.frame_end, sc.frame_step = first, last, step
    bpy.ops.render.render(animation=True)

def digest(path):
    st = os.stat(path)
    return [hashlib.sha256(open(path, "rb").read()).hexdigest(), st.st_ino]
'''

# Each push into a temporal history: (frame, frames it holds after the push; 0 = alone, no vectors).
PUSHES = r'''
sys.modules["bl_ext.user_default.mcdenoise.runtime"].core()
import mcdenoise.temporal.history as history
real_push = history.TemporalHistory.push
def push(self, number, denoised, noisy, vector, exposure, *guides):
    result = real_push(self, number, denoised, noisy, vector, exposure, *guides)
    pushes.append([number, len(self.kept)])
    return result
history.TemporalHistory.push = push
'''

RENDERS = r'''
sc.mcdenoise.auto_denoise = True
phases = {}
def phase(name, *renders):
    pushes.clear(); messages.clear()
    for r in renders:
        render(*r)
    phases[name] = {"pushes": [list(p) for p in pushes], "messages": list(messages)}

phase("anim", ("anim_", 1, 4))
# After the render's queued frames, its kept frames are let go of.
out["held_after_render"] = sys.modules["bl_ext.user_default.mcdenoise.temporal_state"].RENDER.held()
phase("step", ("step_", 1, 4, 2))           # frames 1 and 3: not consecutive
phase("split", ("split_", 1, 2), ("split_", 3, 4))  # two renders: render_init restarts
sc.render.use_motion_blur = True            # Cycles writes no Vector pass
phase("blur", ("blur_", 1, 3))
out["phases"] = phases
'''


def denoised(path: Path) -> np.ndarray:
    return read_frame(path, PassNames(color=("Denoised",), layer="ViewLayer")).color


def cli_temporal(cli, tmp_path: Path, pattern: str, frames: str, untrained: Path) -> Path:
    """The CLI's temporal path on the same files (their render passes are as Blender wrote them)."""
    out_dir = tmp_path / f"cli_{Path(pattern).name.split('#')[0]}"
    code, _, err = cli("denoise", tmp_path / pattern, "--frames", frames, "--out", out_dir, "--weights", untrained,
                       "--device", "cpu", "--overwrite", "-v")
    assert code == 0, err
    return out_dir


def test_auto_denoise_keeps_a_temporal_history_across_an_animation_render(addon_zip, untrained, tmp_path, cli):
    """Frames 2-4 of an animation blend the earlier frames (the CLI's temporal result, pixel for
    pixel, and not the single-frame one); frame 1 is the single-frame result. Frames that do not
    follow (a frame step, a second render) start the history again; without a Vector pass (motion
    blur on) frames are denoised alone and the artist is told once."""
    out = run_blender(ANIMATED + PUSHES + RENDERS, tmp_path, untrained, zip=str(addon_zip), dir=str(tmp_path))
    phases = out["phases"]
    assert out["vector_pass_on"]

    assert phases["anim"]["pushes"] == [[1, 1], [2, 2], [3, 3], [4, 4]], phases["anim"]
    assert out["held_after_render"] == 0
    assert any("frame 4: 'Denoised' pass added" in m and "temporal, 3 earlier frame(s)" in m
               for m in phases["anim"]["messages"]), phases["anim"]["messages"]
    cli_out = cli_temporal(cli, tmp_path, "anim_####.exr", "1-4", untrained)
    for n in range(1, 5):
        path = tmp_path / f"anim_{n:04d}.exr"
        got = denoised(path)
        single = core_denoised(untrained, path, PassNames(layer="ViewLayer"), tmp_path)
        np.testing.assert_allclose(got, denoised(cli_out / path.name), rtol=1e-4, atol=1e-5, err_msg=str(path))
        if n == 1:
            np.testing.assert_allclose(got, single, rtol=1e-4, atol=1e-5)
        else:
            assert np.abs(got - single).max() > 1e-3, f"frame {n} is the single-frame result"

    assert phases["step"]["pushes"] == [[1, 1], [3, 1]], phases["step"]
    assert phases["split"]["pushes"] == [[1, 1], [2, 2], [3, 1], [4, 2]], phases["split"]
    for prefix in ("step_", "split_"):  # frame 3 starts afresh: the single-frame result
        path = tmp_path / f"{prefix}0003.exr"
        np.testing.assert_allclose(denoised(path), core_denoised(untrained, path, PassNames(layer="ViewLayer"), tmp_path),
                                   rtol=1e-4, atol=1e-5, err_msg=str(path))
    split4 = tmp_path / "split_0004.exr"
    assert np.abs(denoised(split4) - core_denoised(untrained, split4, PassNames(layer="ViewLayer"), tmp_path)).max() > 1e-3

    blur = phases["blur"]
    assert [k for _, k in blur["pushes"]] == [0, 0, 0], blur
    told = [m for m in blur["messages"] if "no Vector pass" in m]
    assert len(told) == 1 and "motion blur is on" in told[0], blur["messages"]
    assert all(f"ViewLayer.Denoised.{c}" in channels(tmp_path / f"blur_{n:04d}.exr") for n in (1, 2, 3) for c in "RGB")


SEQUENCE = r'''
seq_module = sys.modules["bl_ext.user_default.mcdenoise.sequence"]
jobs_module = sys.modules["bl_ext.user_default.mcdenoise.jobs"]
def frame_file(n):
    return os.path.join(args["dir"], f"seq_{n:04d}.exr")
def summary():
    run = seq_module.latest()
    return {"done": run.done, "skipped": run.skipped, "missing": run.missing, "failed": run.failed,
            "finished": run.finished, "cancelled": run.cancelled}

# Frame 2 was rendered earlier without the add-on; the animation with Overwrite off skips it.
sc.mcdenoise.auto_denoise = False
render("seq_", 2, 2)
sc.mcdenoise.auto_denoise = True
sc.render.use_overwrite = False
render("seq_", 1, 4)
out["frame2_had_pass"] = b"Denoised" in open(frame_file(2), "rb").read(20000)
before = {n: digest(frame_file(n)) for n in (1, 3, 4)}

# Denoise sequence over the scene's range, one frame past the rendered ones.
sc.mcdenoise.auto_denoise = False
sc.frame_start, sc.frame_end, sc.frame_step = 1, 5, 1
pushes.clear(); messages.clear()
out["output_result"] = sorted(bpy.ops.mcdenoise.denoise_sequence(source="OUTPUT"))
out["output_run"] = summary()
out["output_untouched"] = {str(n): digest(frame_file(n)) == before[n] for n in before}
out["output_messages"] = list(messages)

# The files as an EXR sequence, denoised again: the temporal path over frames 1-4.
pushes.clear()
out["files_result"] = sorted(bpy.ops.mcdenoise.denoise_sequence(source="FILES", filepath=frame_file(1), overwrite=True))
out["files_run"] = summary()
out["files_pushes"] = [list(p) for p in pushes]
for n in range(1, 5):
    import shutil
    shutil.copy(frame_file(n), os.path.join(args["keep"], f"seq_{n:04d}.exr"))

# Cancel (what Esc and the Cancel button call) while frame 3 is being denoised.
writeback = sys.modules["bl_ext.user_default.mcdenoise.writeback"]
real_run = writeback.worker.run
def cancelling(job, *a, **k):
    if job.in_path.name == "seq_0003.exr":
        jobs_module.cancel()
    return real_run(job, *a, **k)
writeback.worker.run = cancelling
before = {n: digest(frame_file(n)) for n in range(1, 5)}
messages.clear()
out["cancel_result"] = sorted(bpy.ops.mcdenoise.denoise_sequence(source="FILES", filepath=frame_file(1), overwrite=True))
writeback.worker.run = real_run
out["cancel_run"] = summary()
out["cancel_same"] = {str(n): digest(frame_file(n)) == before[n] for n in before}
out["cancel_messages"] = list(messages)
out["files_after_cancel"] = sorted(os.listdir(args["dir"]))
'''


def test_denoise_sequence_fills_in_skipped_frames_reports_missing_ones_and_cancels_cleanly(
        addon_zip, untrained, tmp_path, cli):
    """An animation rendered with Overwrite off skips frame 2 (already on disk), so auto-denoise
    never sees it: Denoise sequence over the scene's range gives it the pass, leaves the frames
    that have it untouched and lists frame 5 as missing. As an EXR sequence with 'Denoise again'
    it runs the temporal path (the CLI's pixels). Cancelled at frame 3, frames 3 and 4 stay as
    they were, byte for byte, and no temp file is left."""
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    out = run_blender(ANIMATED + PUSHES + SEQUENCE, tmp_path, untrained, zip=str(addon_zip), dir=str(render_dir),
                      keep=str(tmp_path))

    assert not out["frame2_had_pass"]
    assert out["output_result"] == ["FINISHED"], out["output_messages"]
    assert out["output_run"] == {"done": [2], "skipped": [1, 3, 4], "missing": [5], "failed": [], "finished": True,
                                 "cancelled": False}, out["output_run"]
    assert all(out["output_untouched"].values()), out["output_untouched"]
    assert any("missing on disk: 5" in m for m in out["output_messages"]), out["output_messages"]
    assert {f"ViewLayer.Denoised.{c}" for c in "RGB"} <= channels(render_dir / "seq_0002.exr")

    assert out["files_result"] == ["FINISHED"]
    assert out["files_run"]["done"] == [1, 2, 3, 4] and not out["files_run"]["missing"], out["files_run"]
    assert out["files_pushes"] == [[1, 1], [2, 2], [3, 3], [4, 4]], out["files_pushes"]
    cli_out = cli_temporal(cli, tmp_path, "seq_####.exr", "1-4", untrained)  # the copies kept in tmp_path
    for n in range(1, 5):
        path = tmp_path / f"seq_{n:04d}.exr"
        np.testing.assert_allclose(denoised(path), denoised(cli_out / path.name), rtol=1e-4, atol=1e-5, err_msg=str(path))

    assert out["cancel_result"] == ["CANCELLED"], out["cancel_messages"]
    assert out["cancel_run"]["done"] == [1, 2] and out["cancel_run"]["cancelled"], out["cancel_run"]
    assert out["cancel_same"] == {"1": False, "2": False, "3": True, "4": True}, out["cancel_same"]
    assert any("frame 3: cancelled" in m for m in out["cancel_messages"]), out["cancel_messages"]
    assert out["files_after_cancel"] == [f"seq_{n:04d}.exr" for n in range(1, 5)], out["files_after_cancel"]


EXTERNAL = r'''
prefs.backend, prefs.python_path = "EXTERNAL", args["python"]
messages.clear()
sc.mcdenoise.auto_denoise = False
render("ext_", 1, 3)
sc.frame_start, sc.frame_end = 1, 3
out["result"] = sorted(bpy.ops.mcdenoise.denoise_sequence(source="OUTPUT"))
out["run"] = sys.modules["bl_ext.user_default.mcdenoise.sequence"].latest().done
out["messages"] = list(messages)
'''


def test_denoise_sequence_with_the_external_python_denoises_frame_by_frame_and_says_so_once(addon_zip, untrained, tmp_path):
    """Blender 4.2 (the oldest the manifest claims) with the model in an external Python: the
    temporal step needs PyTorch in Blender, so each frame is the single-frame result, and the
    artist is told once, not per frame."""
    from test_addon import blender_python

    out = run_blender(ANIMATED + EXTERNAL, tmp_path, untrained, blender=blender_python("4.2"), zip=str(addon_zip),
                      dir=str(tmp_path), python=sys.executable)

    assert out["result"] == ["FINISHED"] and out["run"] == [1, 2, 3], out["messages"]
    told = [m for m in out["messages"] if "needs PyTorch in Blender" in m]
    assert len(told) == 1, out["messages"]
    for n in (1, 2, 3):
        path = tmp_path / f"ext_{n:04d}.exr"
        np.testing.assert_allclose(denoised(path), core_denoised(untrained, path, PassNames(layer="ViewLayer"), tmp_path),
                                   rtol=1e-4, atol=1e-5, err_msg=str(path))


def test_denoise_file_writes_what_the_temporal_step_returns(untrained, tmp_path):
    """The core's hook the add-on's history plugs into: the step gets the single-frame result,
    and what it returns is what is written (and handed back to the add-on's image)."""
    from exr_fixtures import write_blender_like

    from mcdenoise.inference.frames import denoise_file
    from mcdenoise.models.loader import load_model

    path = tmp_path / "frame.exr"
    write_blender_like(path, 32, 32)
    loaded = load_model(untrained, device="cpu")
    seen = []

    def step(prepared, denoised):
        seen.append(denoised.copy())
        return denoised * 0.5

    result = denoise_file(loaded, path, tmp_path / "out.exr", PassNames(), temporal=step)
    plain = denoise_file(loaded, path, tmp_path / "plain.exr", PassNames()).denoised
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], plain, rtol=1e-5, atol=1e-6)
    got = read_frame(tmp_path / "out.exr", PassNames(color=("Denoised",))).color
    np.testing.assert_allclose(got, plain * 0.5, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(result.denoised, plain * 0.5, rtol=1e-5, atol=1e-6)
