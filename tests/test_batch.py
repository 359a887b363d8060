"""``mcdenoise denoise`` on sequences as a farm runs it: patterns, sharding, and resuming after a
kill. (Tiled output equal to untiled output, and the tiles the CLI's memory budget picks, are
tested where they are decided, in ``test_speed.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, run_cli, write_sequence
from exr_fixtures import channel_dump
from mcdenoise.batch.plan import output_is_complete
from mcdenoise.io.atomic import temp_path
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


def test_frame_syntax_accepted_and_refused(tmp_path):
    """The edges a farm script can hit, pinned (and why ``fileseq`` is not used: it reads
    several of these differently). Negative frames and spaces read; reversed, fractional or
    other tools' step forms fail rather than pick frames; one digit per ``#``."""
    assert parse_frames("-3--1, 2") == [-3, -2, -1, 2]
    assert parse_frames("5,1,1-2") == [1, 2, 5]
    for bad in ("10-1", "1-10y3", "1-10:3", "1.5", "1-10x0", ""):
        with pytest.raises(ValueError):
            parse_frames(bad)
    assert parse_pattern("shot_#.exr").path(7).name == "shot_7.exr"
    assert parse_pattern("shot_####.exr").path(-1).name == "shot_-001.exr"
    assert parse_pattern("shot_####.exr").path(12345).name == "shot_12345.exr"
    assert parse_pattern("shot_@@@@.exr") is None
    for n in (9999, 10000):  # numbers outgrowing the padding still belong to the sequence
        (tmp_path / f"shot_{n:04d}.exr").touch()
    assert [s.frame for s in expand_inputs([str(tmp_path / "shot_####.exr")])] == [9999, 10000]


def test_sequence_to_out_dir_keeps_every_pass_and_resumes(tmp_path, weights):
    src = write_sequence(tmp_path / "in", [1001, 1002, 1003])
    out = tmp_path / "out"
    run = run_cli("denoise", tmp_path / "in" / "shot_####.exr", "--frames", "1001-1003", "--out", out, "--weights", weights)
    assert run.returncode == 0, run.stderr
    assert "done 3 / skipped 0 / failed 0" in run.stdout
    for path in src:
        before, after = channel_dump(path), channel_dump(out / path.name)
        assert set(after) == set(before) | {"ViewLayer.Denoised"}
        assert all(after[name] == before[name] for name in before)  # every other part byte-identical
        assert np.all(np.isfinite(denoised_pass(out / path.name)))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    run = run_cli("denoise", tmp_path / "in", "--out", out, "--weights", weights, "--quiet")
    assert run.returncode == 0 and "done 0 / skipped 3 / failed 0" in run.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    run = run_cli("denoise", tmp_path / "in", "--out", out, "--weights", weights, "--quiet", "--overwrite")
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
    run = run_cli("denoise", pattern, "--out", out, "--weights", weights)
    assert run.returncode == 2 and "missing from the sequence: 3" in run.stderr and "--keep-going" in run.stderr
    assert not out.exists() or not list(out.iterdir())
    run = run_cli("denoise", pattern, "--out", out, "--weights", weights, "--keep-going")
    assert run.returncode == 1 and "done 3 / skipped 0 / failed 1" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["shot_0001.exr", "shot_0002.exr", "shot_0004.exr"]


def test_killed_batch_resumes_to_the_uninterrupted_result(tmp_path, weights):
    frames = range(1, 9)
    # Small tiles make each frame take a while, so the kill lands mid-batch.
    write_sequence(tmp_path / "in", frames, h=192, w=192)
    args = [tmp_path / "in" / "shot_####.exr", "--weights", weights, "--tile", "64", "-q"]
    reference = run_cli("denoise", *args, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "out"
    env = dict(os.environ, MCDENOISE_THREADS="1")
    cmd = [sys.executable, "-m", "mcdenoise", "denoise", *map(str, args), "--out", str(out)]
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
    temp_path(out / "shot_0008.exr", pid=proc.pid).write_bytes(b"partial write of a killed run")

    run = run_cli("denoise", *args, "--out", out)
    assert run.returncode == 0, run.stderr
    assert f"skipped {len(finished)} /" in run.stdout
    assert leftovers(out) == []
    for n in frames:
        name = f"shot_{n:04d}.exr"
        np.testing.assert_array_equal(denoised_pass(out / name), denoised_pass(tmp_path / "ref" / name))


def test_a_pattern_of_hashes_alone_finds_its_frames_on_disk(tmp_path):
    """Blender's default output name is the frame number alone (``######.exr``): the frames on
    disk are found without ``--frames``, as for ``shot_####.exr``."""
    write_sequence(tmp_path, [1, 3], h=8, w=8, name="{:06d}.exr")
    found = expand_inputs([str(tmp_path / "######.exr")])
    assert [(s.path.name, s.frame, s.missing) for s in found] == [("000001.exr", 1, False), ("000002.exr", 2, True),
                                                                 ("000003.exr", 3, False)]


def test_the_pixel_budget_counts_the_largest_part_times_the_views(tmp_path):
    """What the batch runner charges a frame in flight, read by the one header parser: the largest
    data window, once per view of a stereo file; 0 (left to the reader to report) for what is no
    readable EXR, or no regular file."""
    import OpenEXR

    from exr_fixtures import write_blender_like
    from mcdenoise.batch.runner import _frame_pixels

    mono = tmp_path / "mono.exr"
    write_blender_like(mono, h=24, w=40, data_window=(5, 3))
    assert _frame_pixels(mono) == 24 * 40
    parts = []
    for view in ("left", "right"):  # Blender 5.0's layout: a part per pass and view, with a view attribute
        for part in OpenEXR.File(str(mono), separate_channels=True).parts:
            head = {**part.header, "view": view, "name": f"{part.name()}-{view}"}
            parts.append(OpenEXR.Part(head, {n: OpenEXR.Channel(c.pixels) for n, c in part.channels.items()}, head["name"]))
    stereo = tmp_path / "stereo.exr"
    OpenEXR.File(parts).write(str(stereo))
    assert _frame_pixels(stereo) == 2 * 24 * 40
    (tmp_path / "notes.exr").write_text("not an image")
    cut = tmp_path / "cut.exr"
    cut.write_bytes(mono.read_bytes()[:300])
    os.mkfifo(tmp_path / "pipe.exr")
    assert [_frame_pixels(tmp_path / n) for n in ("notes.exr", "cut.exr", "pipe.exr", "missing.exr")] == [0, 0, 0, 0]
