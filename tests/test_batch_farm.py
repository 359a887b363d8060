"""The farm recipes of docs/farm.md, run as a farm would run them (issue 21, item 3).

* Chunked tasks: ``--frames 1-4``, ``5-8``, ``9-12`` as three separate processes give the
  outputs of one run over the whole range.
* The Flamenco job type (tools/flamenco/mcdenoise_render_denoise.js), compiled by
  tools/flamenco/compile_job.js in Node (skipped without Node): render tasks by chunk, then
  denoise tasks that wait for every render task; running its denoise commands, as the Flamenco
  worker's ``exec`` command would, denoises every frame once and equals one local run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, run_cli, write_sequence
from mcdenoise.batch.plan import output_is_complete

REPO = Path(__file__).resolve().parents[1]
FLAMENCO = REPO / "tools" / "flamenco"
FRAMES = range(1, 13)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _same_as_one_run(out: Path, whole: Path, name: str = "shot_{:04d}.exr") -> None:
    for n in FRAMES:
        assert output_is_complete(out / name.format(n), "Denoised"), n
        np.testing.assert_array_equal(denoised_pass(out / name.format(n)), denoised_pass(whole / name.format(n)))
    assert leftovers(out) == []


def test_chunked_frame_tasks_equal_one_run(tmp_path, weights):
    write_sequence(tmp_path / "in", FRAMES)
    pattern = tmp_path / "in" / "shot_####.exr"
    common = ("--weights", weights, "--device", "cpu", "--keep-going", "-q")
    whole = run_cli("denoise", pattern, "--frames", "1-12", "--out", tmp_path / "whole", *common)
    assert whole.returncode == 0, whole.stderr
    for chunk in ("1-4", "5-8", "9-12"):  # three farm tasks, one process each
        task = run_cli("denoise", pattern, "--frames", chunk, "--out", tmp_path / "chunked", *common)
        assert task.returncode == 0 and "done 4 / skipped 0 / failed 0 of 4" in task.stdout, task.stderr
    _same_as_one_run(tmp_path / "chunked", tmp_path / "whole")


def _compile(settings: dict, tmp_path: Path) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (needed to compile the Flamenco job type)")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings))
    run = subprocess.run([node, FLAMENCO / "compile_job.js", FLAMENCO / "mcdenoise_render_denoise.js", settings_file],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _settings(render_dir: Path, **overrides) -> dict:
    return {"frames": "1-12", "chunk_size": 5, "denoise_tasks": 3, "mcdenoise": "mcdenoise", "denoise_quality": "fast",
            "render_output_root": str(render_dir.parent), "add_path_components": 0,
            "render_output_path": str(render_dir / "######"), "blendfile": "/farm/shot.blend",
            "format": "OPEN_EXR_MULTILAYER", "image_file_extension": ".exr", "scene": "Scene", **overrides}


def test_the_flamenco_job_renders_in_chunks_then_denoises_every_frame_once(tmp_path):
    render_dir = tmp_path / "renders" / "shot"
    tasks = _compile(_settings(render_dir), tmp_path)
    renders = [t for t in tasks if t["type"] == "blender"]
    denoises = [t for t in tasks if t["name"].startswith("denoise-")]
    assert [t["name"] for t in renders] == ["render-1-5", "render-6-10", "render-11-12"]
    assert [c["parameters"]["args"][-1] for t in renders for c in t["commands"]] == ["1..5", "6..10", "11..12"]
    assert len(denoises) == 3 and all(t["dependencies"] == [r["name"] for r in renders] for t in denoises)

    # What the workers' render tasks would leave: Blender's '######' names, multilayer EXR.
    write_sequence(render_dir, FRAMES, name="{:06d}.exr")
    logs = []
    for task in denoises:
        [command] = task["commands"]
        assert command["name"] == "exec" and command["parameters"]["exe"] == "mcdenoise"
        args = command["parameters"]["args"]
        assert args[:2] == ["denoise", str(render_dir / "######.exr")] and "--shard" in args
        # the task's command line as a worker runs it, with the thread count the whole run below
        # has (run_cli): oneDNN splits a conv's sums by thread, so the last bit may differ otherwise
        run = run_cli(*args)
        assert run.returncode == 0, run.stderr
        logs.append(run.stdout)
    counts = [re.search(r"done (\d+) / skipped 0 / failed 0", log) for log in logs]
    assert all(counts) and sum(int(m[1]) for m in counts) == 12, logs
    whole = run_cli("denoise", render_dir / "######.exr", "--out", tmp_path / "whole", "--quality", "fast", "-q")
    assert whole.returncode == 0, whole.stderr
    _same_as_one_run(render_dir / "denoised", tmp_path / "whole", name="{:06d}.exr")


def test_the_flamenco_job_refuses_renders_mcdenoise_cannot_read(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(_settings(tmp_path / "r", format="PNG")))
    run = subprocess.run([node, FLAMENCO / "compile_job.js", FLAMENCO / "mcdenoise_render_denoise.js", settings_file],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "multilayer EXR" in run.stderr
