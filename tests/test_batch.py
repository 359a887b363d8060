"""``mcdenoise denoise`` on sequences as a farm runs it: patterns, sharding, resuming after a
kill, and tiled output equal to untiled output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, run_cli, write_sequence
from exr_fixtures import channel_dump, write_blender_like
from mcdenoise.batch.plan import output_is_complete
from mcdenoise.io.exr import open_exr
from mcdenoise.batch.sequence import expand_inputs, parse_frames, parse_pattern, select_shard


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def test_frame_ranges_and_patterns(tmp_path):
    assert parse_frames("1001-1004,1010,1020-1026x3") == [1001, 1002, 1003, 1004, 1010, 1020, 1023, 1026]
    with pytest.raises(ValueError, match="1-100x2"):
        parse_frames("10..20")
    assert parse_pattern("a#b/shot_####.exr").path(7).name == "shot_0007.exr"
    assert parse_pattern("shot_%04d.exr").path(1001).name == "shot_1001.exr"
    assert parse_pattern("shot_final.exr") is None
    write_sequence(tmp_path, [1, 2, 4])
    # Without --frames the pattern spans first..last on disk and keeps the gap as missing.
    found = expand_inputs([str(tmp_path / "shot_####.exr")])
    assert [(s.frame, s.missing) for s in found] == [(1, False), (2, False), (3, True), (4, False)]
    found = expand_inputs([str(tmp_path / "shot_%04d.exr")], frames=[2, 4, 5])
    assert [(s.frame, s.missing) for s in found] == [(2, False), (4, False), (5, True)]
    # Shards are disjoint and together cover the list, missing frames included.
    shards = [select_shard(found, (i, 2)) for i in range(2)]
    assert sorted(s.frame for part in shards for s in part) == [2, 4, 5] and not set(shards[0]) & set(shards[1])


def test_sequence_to_out_dir_keeps_every_pass_and_resumes(tmp_path, weights):
    src = write_sequence(tmp_path / "in", [1001, 1002, 1003])
    out = tmp_path / "out"
    run = run_cli("denoise", tmp_path / "in" / "shot_####.exr", "--frames", "1001-1003", "--out-dir", out, "--weights", weights)
    assert run.returncode == 0, run.stderr
    assert "done 3 / skipped 0 / failed 0" in run.stdout
    for path in src:
        before, after = channel_dump(path), channel_dump(out / path.name)
        assert set(after) == set(before) | {"ViewLayer.Denoised"}
        assert all(after[name] == before[name] for name in before)  # every other part byte-identical
        assert np.all(np.isfinite(denoised_pass(out / path.name)))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    run = run_cli("denoise", tmp_path / "in", "--out-dir", out, "--weights", weights, "--quiet")
    assert run.returncode == 0 and "done 0 / skipped 3 / failed 0" in run.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    run = run_cli("denoise", tmp_path / "in", "--out-dir", out, "--weights", weights, "--quiet", "--overwrite")
    assert "done 3 / skipped 0" in run.stdout


def test_shards_split_the_job_and_suffix_outputs_are_not_inputs(tmp_path, weights):
    write_sequence(tmp_path, [1, 2, 3, 4, 5])
    for i in range(2):
        run = run_cli("denoise", tmp_path / "shot_####.exr", "--shard", f"{i}/2", "--weights", weights, "-q")
        assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.glob("*_denoised.exr")) == [f"shot_{n:04d}_denoised.exr" for n in range(1, 6)]
    # The folder now holds inputs and outputs; a re-run must not denoise the outputs again.
    run = run_cli("denoise", tmp_path, "--weights", weights, "-q")
    assert "done 0 / skipped 5 / failed 0 of 5" in run.stdout
    assert not list(tmp_path.glob("*_denoised_denoised.exr"))


def test_gap_in_pattern_fails_before_work_unless_keep_going(tmp_path, weights):
    write_sequence(tmp_path / "in", [1, 2, 4])
    out = tmp_path / "out"
    pattern = tmp_path / "in" / "shot_####.exr"
    run = run_cli("denoise", pattern, "--out-dir", out, "--weights", weights)
    assert run.returncode == 2 and "missing from the sequence: 3" in run.stderr and "--keep-going" in run.stderr
    assert not out.exists() or not list(out.iterdir())
    run = run_cli("denoise", pattern, "--out-dir", out, "--weights", weights, "--keep-going")
    assert run.returncode == 1 and "done 3 / skipped 0 / failed 1" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["shot_0001.exr", "shot_0002.exr", "shot_0004.exr"]


def test_tiled_output_equals_untiled(tmp_path, weights):
    # 75 x 133: not a multiple of the U-Net's 16-pixel grid, and the data window starts at (5, 9).
    src = tmp_path / "odd.exr"
    write_blender_like(src, h=75, w=133, data_window=(5, 9))
    results = {}
    for tile in (0, 32):
        out = tmp_path / f"tile{tile}.exr"
        run = run_cli("denoise", src, "-o", out, "--tile", tile, "--weights", weights)
        assert run.returncode == 0, run.stderr
        results[tile] = denoised_pass(out)
    assert results[0].shape == (75, 133, 3)
    np.testing.assert_allclose(results[32], results[0], rtol=1e-5, atol=1e-6)


def test_killed_batch_resumes_to_the_uninterrupted_result(tmp_path, weights):
    frames = range(1, 9)
    # Small tiles make each frame take a while, so the kill lands mid-batch.
    write_sequence(tmp_path / "in", frames, h=96, w=96)
    args = [tmp_path / "in" / "shot_####.exr", "--weights", weights, "--tile", "16", "-q"]
    reference = run_cli("denoise", *args, "--out-dir", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "out"
    env = dict(os.environ, MCDENOISE_THREADS="1")
    cmd = [sys.executable, "-m", "mcdenoise", "denoise", *map(str, args), "--out-dir", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.name.startswith("shot_") for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "batch ended before its first output appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in out.glob("shot_*.exr"))
    assert 1 <= len(finished) < len(frames), finished
    for name in finished:  # whatever exists after the kill is complete, never half a file
        open_exr(out / name)
        assert output_is_complete(out / name, "Denoised")
    (out / ".shot_0008.stale.tmp.exr").write_bytes(b"partial write of a killed run")

    run = run_cli("denoise", *args, "--out-dir", out)
    assert run.returncode == 0, run.stderr
    assert f"skipped {len(finished)} /" in run.stdout
    assert leftovers(out) == []
    for n in frames:
        name = f"shot_{n:04d}.exr"
        np.testing.assert_array_equal(denoised_pass(out / name), denoised_pass(tmp_path / "ref" / name))


def test_memory_budget_shrinks_tiles_of_8k_frames_only():
    from mcdenoise.inference.runtime import tile_for_budget
    from mcdenoise.inference.encode import FrameInputs
    from mcdenoise.models.loader import LoadedModel
    from mcdenoise.models import build_model

    loaded = LoadedModel(build_model("unet"), "unet", {}, "color+albedo+normal")  # balanced widths

    def prepared(h, w):  # np.empty: the budget reads sizes, the pages are never touched
        half, full = np.empty((h, w, 3), np.float16), np.empty((h, w, 3), np.float32)
        return FrameInputs(half, half, full)

    eight_k, hd = prepared(4320, 7680), prepared(1080, 1920)
    two_gib = 2 << 30
    assert 256 <= tile_for_budget(loaded, eight_k, 1024, two_gib, 2) < 1024
    assert tile_for_budget(loaded, eight_k, 1024, 4 * two_gib, 2) == 1024
    # A float32 result (float32 colour) takes 100 MB more of an 8K frame's budget than a half one.
    assert tile_for_budget(loaded, eight_k, 1024, two_gib, 4) < tile_for_budget(loaded, eight_k, 1024, two_gib, 2)
    assert tile_for_budget(loaded, eight_k, 1024, None, 2) == 1024
    assert tile_for_budget(loaded, hd, 1024, two_gib, 2) == 1024
    assert tile_for_budget(loaded, prepared(75, 133), None, two_gib) is None  # small frames stay whole
    # The CLI's default (whole frame): 1080p is cut in two within 2 GiB, whole with room to spare.
    assert 1024 <= tile_for_budget(loaded, hd, None, two_gib, 2) < 1920
    assert tile_for_budget(loaded, hd, None, 4 * two_gib, 2) is None
    # Off the CPU the budget is the device's own free memory.
    on_meta = LoadedModel(build_model("unet").to("meta"), "unet", {}, "color+albedo+normal")
    assert tile_for_budget(on_meta, eight_k, None, two_gib, 2) == "auto"
    assert tile_for_budget(on_meta, eight_k, 512, two_gib, 2) == 512
