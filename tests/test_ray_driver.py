"""The ``--ray`` driver's bookkeeping without a cluster: which chunks go where, what a lost
worker's chunk becomes, what the summary counts (mcdenoise.batch.ray_backend).

Ray itself is replaced by an in-process stand-in (:class:`FakeRay`): actors are the module's own
``_Worker`` objects running the real ``run_batch`` on real files, called at once when a task is
sent; a worker can be made to die on its n-th chunk, before writing (leaving a half-written
temp file, as a killed process does) or after writing (the result never reaches the driver).
tests/test_ray_batch.py runs the same code on a real Ray cluster.
"""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, write_sequence
from mcdenoise.batch import ray_backend
from mcdenoise.batch.plan import output_is_complete, plan_jobs
from mcdenoise.batch.runner import run_batch
from mcdenoise.batch.sequence import expand_inputs
from mcdenoise.io.atomic import temp_path
from mcdenoise.models.loader import load_model

FRAMES = range(1, 13)


class Lost(Exception):
    """Stands for Ray's ActorDiedError and the other errors of a lost worker."""


class TaskError(Exception):
    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


class FakeRef:
    def __init__(self, call):
        try:
            self.value, self.error = call(), None
        except Lost as exc:
            self.value, self.error = None, exc
        except Exception as exc:  # what Ray wraps as RayTaskError
            self.value, self.error = None, TaskError(exc)


class FakeActor:
    def __init__(self, ray: "FakeRay"):
        self.worker, self.ray, self.dead, self.runs = ray_backend._Worker(), ray, False, 0
        self.index = len(ray.actors)
        ray.actors.append(self)
        self.start = types.SimpleNamespace(remote=lambda *a: FakeRef(lambda: self._call(self.worker.start, *a)))
        self.run = types.SimpleNamespace(remote=lambda *a: FakeRef(lambda: self._run(*a)))

    def _call(self, method, *args):
        if self.dead:
            raise Lost("actor died")
        return method(*args)

    def _run(self, chunk, keep_going):
        self.runs += 1
        if (self.index, self.runs) == self.ray.die_at:
            self.dead = True
            if self.ray.mode == "before_write":  # killed mid-frame: its temp file stays behind
                dead = subprocess.Popen([sys.executable, "-c", "pass"])
                dead.wait()
                temp_path(chunk[0].output, pid=dead.pid).write_bytes(b"half a frame")
            else:  # killed after writing, before its result got back
                self.worker.run(chunk, keep_going)
            raise Lost("actor died")
        return self._call(self.worker.run, chunk, keep_going)


class FakeRay:
    def __init__(self, die_at=None, mode="before_write"):
        self.die_at, self.mode, self.actors = die_at, mode, []
        self.exceptions = types.SimpleNamespace(RayActorError=Lost, WorkerCrashedError=Lost, ObjectLostError=Lost,
                                                NodeDiedError=Lost, RayTaskError=TaskError)

    def init(self, **kwargs):
        pass

    def cluster_resources(self):
        return {"CPU": 2.0}

    def remote(self, **options):
        def wrap(target):
            if isinstance(target, type):  # an actor class
                return types.SimpleNamespace(remote=lambda: FakeActor(self))
            return types.SimpleNamespace(remote=lambda *a: FakeRef(lambda: target(*a)))  # a task
        return wrap

    def cancel(self, ref):
        pass

    def wait(self, refs, num_returns=1, timeout=None):
        return list(refs[:num_returns]), list(refs[num_returns:])

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture(scope="module")
def local(tmp_path_factory, weights):
    """The sequence and one local run's outputs."""
    root = tmp_path_factory.mktemp("seq")
    write_sequence(root / "in", FRAMES)
    jobs = plan_jobs(expand_inputs([str(root / "in" / "shot_####.exr")]), out_dir=root / "local", suffix="")
    summary = run_batch(load_model(weights), jobs, keep_going=True)
    assert len(summary.done) == 12
    return root


def _run_on(fake: FakeRay, local, out, weights, monkeypatch, keep_going=True):
    monkeypatch.setattr(ray_backend, "_import_ray", lambda: fake)
    logs = []
    jobs = plan_jobs(expand_inputs([str(local / "in" / "shot_####.exr")]), out_dir=out, suffix="")
    summary = ray_backend.run_batch_ray(jobs, ray_backend.ModelSpec(weights, device="cpu"), ray_backend.BatchSettings(),
                                        "local", keep_going=keep_going, log=lambda level, m: logs.append((level, m)))
    return summary, logs


@pytest.mark.parametrize("mode", ["before_write", "after_write"])
def test_a_worker_lost_mid_chunk_loses_no_frame_and_counts_each_once(local, weights, tmp_path, monkeypatch, mode):
    fake = FakeRay(die_at=(0, 2), mode=mode)  # the first worker dies on its second frame
    out = tmp_path / "out"
    summary, logs = _run_on(fake, local, out, weights, monkeypatch)
    assert [a.dead for a in fake.actors] == [True, False]
    assert any("lost a worker" in m for level, m in logs if level == "warning")
    frames = sorted(job.source.frame for job in summary.done)
    assert frames == list(FRAMES) and not summary.skipped and not summary.failed and not summary.stopped_early
    assert leftovers(out) == []  # the retry removed the dead writer's temp (this host, process gone)
    for n in FRAMES:
        name = f"shot_{n:04d}.exr"
        assert output_is_complete(out / name, "Denoised")
        np.testing.assert_array_equal(denoised_pass(out / name), denoised_pass(local / "local" / name))
    info = [m for level, m in logs if level == "info"]
    assert len(info) == len(set(info))  # no frame reported twice

    again, _ = _run_on(FakeRay(), local, out, weights, monkeypatch)
    assert len(again.skipped) == 12 and not again.done


def test_without_keep_going_no_chunk_is_sent_after_a_failed_frame(local, weights, tmp_path, monkeypatch):
    broken = tmp_path / "in"
    write_sequence(broken, FRAMES)
    (broken / "shot_0002.exr").write_bytes(b"not an exr")
    fake = FakeRay()
    monkeypatch.setattr(ray_backend, "_import_ray", lambda: fake)
    jobs = plan_jobs(expand_inputs([str(broken / "shot_####.exr")]), out_dir=tmp_path / "out", suffix="")
    summary = ray_backend.run_batch_ray(jobs, ray_backend.ModelSpec(weights, device="cpu"), ray_backend.BatchSettings(),
                                        "local", keep_going=False)
    assert [job.source.frame for job, _ in summary.failed] == [2]
    assert summary.stopped_early and len(summary.done) < 11  # what was already sent finished; nothing after


def test_every_worker_lost_and_none_restarting_fails_the_rest(local, weights, tmp_path, monkeypatch):
    """With no worker left and none able to start, the remaining frames fail (no hang)."""
    fake = FakeRay(die_at=(0, 1))
    monkeypatch.setattr(ray_backend, "START_SECONDS", 0.0)
    original = FakeActor.__init__

    def dead_on_arrival(self, ray):
        original(self, ray)
        self.dead = self.index > 0  # the replacement cannot start
    monkeypatch.setattr(FakeActor, "__init__", dead_on_arrival)
    monkeypatch.setattr(ray_backend, "_import_ray", lambda: fake)
    jobs = plan_jobs(expand_inputs([str(local / "in" / "shot_####.exr")]), out_dir=tmp_path / "out", suffix="")
    summary = ray_backend.run_batch_ray(jobs, ray_backend.ModelSpec(weights, device="cpu"), ray_backend.BatchSettings(),
                                        "local", workers=1, keep_going=True)
    assert len(summary.done) + len(summary.failed) == 12 and summary.failed
    assert all("no Ray worker could be started" in message for _, message in summary.failed)


def test_render_dataset_scenes_as_tasks_sum_to_the_local_summary(tmp_path, monkeypatch):
    """``render-dataset --ray``: each index a task running the local renderer (real Cycles, 32 px);
    the totals are the local run's, and a second run finds both scenes done."""
    pytest.importorskip("bpy")
    from mcdenoise.dataset import layout

    monkeypatch.setattr(ray_backend, "_import_ray", lambda: FakeRay())
    options = {"seed_offset": 0, "res": 32, "spps": [1], "ref_spp": 4, "device": "cpu", "threads": 1}
    stats = ray_backend.render_dataset_ray("local", tmp_path / "ds", [0, 1], options)
    assert (stats["rendered"], stats["skipped"], stats["selected"]) == (2, 0, 2) and stats["mean_scene_seconds"] > 0
    assert [e.index for e in layout.list_scenes(tmp_path / "ds")] == [0, 1]
    again = ray_backend.render_dataset_ray("local", tmp_path / "ds", [0, 1], options)
    assert (again["rendered"], again["skipped"]) == (0, 2)
