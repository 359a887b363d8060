"""Two jobs on one sequence (issue 18, item 9): a misconfigured farm starts the same unsharded
job twice, or a retry starts while the first attempt still writes. Neither may delete the
other's in-flight temp file; both end with every output complete and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, run_cli, write_sequence
from mcdenoise.batch.plan import output_is_complete
from mcdenoise.io.atomic import temp_path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_keeps_the_temps_of_a_live_writer_and_removes_a_dead_ones(tmp_path, weights):
    """The sweep at the start of a frame removes only what a gone process of this host left:
    the temp of a process still running (this test's, standing for the other job) stays."""
    write_sequence(tmp_path / "in", [1, 2])
    out = tmp_path / "out"
    out.mkdir()
    live = temp_path(out / "shot_0001.exr", pid=os.getpid())
    dead = temp_path(out / "shot_0001.exr", pid=_dead_pid())
    for p in (live, dead):
        p.write_bytes(b"half a frame")
    run = run_cli("denoise", tmp_path / "in" / "shot_####.exr", "--out", out, "--weights", weights, "--device", "cpu", "-q")
    assert run.returncode == 0 and "done 2 / skipped 0" in run.stdout, run.stderr
    assert live.exists() and not dead.exists()
    assert leftovers(out) == [live.name]


def test_two_unsharded_runs_at_once_both_finish_every_frame(tmp_path, weights):
    """Both jobs run the whole sequence at the same time: each frame is written whole by one
    or the other (or both, the same bytes), both exit 0, and no temp is left."""
    frames = range(1, 7)
    write_sequence(tmp_path / "in", frames)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mcdenoise", "denoise", str(tmp_path / "in" / "shot_####.exr"), "--out", str(out),
           "--weights", str(weights), "--device", "cpu", "-q"]
    env = dict(os.environ, MCDENOISE_THREADS="1")
    out.mkdir()
    jobs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [job.communicate(timeout=300) for job in jobs]
    for job, (stdout, stderr) in zip(jobs, results):
        assert job.returncode == 0 and "failed 0" in stdout, stderr
    assert leftovers(out) == []
    alone = tmp_path / "alone"
    run = run_cli("denoise", tmp_path / "in" / "shot_####.exr", "--out", alone, "--weights", weights, "--device", "cpu", "-q")
    assert run.returncode == 0, run.stderr
    for n in frames:
        name = f"shot_{n:04d}.exr"
        assert output_is_complete(out / name, "Denoised")
        np.testing.assert_array_equal(denoised_pass(out / name), denoised_pass(alone / name))
