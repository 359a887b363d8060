"""``mcdenoise finetune``: a tiny animated .blend made here with real Blender (a cube, a light, a
moving camera, 32x32 at 2 spp), fine-tuned for a few steps; resume after a stop, the weights
file, the "did not help, keep the base model" path, the refusals, and ``--pairs`` matching.
The budget policy (``finetune.budget``) is checked as arithmetic."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from exr_fixtures import write_blender_like
from mcdenoise.dataset import layout
from mcdenoise.errors import InputFileError, McDenoiseError
from mcdenoise.finetune import budget
from mcdenoise.finetune.pairs import frame_number, match_pairs
from mcdenoise.models.loader import load_model
from mcdenoise.models.tiers import weights_path

needs_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the render extra (bpy)")
SMALL = {"train_frames": 2, "windows_per_frame": 1, "batch": 2, "crop": 32, "threads": 1, "device": "cpu"}


# --- the budget: pure arithmetic ------------------------------------------------------------------

def test_frames_are_spread_and_one_between_them_is_held_aside():
    train, held = budget.pick_frames(list(range(1, 13)), 4)
    assert train == [1, 4, 9, 12] and held == 7
    assert budget.pick_frames([7, 8], 4) == ([7], 8)
    with pytest.raises(McDenoiseError, match="at least 2 frames") as err:
        budget.pick_frames([5], 4)
    assert err.value.fix == "finetune_frames"


def test_plan_fits_the_render_budget_and_shrinks_to_it():
    cost = budget.RenderCost(overhead=0.5, per_sample=1e-6)  # ~1 s for a 256x256 window at 16 spp
    frames = list(range(1, 25))
    big = budget.plan_renders(frames, 1920, 1080, 16, cost, 600.0)
    assert big.side == budget.MAX_SIDE and big.windows_per_frame > 1
    assert len(big.train_frames) == budget.TRAIN_FRAMES and big.seconds <= 600 and big.target_spp == 256
    # frames come before window size, as long as windows stay FRAME_SIDE or more
    medium = budget.plan_renders(frames, 1920, 1080, 16, cost, 120.0)
    assert len(medium.train_frames) == budget.TRAIN_FRAMES and budget.FRAME_SIDE <= medium.side < budget.MAX_SIDE
    assert medium.windows_per_frame == 1 and medium.seconds <= 120
    small = budget.plan_renders(frames, 1920, 1080, 16, cost, 20.0)
    assert small.seconds <= 20 and small.side % budget.GRID == 0 and budget.FRAME_SIDE <= small.side < budget.MAX_SIDE
    assert 1 < len(small.train_frames) < budget.TRAIN_FRAMES
    # too short for one frame at FRAME_SIDE: smaller windows, at most SHORT_BUDGET_FRAMES frames
    tiny = budget.plan_renders(frames, 1920, 1080, 16, cost, 8.0)
    assert budget.MIN_SIDE <= tiny.side < budget.FRAME_SIDE and len(tiny.train_frames) <= budget.SHORT_BUDGET_FRAMES
    assert tiny.seconds <= 8
    n2n = budget.plan_renders(frames, 1920, 1080, 16, cost, 20.0, targets="n2n")
    def pixels(plan):
        return len(plan.train_frames) * plan.windows_per_frame * plan.side**2

    assert n2n.target_spp == 16 and pixels(n2n) > 2 * pixels(small)  # the same minutes buy more frames
    with pytest.raises(McDenoiseError, match="cannot render even one") as err:
        budget.plan_renders(frames, 1920, 1080, 16, cost, 1.0)
    assert err.value.fix == "finetune_minutes" and err.value.details["need_minutes"] >= 1
    # the probe's arithmetic recovers a known cost
    probe = budget.RenderCost.from_probes(32 * 32, (4, 0.5 + 4096 * 1e-6), (16, 0.5 + 16384 * 1e-6))
    assert probe.overhead == pytest.approx(0.5) and probe.per_sample == pytest.approx(1e-6)


def test_the_top_up_spends_the_render_share_at_the_cost_windows_really_took():
    """A plan sized by a probe that priced windows 4x too high is topped up, once its windows
    are timed, by as many rounds (a window more of every frame) as the share left holds."""
    plan = budget.plan_renders(list(range(1, 13)), 128, 128, 4, budget.RenderCost(overhead=3.2, per_sample=0.0), 180.0)
    assert plan.windows_per_frame == 2 and plan.extra_per_frame is None and plan.windows == 22
    # 100 s of the share left at 1.6 s a window: 5 rounds of 11 windows (88 s); a 6th needs 105.6 s
    assert budget.top_up(plan, 1.6, 100.0) == 5
    assert replace(plan, extra_per_frame=5).windows == 77 and replace(plan, extra_per_frame=5).renders == 2 * 78
    assert budget.top_up(plan, 1.6, 100.0, max_per_frame=4) == 2  # never past the windows a frame asked for
    assert budget.top_up(plan, 6.4, 10.0) == 0 and budget.top_up(plan, 1.6, -5.0) == 0  # the probe was right, or low


def test_training_steps_are_fitted_to_the_minutes_left_as_steps_are_timed():
    """``budget.StepPlan``, what the fine-tune's ``on_step`` hook asks of its one run of the
    training loop: timed early, a length fixed at the second report, shortened (never lengthened)
    when steps slow down, and kept to ``max_steps``."""
    plan = budget.StepPlan()
    assert plan.target(0, 100.0, warmup=10) == 11  # not timed yet: steps inside the warm-up
    assert not plan.report_due(50.0, 1) and plan.report_due(0.1, budget.TIMING_STEPS)
    plan.measured(2, 4.0, 2, 100.0)  # 2 s a step, start-up included
    assert plan.step_seconds == 2.0 and plan.steps is None and plan.target(2, 100.0, 10) == 52
    assert plan.report_due(1.0, 5, at_target=True)  # a provisional end: refitted, not stopped at
    assert not plan.report_due(budget.REPORT_SECONDS - 1, 10) and plan.report_due(budget.REPORT_SECONDS, 10)
    plan.measured(22, 20.0, 20, 60.0)  # 1 s a step: replaces the first estimate and fixes the length
    assert plan.step_seconds == 1.0 and plan.steps == 82 and plan.target(22, 60.0, 10) == 82
    plan.measured(42, 60.0, 20, 40.0)  # 3 s a step: averaged to 2 s, and 40 steps would not fit 40 s
    assert plan.step_seconds == 2.0 and plan.steps == 62
    plan.measured(52, 10.0, 10, 30.0)  # faster again: the length stays
    assert plan.step_seconds == 1.5 and plan.steps == 62
    capped = budget.StepPlan(cap=5)
    assert capped.target(0, 100.0, 10) == 5
    capped.measured(2, 0.2, 2, 100.0)
    capped.measured(4, 0.2, 2, 100.0)
    assert capped.steps == 5 and capped.target(4, 100.0, 10) == 5


def test_targets_of_a_frame_are_pooled_where_its_windows_overlap(tmp_path):
    """Every target of a frame is an independent render at the same samples: where windows
    overlap, each window trains against their mean. Inputs stay as rendered; a pooled dataset
    is finished (marked) or redone from the renders."""
    import numpy as np
    from mcdenoise.finetune import targets
    from mcdenoise.io.exr import read_frame
    from mcdenoise.io.write import write_exr

    src, dst = tmp_path / "train", tmp_path / "pooled"
    windows = {0: (1, (0, 0, 4, 4), 1.0), 1: (1, (2, 0, 6, 4), 3.0), 2: (1, (2, 2, 6, 6), 8.0), 3: (2, (0, 0, 4, 4), 5.0)}
    for index, (frame, window, value) in windows.items():
        layout.scene_dir(src, index).mkdir(parents=True)
        colour = np.full((4, 4, 3), value, np.float32)
        colour[0, 0] = [value, 2 * value, 0.5]
        write_exr(layout.noisy_path(src, index, 2), {"ViewLayer.Combined": colour + 1.0}, multipart=True)
        write_exr(layout.ref_path(src, index), {"ViewLayer.Combined": colour}, multipart=True)
        layout.desc_path(src, index).write_text(json.dumps({"frame": frame, "window": list(window)}))
    (tmp_path / "pooled.part").mkdir()  # what a job killed while pooling leaves
    record = targets.pool(src, dst)
    # targets covering a window's pixels, on average: 28/16, 32/16, 28/16 on frame 1, 1 on frame 2
    assert record == {"windows": 4, "frames": 2, "targets_per_pixel": pytest.approx((1.75 + 2.0 + 1.75 + 1.0) / 4)}
    assert not (tmp_path / "pooled.part").exists() and targets.pooled(dst) == record

    def ref(index):
        return read_frame(layout.ref_path(dst, index)).color[..., 0]

    # window 1 covers frame pixels x 2-5, y 0-3: x 2-3 with windows 0 (1.0) and 1 (3.0), and y 2-3 with window 2 (8.0)
    assert ref(1)[0, 0] == pytest.approx((1.0 + 3.0) / 2)  # frame (2, 0): windows 0 (its pixel (2, 0)) and 1 (its corner)
    assert ref(1)[3, 0] == pytest.approx((1.0 + 3.0 + 8.0) / 3)  # frame (2, 3)
    assert ref(1)[0, 3] == pytest.approx(3.0)  # frame (5, 0): window 1 alone
    assert ref(1)[3, 3] == pytest.approx((3.0 + 8.0) / 2)  # frame (5, 3)
    assert read_frame(layout.ref_path(dst, 0)).color[0, 0].tolist() == pytest.approx([1.0, 2.0, 0.5])  # window 0's own corner
    np.testing.assert_array_equal(ref(3), read_frame(layout.ref_path(src, 3)).color[..., 0])  # frame 2: one window
    for index in windows:  # inputs and records as rendered
        assert layout.noisy_path(dst, index, 2).read_bytes() == layout.noisy_path(src, index, 2).read_bytes()
        assert layout.desc_path(dst, index).read_text() == layout.desc_path(src, index).read_text()
    stamp = layout.ref_path(dst, 1).stat().st_mtime_ns
    assert targets.pool(src, dst) == record and layout.ref_path(dst, 1).stat().st_mtime_ns == stamp  # finished: kept


def test_a_tuned_model_runs_over_rotations_unless_asked_for_one_pass():
    from mcdenoise.finetune.run import ROTATIONS, Options, rotations

    assert rotations(Options()) == ROTATIONS == 4
    assert rotations(Options(rotations=1)) == 1 and rotations(Options(quality="fast", rotations=8)) == 8
    assert rotations(Options(quality="high")) == 4  # high's own averaging


def test_windows_stay_inside_the_frame():
    for w, h, side in ((1920, 1080, 256), (48, 32, 32), (20, 20, 32)):
        spots = budget.windows(w, h, side, 8) + [budget.centre_window(w, h, side)]
        assert all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and x1 - x0 == min(side, w) for x0, y0, x1, y1 in spots)
    assert len(set(budget.windows(1920, 1080, 256, 8))) == 8


# --- --pairs: matching by frame number ------------------------------------------------------------

def test_pairs_match_by_frame_number_and_refuse_mismatches(tmp_path, cli):
    noisy, refs = tmp_path / "noisy", tmp_path / "refs"
    noisy.mkdir(), refs.mkdir()
    for n in (1, 2):
        write_blender_like(noisy / f"shot_{n:04d}.exr", h=16, w=16, seed=n)
    for n in (1, 2, 3):  # other names, an extra reference: fine
        write_blender_like(refs / f"beauty.{n}.exr", h=16, w=16, seed=10 + n)
    pairs = match_pairs(noisy, refs)
    assert [(p.frame, p.noisy.name, p.ref.name) for p in pairs] == [(1, "shot_0001.exr", "beauty.1.exr"),
                                                                   (2, "shot_0002.exr", "beauty.2.exr")]
    assert frame_number(Path("v2/beauty_v3.1042.exr")) == 1042 and frame_number(Path("beauty.exr")) is None

    write_blender_like(refs / "beauty.2.exr", h=16, w=24)
    with pytest.raises(InputFileError) as err:
        match_pairs(noisy, refs)
    assert err.value.fix == "pairs_size"
    assert f"{noisy / 'shot_0002.exr'} is 16x16 but its reference {refs / 'beauty.2.exr'} is 24x16" in str(err.value)

    (refs / "beauty.2.exr").unlink()
    code, _, stderr = cli("finetune", "--pairs", noisy, refs, "-o", tmp_path / "tuned.pt")
    assert code == 2 and f"no reference in {refs} for 1 noisy frame(s): {noisy / 'shot_0002.exr'}" in stderr
    assert "same frame numbers as the files in NOISY_DIR" in stderr and not (tmp_path / "tuned.pt").exists()


# --- a real shot ----------------------------------------------------------------------------------

def _save_shot(path: Path, camera: bool = True, engine: str = "CYCLES") -> Path:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = engine
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.render.resolution_percentage = 100
    scene.cycles.samples = 2
    scene.frame_start, scene.frame_end = 1, 4
    mesh = bpy.data.meshes.new("cube")
    import bmesh

    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=2.0)
    bm.to_mesh(mesh)
    bm.free()
    scene.collection.objects.link(bpy.data.objects.new("cube", mesh))
    light = bpy.data.objects.new("light", bpy.data.lights.new("light", "POINT"))
    light.data.energy = 1000
    light.location = (3, -3, 4)
    scene.collection.objects.link(light)
    if camera:
        cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        cam.rotation_euler = (1.0, 0.0, 0.8)
        for frame, x in ((1, 5.0), (4, 6.0)):
            cam.location = (x, -5, 4)
            cam.keyframe_insert("location", frame=frame)
        scene.collection.objects.link(cam)
        scene.camera = cam
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("needs the render extra (bpy)")
    import bpy

    folder = tmp_path_factory.mktemp("shots")
    made = {"good": _save_shot(folder / "shot.blend"), "no_camera": _save_shot(folder / "nocam.blend", camera=False),
            "eevee": _save_shot(folder / "eevee.blend", engine="BLENDER_EEVEE")}
    yield made
    bpy.ops.wm.read_factory_settings(use_empty=True)  # leave Blender as other tests expect it


@needs_bpy
def test_bad_shots_are_refused_with_their_fix(shots, tmp_path, cli):
    text = tmp_path / "notes.blend"
    text.write_text("not a scene")
    cases = [
        ((text,), f"{text}: not a Blender file (.blend); give a .blend file, or fine-tune on rendered files with --pairs"),
        ((shots["no_camera"],), "has no active camera; set the scene's camera in Blender (Scene Properties > Camera)"),
        ((shots["eevee"],), "renders with BLENDER_EEVEE, not Cycles; set the render engine to Cycles"),
        ((shots["good"], "--frames", "3-9"), "frame(s) 5, 6, 7, 8, 9 are outside the scene's range 1-4; pass --frames within 1-4"),
        ((shots["good"], "--frames", "2"), "needs at least 2 frames, got 1; give --frames a range of at least two frames"),
    ]
    for args, expected in cases:
        code, _, stderr = cli("finetune", *args, "-o", tmp_path / "out.pt", "--minutes", "1", "--device", "cpu")
        assert code == 2 and expected in stderr and stderr.startswith("mcdenoise finetune: error: "), stderr
        assert "Traceback" not in stderr and not (tmp_path / "out.pt").exists()


@pytest.fixture(scope="module")
def tuned(shots, tmp_path_factory):
    """A shot tuned for 3 steps in two calls: the first stopped after 2 steps (what a kill leaves)."""
    from mcdenoise.finetune.run import Options, finetune_shot, work_dir

    out = tmp_path_factory.mktemp("tuned") / "shot.pt"
    opts = Options(minutes=30, max_steps=3, **SMALL)  # a budget that never binds: steps decide
    first = finetune_shot(shots["good"], out, replace(opts, stop_after_steps=2))
    renders = _renders(out)
    assert not out.exists()  # nothing is written before the job ends
    second = finetune_shot(shots["good"], out, opts)
    return out, first, second, renders


def _renders(out: Path) -> dict[Path, int]:
    """The job's rendered EXRs (training windows and the held-aside one) and their times."""
    from mcdenoise.finetune.run import work_dir

    return {p: p.stat().st_mtime_ns for root in ("train", "holdout") for p in (work_dir(out) / root).rglob("*.exr")}


@needs_bpy
def test_a_stopped_job_resumes_without_rendering_again(tuned):
    from mcdenoise.finetune.run import work_dir

    out, first, second, renders = tuned
    assert not first.finished and first.steps == 2 and first.base_psnr is not None
    assert second.finished and second.steps == 3 and out.is_file()
    assert len(renders) == 2 * 3  # 2 training windows + the held-aside one, noisy and target each
    assert _renders(out) == renders
    # It trained on the windows with their frame's targets pooled: one window a frame here.
    assert json.loads((work_dir(out) / "pooled" / "pooled.json").read_text()) == {"windows": 2, "frames": 2,
                                                                                  "targets_per_pixel": 1.0}
    assert json.loads((work_dir(out) / "run" / "config.json").read_text())["data"] == str(work_dir(out) / "pooled")
    state = json.loads((work_dir(out) / "state.json").read_text())
    assert state["plan"]["train_frames"] == [1, 4] and state["plan"]["held_frame"] == 3 and state["plan"]["spp"] == 2
    assert 0 < state["spent"] <= 30 * 60
    held = layout.list_scenes(work_dir(out) / "holdout")[0]
    assert json.loads(held.desc.read_text())["frame"] == 3


@needs_bpy
def test_the_weights_load_weights_only_and_denoise_the_shot(tuned, cli, tmp_path):
    from mcdenoise.finetune.run import work_dir

    out, _, second, _ = tuned
    payload = torch.load(out, weights_only=True)
    meta = payload["meta"]
    assert meta["shot"] == "shot.blend" and meta["frames"] == [1, 4] and meta["held_aside_frame"] == 3
    assert meta["spp"] == 2 and meta["minutes"] == 30 and meta["steps"] == 3 and meta["kept"] == second.kept
    assert meta["validation_gain_db"] == pytest.approx(second.tuned_psnr - second.base_psnr, abs=1e-3)
    # A tuned model runs (and was checked) averaged over 4 rotations, as the base balanced model does.
    assert meta.get("self_ensemble", 1) == 4
    assert ("tuned_psnr_one_pass" in meta) == (second.kept == "tuned")
    from mcdenoise.models.ensemble import SelfEnsemble
    from mcdenoise.models.tiers import load_for_cli

    assert isinstance(load_for_cli(out, None, "cpu").model, SelfEnsemble)
    loaded = load_model(out)
    base = load_model(weights_path("balanced"))
    same = all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), base.model.state_dict().values()))
    assert same == (second.kept == "base")
    held = layout.list_scenes(work_dir(out) / "holdout")[0]
    code, _, stderr = cli("denoise", held.noisy(2), "-o", tmp_path / "denoised.exr", "--weights", out, "--device", "cpu")
    assert code == 0 and (tmp_path / "denoised.exr").is_file(), stderr
    # Called again, the finished job reports what it did without training again.
    from mcdenoise.finetune.run import Options, finetune_shot

    again = finetune_shot(_shot_of(out), out, Options(minutes=30, max_steps=3, **SMALL))
    assert again.finished and again.kept == second.kept and again.tuned_psnr == second.tuned_psnr


def _shot_of(out: Path) -> Path:
    from mcdenoise.finetune.run import work_dir

    return Path(json.loads((work_dir(out) / "state.json").read_text())["job"]["source"])


@needs_bpy
def test_tuning_that_does_not_help_keeps_the_base_model(tuned, tmp_path):
    """From files (``--pairs``): the shot's renders laid out as two folders, tuned with a
    learning rate that wrecks the network; the base model is written, and says so."""
    from mcdenoise.finetune.run import Options, finetune_pairs, work_dir

    noisy, refs = tmp_path / "noisy", tmp_path / "refs"
    noisy.mkdir(), refs.mkdir()
    for root in (work_dir(tuned[0]) / "train", work_dir(tuned[0]) / "holdout"):
        for entry in layout.list_scenes(root):
            frame = json.loads(entry.desc.read_text())["frame"]
            shutil.copyfile(entry.noisy(2), noisy / f"shot_{frame:04d}.exr")
            shutil.copyfile(entry.ref, refs / f"ref_{frame:04d}.exr")
    out = tmp_path / "wrecked.pt"
    result = finetune_pairs(noisy, refs, out, Options(minutes=30, max_steps=2, lr=0.3, **SMALL))
    assert result.finished and result.held_frame == 3 and result.kept == "base"
    assert not result.tuned_psnr >= result.base_psnr  # worse, or NaN: the network diverged
    loaded, base = load_model(out), load_model(weights_path("balanced"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), base.model.state_dict().values()))
    assert loaded.meta["kept"] == "base" and "this is the base model" in loaded.meta["finetune"]
    assert loaded.meta["frames"] == [1, 4] and loaded.meta.get("validation_gain_db", -1.0) < 0


@needs_bpy
def test_sigterm_stops_the_cli_with_a_checkpoint_and_the_job_resumes(shots, tmp_path):
    """What a farm manager's or the add-on's cancel does: SIGTERM to ``mcdenoise finetune``
    while it trains. It stops after the current step with its state on disk, says how to
    resume, and the same job called again finishes without rendering anything again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mcdenoise.finetune.run import Options, finetune_shot, work_dir

    out = tmp_path / "killed.pt"
    state = work_dir(out) / "state.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mcdenoise", "finetune", str(shots["good"]), "-o", str(out),
                             "--minutes", "30", "--device", "cpu", "--threads", "1", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file() and "step" in json.loads(state.read_text() or "{}"):
                break  # the first chunk of training is done: it is in the loop now
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "run the same command again to resume" in stderr and not out.exists()
    killed = json.loads(state.read_text())
    renders = _renders(out)
    assert killed["step"] >= 2 and len(renders) == 2 * (
        killed["plan"]["windows_per_frame"] * len(killed["plan"]["train_frames"]) + 1)

    result = finetune_shot(shots["good"], out, Options(minutes=30, max_steps=killed["step"] + 1, **SMALL))
    assert result.finished and result.steps == killed["step"] + 1 and out.is_file()
    assert _renders(out) == renders
    # The frame is no larger than a window, so every target of a frame covers all of it.
    per, frames = killed["plan"]["windows_per_frame"], len(killed["plan"]["train_frames"])
    assert json.loads((work_dir(out) / "pooled" / "pooled.json").read_text()) == {"windows": per * frames, "frames": frames,
                                                                                  "targets_per_pixel": per}


@needs_bpy
def test_an_overpriced_probe_is_topped_up_with_windows_indexed_after_the_plans(shots, tmp_path, monkeypatch):
    """The probe says a window costs 80 s, so 30 minutes plan one window a frame; the real
    windows take a fraction of a second, and the top-up renders two more rounds (the three a frame
    asked for) at new places, indexed after the planned ones. A kill while topping up loses only
    the window in flight: the next call renders just that one, and the plan's windows stay."""
    from mcdenoise.finetune import run
    from mcdenoise.finetune.run import Options, finetune_shot, work_dir

    monkeypatch.setattr(run, "_probe", lambda *a: budget.RenderCost(overhead=80.0, per_sample=0.0))
    out = tmp_path / "topped.pt"
    opts = Options(minutes=30, max_steps=2, **{**SMALL, "windows_per_frame": 3})
    assert not finetune_shot(shots["good"], out, replace(opts, stop_after_steps=1)).finished
    state = json.loads((work_dir(out) / "state.json").read_text())
    assert state["plan"]["windows_per_frame"] == 1 and state["plan"]["extra_per_frame"] == 2
    entries = layout.list_scenes(work_dir(out) / "train")
    records = [json.loads(e.desc.read_text()) for e in entries]
    assert [e.index for e in entries] == list(range(6))
    assert [r["frame"] for r in records] == [1, 4, 1, 4, 1, 4]  # planned (one a frame), then two rounds
    assert len({(r["frame"], r["seeds"]["noisy"]) for r in records}) == 6  # every window its own seeds
    # A kill in the middle of the top-up: the last window's marker and target never got written.
    last = entries[-1]
    last.desc.unlink()
    last.ref.unlink()
    kept = {p: t for p, t in _renders(out).items() if p.parent != last.ref.parent}
    result = finetune_shot(shots["good"], out, opts)
    assert result.finished and result.meta["windows"] == 6 and load_model(out).meta["windows"] == 6
    again = _renders(out)
    assert {p: t for p, t in again.items() if p in kept} == kept and len(again) == 2 * (6 + 1)
    assert json.loads(last.desc.read_text())["seeds"] == records[-1]["seeds"]  # the same window, rendered again


def test_restart_clears_a_finished_or_other_job_and_keeps_a_stopped_one(tmp_path):
    """``Options.restart`` (the add-on's button): another job's work or a finished job is cleared
    (renders, run, state; other files stay), a stopped job of the same settings is resumed."""
    from mcdenoise.finetune.run import Job, work_dir

    out = tmp_path / "shot.pt"
    folder = work_dir(out)
    (folder / "train" / "0000").mkdir(parents=True)
    (folder / "shot.blend").write_bytes(b"BLENDER")
    me = {"source": "shot.blend", "frames": None}
    Job(out, me, 1.0).save()
    assert Job(out, me, 1.0, restart=True).state["job"] == me and (folder / "train").is_dir()  # stopped: resumed
    with pytest.raises(McDenoiseError, match="holds the work of another fine-tuning job"):
        Job(out, {**me, "frames": [1, 2]}, 1.0)
    other = Job(out, {**me, "frames": [1, 2]}, 1.0, restart=True)
    assert other.state["spent"] == 0.0 and not (folder / "train").exists() and (folder / "shot.blend").is_file()
    other.state["result"] = {"kept": "tuned"}
    other.save()
    again = Job(out, {**me, "frames": [1, 2]}, 1.0, restart=True)
    assert "result" not in again.state
