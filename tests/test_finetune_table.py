"""Issue 19's measurement at toy size, with real Blender: an animated benchmark shot rendered by
``render-suite --shots`` (32 px, frames 1-6), the .blend it writes beside the frames (what
``finetune`` reads: the same scene, exposure and motion), ``bench --sequence`` scoring a tuned
model on chosen frames, and ``tools/finetune_table.py`` tuning on frames 1-3 and scoring on 4-6,
resumably."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from mcdenoise.dataset import layout

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the render extra (bpy)")]
SHOT, FRAMES, RES = "glass_orbit", 6, 32
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """The toy shot: frames 1-6 at 1 spp with 4-spp references, and its .blend."""
    import bpy
    from mcdenoise.dataset.sequence_render import render_shots

    root = tmp_path_factory.mktemp("shots")
    stats = render_shots(root, [SHOT], frames=FRAMES, res=RES, spps=[1], ref_spp=4, threads=1, progress=False)
    assert stats["rendered"] == 1
    yield root
    bpy.ops.wm.read_factory_settings(use_empty=True)  # leave Blender as other tests expect it


def _load_tool():
    spec = importlib.util.spec_from_file_location("finetune_table", REPO / "tools" / "finetune_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shot_blend_renders_what_the_frames_show(shots: Path, tmp_path: Path) -> None:
    """finetune's own reader opens the .blend: the shot's frame range, resolution, noisy samples
    and exposure; rendered through finetune's path, frame 6 has frame 6's geometry (not frame
    1's) and the references' brightness."""
    from mcdenoise.dataset.render import BOUNCES
    from mcdenoise.dataset.sequence_render import blend_path, render_shots
    from mcdenoise.finetune import shot as shot_mod
    from mcdenoise.io.exr import read_frame

    record = json.loads(layout.suite_desc_path(shots, SHOT).read_text())
    blend = blend_path(shots, SHOT)
    assert record["blend"] == blend.name and blend.is_file()
    assert not [p.name for p in blend.parent.iterdir() if p.name.startswith(".") or p.suffix == ".blend1"]
    scene, shot = shot_mod.open_shot(blend, [1, 2, 3])
    assert (shot.frame_start, shot.frame_end, shot.width, shot.height, shot.spp, shot.adaptive) == (1, FRAMES, RES, RES, 1, False)
    c = scene.cycles
    assert c.use_animated_seed and not scene.render.use_motion_blur and scene.view_layers[0].use_pass_vector
    assert c.film_exposure == pytest.approx(record["render"]["exposure"], rel=1e-5)
    assert {k: getattr(c, k) for k in BOUNCES} == BOUNCES

    shot_mod.prepare(scene, shot, "cpu", 1)
    ours = {}
    for frame in (1, FRAMES):
        path = tmp_path / f"frame{frame}.exr"
        shot_mod.render_window(scene, shot, frame, (0, 0, RES, RES), 16, shot.seed(frame, "test"), path)
        ours[frame] = read_frame(path, features=("normal",))
    refs = {f: read_frame(layout.sequence_ref_path(shots, SHOT, f), features=("normal",)) for f in (1, FRAMES)}
    same = np.abs(ours[FRAMES].normal - refs[FRAMES].normal).mean()
    other = np.abs(ours[FRAMES].normal - refs[1].normal).mean()
    assert same < 0.85 * other, (same, other)  # the camera and the objects moved between frames 1 and 6
    ratio = ours[FRAMES].color.mean() / refs[FRAMES].color.mean()
    assert 0.9 < ratio < 1.1, ratio  # the calibrated exposure, not Blender's default 1.0

    # A shot rendered before shots had a .blend gets one on the next run, from its JSON; no frame is redone.
    frames = {p: p.stat().st_mtime_ns for p in blend.parent.glob("*.exr")}
    blend.unlink()
    stats = render_shots(shots, [SHOT], frames=FRAMES, res=RES, spps=[1], ref_spp=4, threads=1, progress=False)
    assert stats["rendered"] == 0 and stats["skipped"] == 1 and blend.is_file()
    assert {p: p.stat().st_mtime_ns for p in blend.parent.glob("*.exr")} == frames
    scene, shot = shot_mod.open_shot(blend)
    assert scene.cycles.film_exposure == pytest.approx(record["render"]["exposure"], rel=1e-5) and shot.frame_end == FRAMES


def test_bench_sequence_refuses_missing_shots_and_frames(shots: Path, cli, tmp_path: Path) -> None:
    code, _, err = cli("bench", "--sequence", shots, "--shots", "nope", "--spp", "1", "--out", tmp_path / "r")
    assert code != 0 and f"no finished shot nope with 1-spp frames; found: {SHOT}" in err and "Traceback" not in err
    code, _, err = cli("bench", "--sequence", shots, "--shots", SHOT, "--frames", "5-9", "--spp", "1", "--out", tmp_path / "r")
    assert code != 0 and f"shot {SHOT} has no 1-spp frame and reference for frame(s) 7, 8, 9; it has 1-{FRAMES}" in err


def test_finetune_table_tunes_on_early_frames_scores_on_later_ones_and_resumes(shots: Path, tmp_path: Path, capsys) -> None:
    """One cell at toy size: finetune on frames 1-3 of the .blend (a budget of 1 minute, training
    capped at 2 steps), bench on frames 4-6; the table's numbers are the bench's and the weights
    file's. Run again, nothing is redone; with only the cell's record gone, only the scoring is."""
    tool = _load_tool()
    out = tmp_path / "report"
    argv = [str(shots), "--shots", SHOT, "--minutes", "1", "--max-steps", "2", "--train-frames", "1-3",
            "--measure-frames", "4-6", "--spp", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]
    assert tool.main(argv) == 0
    cell = out / "cells" / SHOT / "1min"
    record = json.loads((cell / "cell.json").read_text())
    bench = json.loads((cell / "bench" / "temporal.json").read_text())
    scored = bench["shots"][0]
    assert bench["tuned"] == "tuned (tuned.pt)" and record["measured_frames"] == scored["frames"] == [4, 5, 6]
    for key, method in (("tuned", bench["tuned"]), ("base", "ours single-frame"), ("oidn", "OIDN plain"),
                        ("oidn_accurate", "OIDN-Accurate")):
        assert record["psnr"][key] == scored["numbers"][method]["psnr"] and len(record["psnr"][key]) == 3
        assert all(math.isfinite(v) and v > 10 for v in record["psnr"][key])
    m = record["mean_psnr"]
    assert record["tuned_minus_oidn_accurate"] == pytest.approx(m["tuned"] - m["oidn_accurate"])
    assert scored["single_frame_gaps"]["tuned_minus_oidn_accurate"] == pytest.approx(record["tuned_minus_oidn_accurate"])

    from mcdenoise.models.loader import load_model

    meta = load_model(cell / "tuned.pt").meta
    assert meta["frames"] == [1, 3] and meta["held_aside_frame"] == 2 and meta["spp"] == 1  # never frames 4-6
    assert record["finetune"]["steps"] == meta["steps"] <= 2 and record["finetune"]["kept"] == meta["kept"]
    table = (out / "finetune_table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| {SHOT} |"))
    assert row.split(" | ")[1:4] == ["1", str(meta["steps"]), f"{m['tuned']:.2f}"]
    assert f"{record['tuned_minus_oidn_accurate']:+.2f}" in row
    assert json.loads((out / "finetune_table.json").read_text())["cells"] == [record]

    stamps = {p: p.stat().st_mtime_ns for p in cell.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert tool.main(argv) == 0
    assert f"{SHOT} 1 min: done before" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in cell.rglob("*") if p.is_file()} == stamps

    (cell / "cell.json").unlink()
    finetune_log = (cell / "finetune.log").read_text()
    assert tool.main(argv) == 0
    assert (cell / "finetune.log").read_text() == finetune_log  # the tuned model was kept, only scored again
    assert json.loads((cell / "cell.json").read_text())["psnr"] == record["psnr"]


def test_finetune_table_refuses_overlapping_frames(tmp_path: Path, capsys) -> None:
    tool = _load_tool()
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path), "--shots", SHOT, "--train-frames", "1-4", "--measure-frames", "4-6", "--out", str(tmp_path)])
    assert "share frame(s) 4: the measurement must be on frames the tuning never sees" in capsys.readouterr().err
