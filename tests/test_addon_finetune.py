""""Fine-tune on this shot" in real Blender (bpy 5.0.1, the extension installed from its zip): the
"save first" and "no PyTorch" refusals, frames the core refuses worded for the panel, a tiny saved
shot (32 px, 1 spp, frames 1-3) tuned for a few steps in the background process with the model
written next to the .blend and selected for the scene's denoising, and Cancel, which writes no
model and is resumed by the next click.

The fine-tune runs the extension's vendored core in a child process (``addon/finetune_child.py``;
bpy as a module here, so ``sys.executable``), as it would from Blender's own binary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_addon import run_blender

pytestmark = pytest.mark.slow

SHOT = r'''
import os
from pathlib import Path
mod = sys.modules["bl_ext.user_default.mcdenoise.finetune_job"]
scene_io = sys.modules["bl_ext.user_default.mcdenoise.scene_io"]

def saved_shot(name):
    """The tiny cube scene, 32 px at 1 spp, frames 1-3, saved as a .blend."""
    sc = tiny_scene(1, 0, args["dir"] + "/render_", size=32)
    sc.frame_start, sc.frame_end = 1, 3
    sc.mcdenoise.finetune_minutes = 5  # a budget that never binds here: max_steps decides
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(args["dir"], name))
    return sc

def refusal():
    """Click Fine-tune (two steps at most): the operator's error, or "no error"."""
    try:
        bpy.ops.mcdenoise.finetune(max_steps=2)
        return "no error"
    except RuntimeError as exc:
        return str(exc)

class Recorder:
    """Stands in for the panel's UILayout (no UI in background mode): records what is drawn."""
    def __init__(self, log):
        self.log = log
    def box(self):
        return self
    def row(self, **_):
        return self
    def label(self, text="", icon="NONE"):
        self.log.append(["label", text, icon])
    def prop(self, data, name, **_):
        self.log.append(["prop", name])
    def operator(self, idname, **_):
        self.log.append(["operator", idname])
    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(["progress", factor, text])

def panel(sc):
    log = []
    sys.modules["bl_ext.user_default.mcdenoise.finetune_ui"].draw(Recorder(log), type("C", (), {"scene": sc})())
    return log

def outcome(run, sc):
    return {"result": run.result, "error": run.error, "stopped": run.stopped, "phases": run.phases,
            "weights": sc.mcdenoise.weights_path, "note": sc.mcdenoise.finetune_note, "output": str(run.output),
            "filepath": bpy.data.filepath, "dirty": bpy.data.is_dirty, "objects": sorted(o.name for o in bpy.data.objects),
            "panel": panel(sc)}
'''

TUNE = SHOT + r'''
# Unsaved: refused before anything starts.
tiny_scene(1, 0, args["dir"] + "/render_", size=32)
out["unsaved"] = refusal()
out["started_unsaved"] = mod.current() is not None

sc = saved_shot("shot.blend")
# What the core refuses comes back from the process worded for the panel, and leaves nothing behind.
sc.mcdenoise.finetune_frames = "2-9"
out["outside"] = refusal()
out["after_refusal"] = sorted(os.listdir(args["dir"]))
sc.mcdenoise.finetune_frames = ""  # the scene's range, 1-3
bpy.data.objects["light"].data.energy = 600  # an unsaved change: the tuning sees the scene as it is now
out["ran"] = sorted(bpy.ops.mcdenoise.finetune(max_steps=args["steps"]))
out.update(outcome(mod.current(), sc))
out["job_weights"] = scene_io.make_job(sc, Path("in.exr"), Path("out.exr")).weights_path
out["energy"] = bpy.data.objects["light"].data.energy
'''


def test_finetune_writes_the_model_next_to_the_blend_and_selects_it(tmp_path, addon_zip):
    out = run_blender(TUNE, tmp_path, zip=str(addon_zip), dir=str(tmp_path), steps=6)
    assert out["unsaved"].startswith("Error: save the .blend first"), out["unsaved"]
    assert not out["started_unsaved"]

    assert "frame(s) 4, 5, 6, 7, 8, ... are outside the scene's range 1-3; pick frames within the scene's range 1-3" \
        in out["outside"], out["outside"]
    assert not [n for n in out["after_refusal"] if n.startswith("shot_mcdenoise")], out["after_refusal"]

    weights = tmp_path / "shot_mcdenoise.pt"
    assert out["ran"] == ["FINISHED"] and out["error"] is None, out
    assert out["output"] == str(weights) and weights.is_file()
    assert not (tmp_path / "shot_mcdenoise.finetune").exists()  # the renders and checkpoints are cleaned up
    assert out["phases"] == ["start", "render", "train", "check"]
    assert ["label", out["note"], "INFO"] in out["panel"] and ["operator", "mcdenoise.finetune"] in out["panel"]
    # The artist's file is still the open one, with its unsaved change, and nothing else was written.
    assert out["filepath"] == str(tmp_path / "shot.blend") and out["dirty"] and out["energy"] == 600
    assert {"cube", "plane", "cam", "light"} <= set(out["objects"])

    meta = torch.load(weights, weights_only=True)["meta"]
    result = out["result"]
    assert meta["shot"] == "shot.blend" and meta["held_aside_frame"] == result["held_frame"] == 2
    assert meta["frames"] == [1, 3] and meta["spp"] == 1 and meta["steps"] == result["steps"] == 6
    assert meta["kept"] == result["kept"]
    assert result["gain_db"] == pytest.approx(result["tuned_psnr"] - result["base_psnr"])
    if result["kept"] == "tuned":  # selected for the scene: the Denoise button and auto-denoise use it
        assert out["weights"] == "//shot_mcdenoise.pt" and out["job_weights"] == str(weights)
        assert out["note"] == f"Fine-tuned: {result['gain_db']:+.2f} dB on frame 2 vs the shipped model"
    else:  # did not beat the shipped model on frame 2: the scene keeps it
        assert out["weights"] == "" and out["job_weights"] == ""
        assert out["note"] == f"Fine-tuning did not help ({result['gain_db']:+.2f} dB on frame 2): kept the shipped model"


CANCEL = SHOT + r'''
import json, time
sc = saved_shot("shot.blend")
run = mod.start(sc)  # no step cap: it would train for minutes
deadline = time.monotonic() + 240
while time.monotonic() < deadline and run.running and "train" not in run.phases:
    time.sleep(0.2)
out["phases_at_cancel"] = list(run.phases)
out["panel_running"] = panel(sc)
out["progress_params"] = [p.identifier for p in bpy.types.UILayout.bl_rna.functions["progress"].parameters]
bpy.ops.mcdenoise.finetune_cancel()
mod.wait(timeout=120)
out["cancelled"] = outcome(run, sc)
work = Path(mod.weights_file(bpy.data.filepath)).with_suffix(".finetune")
state = json.loads((work / "state.json").read_text())
out["state_step"] = state["step"]
out["weights_after_cancel"] = os.path.exists(run.output)
out["pt_files"] = [n for n in os.listdir(args["dir"]) if ".pt" in n]  # no temp of a half-written file either

# The next click with the same settings resumes: no render again, on from the step it reached.
out["ran"] = sorted(bpy.ops.mcdenoise.finetune(max_steps=state["step"] + 1))
out["resumed"] = outcome(mod.current(), sc)
'''


def test_cancel_writes_no_model_and_the_next_click_resumes(tmp_path, addon_zip):
    out = run_blender(CANCEL, tmp_path, zip=str(addon_zip), dir=str(tmp_path))
    assert "train" in out["phases_at_cancel"], out
    running = out["panel_running"]  # progress and a cancel button instead of the settings and the button
    assert running[0][0] == "label" and running[0][1].startswith("Fine-tuning: step ")
    assert ["operator", "mcdenoise.finetune_cancel"] in running and ["operator", "mcdenoise.finetune"] not in running
    bar = next(item for item in running if item[0] == "progress")
    assert 0 < bar[1] <= 1 and bar[2].startswith("train ") and {"factor", "type", "text"} <= set(out["progress_params"])
    cancelled = out["cancelled"]
    assert cancelled["stopped"] and cancelled["result"] is None and cancelled["error"] is None, cancelled
    assert not out["weights_after_cancel"] and out["pt_files"] == []
    assert cancelled["weights"] == "" and cancelled["note"] == ""
    assert ["label", "Cancelled: no model written; the same settings resume it", "INFO"] in cancelled["panel"]
    assert out["state_step"] >= 2

    resumed = out["resumed"]
    assert out["ran"] == ["FINISHED"] and resumed["error"] is None, resumed
    assert "render" not in resumed["phases"] and resumed["result"]["steps"] == out["state_step"] + 1
    assert Path(resumed["output"]).is_file() and resumed["note"]
    meta = torch.load(resumed["output"], weights_only=True)["meta"]
    assert json.dumps(meta["steps"]) == json.dumps(out["state_step"] + 1)


NO_TORCH = SHOT + r'''
sc = saved_shot("shot.blend")
out["error"] = refusal()
out["files"] = sorted(os.listdir(args["dir"]))
'''


def test_without_pytorch_it_says_what_to_install_and_leaves_nothing(tmp_path, addon_zip):
    out = run_blender(NO_TORCH, tmp_path, zip=str(addon_zip), dir=str(tmp_path), hide=["torch"])
    assert "PyTorch is not available in Blender" in out["error"] and "Install PyTorch" in out["error"], out
    assert not [n for n in out["files"] if n.startswith("shot_mcdenoise")], out["files"]
