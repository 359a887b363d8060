"""Denoise a batch on a Ray cluster: ``mcdenoise denoise ... --ray ADDRESS``.

Studios that run Python pipelines on Ray already have the scheduler, the machines and the
shared storage; this module only hands them frames. Each worker slot of the cluster (a GPU
where the cluster has GPUs, a CPU otherwise) gets one actor, which loads the model once and
runs :func:`mcdenoise.batch.runner.run_batch` (the very function a local run calls) on the
chunks of jobs the driver sends it: one frame per chunk, or on the temporal path one contiguous
block with its warm-up frames. Jobs travel as paths; frames are read from and written to shared
storage by the workers, so no pixel goes through the driver.

A worker lost mid-chunk (its machine gone, its process killed) leaves no half-written output
(:mod:`mcdenoise.io.atomic`); its chunk goes to another worker, whose triage skips what the
lost one finished and removes the temps it left on this host. The driver prints the same
per-frame lines, summary and exit status as a local run.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mcdenoise.batch.plan import Job
from mcdenoise.batch.runner import DescribeFn, LogFn, Summary, run_batch, triage
from mcdenoise.batch.sequence import FrameSource
from mcdenoise.errors import McDenoiseError
from mcdenoise.io.atomic import host_name, pid_alive, remove_stale_temps
from mcdenoise.io.passes import PassNames

# How often a chunk is sent again after losing its worker before its frames count as failed.
RETRIES = 3
# Chunks queued per actor: one running, one waiting, so a worker never idles between frames.
QUEUED_PER_ACTOR = 2
# How long a replacement worker may take to start when every worker was lost.
START_SECONDS = 120.0
# How long the driver waits, after the last frame, for a lost worker's process on its own host
# to exit before removing the temps it left (Ray declares a worker lost before its process dies).
EXIT_SECONDS = 30.0


@dataclass(frozen=True)
class ModelSpec:
    """What each worker loads: the CLI's ``--weights``/``--quality``/``--device`` and runtime
    options, loaded on the worker by the functions a local run uses."""

    weights: Path | None = None
    quality: str | None = None
    device: str = "auto"
    precision: str = "auto"
    max_memory: int = 0
    max_tile: int | None = None
    compile: bool = False

    def load(self):
        from mcdenoise.inference.runtime import Runtime
        from mcdenoise.models.tiers import load_for_cli

        loaded = load_for_cli(self.weights, self.quality, device=self.device)
        runtime = Runtime.for_model(loaded.model, precision=self.precision, max_memory=self.max_memory,
                                    max_tile=self.max_tile, compile=self.compile)
        return loaded, runtime


@dataclass(frozen=True)
class BatchSettings:
    """The rest of what ``run_batch`` takes, the same for every chunk."""

    names: PassNames = field(default_factory=PassNames)
    pass_name: str = "Denoised"
    require_aux: bool = False
    overwrite: bool = False
    temporal_window: int | None = None  # None: frame by frame; else the temporal path's history
    temporal_weights: Path | None = None  # the learned blend's file (--temporal-weights); None: the default blend


def _import_ray():
    try:
        import ray
    except ImportError:
        raise McDenoiseError("Ray is not installed: pip install 'mcdenoise[ray]'") from None
    return ray


def connect(address: str) -> None:
    """Join the cluster at ``address`` (``auto``: the one this machine belongs to; ``local``: a
    new one on this machine, with its CPUs and GPUs)."""
    ray = _import_ray()
    options = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == "local":
            ray.init(include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception when a node it starts times out
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        if address == "local":
            raise McDenoiseError(f"cannot start a Ray cluster on this machine ({first})") from exc
        raise McDenoiseError(f"{address}: cannot join the Ray cluster ({first}); give the head's address "
                             "(host:6379), 'auto' on a machine of the cluster, or 'local'") from exc


def worker_slots(device: str) -> tuple[int, dict]:
    """How many workers the cluster holds and what each asks Ray for: a GPU each where the
    cluster has GPUs (unless ``device`` is cpu), else a CPU each."""
    ray = _import_ray()
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return gpus, {"num_gpus": 1, "num_cpus": 1}
    return max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}


class _Worker:
    """One worker slot: the model loaded once, then chunks of jobs through ``run_batch``."""

    def start(self, spec: ModelSpec, settings: BatchSettings, describe: DescribeFn) -> tuple[str, int, str]:
        """Load the model; where this worker runs: its host as temp names spell it, its pid, its device."""
        self.loaded, self.runtime = spec.load()
        self.settings, self.describe = settings, describe
        return host_name(), os.getpid(), str(self.runtime.device)

    def run(self, chunk: list[Job], keep_going: bool) -> dict:
        """Denoise ``chunk``; what happened, by position in the chunk, and the log lines."""
        logs: list[tuple[str, str]] = []

        def log(level: str, message) -> None:
            logs.append((level, message if isinstance(message, str) else self.describe(message)))

        hook = None
        s = self.settings
        if s.temporal_window is not None:
            from mcdenoise.temporal.blendnet import choose_blend
            from mcdenoise.temporal.history import RunnerHook

            hook = RunnerHook(s.temporal_window, log, choose_blend(s.temporal_weights))
        summary = run_batch(self.loaded, chunk, self.runtime, s.names, s.pass_name, s.require_aux, keep_going=keep_going,
                            overwrite=s.overwrite, log=log, describe=self.describe, temporal=hook)
        return {"done": [chunk.index(j) for j in summary.done], "skipped": [chunk.index(j) for j in summary.skipped],
                "failed": [(chunk.index(j), m) for j, m in summary.failed], "warnings": summary.warnings,
                "model_seconds": summary.model_seconds, "fatal": summary.fatal, "logs": logs}


def one_frame_each(todo: list[Job], workers: int) -> list[list[Job]]:
    return [[job] for job in todo]


def run_batch_ray(
    jobs: list[Job],
    spec: ModelSpec,
    settings: BatchSettings,
    address: str,
    *,
    workers: int | None = None,
    keep_going: bool = False,
    chunks_of: Callable[[list[Job], int], list[list[Job]]] = one_frame_each,
    log: LogFn | None = None,
    progress: Callable[[int], None] | None = None,
    describe: DescribeFn = str,
    announce: Callable[[str], None] | None = None,
) -> Summary:
    """``run_batch`` on the Ray cluster at ``address`` (see :func:`connect`), with its summary.

    The driver triages as a local run does (finished outputs skipped, missing frames stop the
    job unless ``keep_going``), joins the cluster only if anything is left, splits that with
    ``chunks_of(todo, workers)`` and keeps every worker busy. Without ``keep_going`` no chunk is sent after the first failed frame;
    chunks already running finish. ``workers``: how many actors (default: every slot).
    ``announce`` hears where each worker runs (the CLI's ``-v``).
    """
    ray = _import_ray()
    start = time.perf_counter()
    log = log or (lambda level, message: None)
    progress = progress or (lambda n: None)
    summary = Summary(total=sum(not job.warmup for job in jobs))
    todo = triage(jobs, settings.pass_name, settings.overwrite, keep_going, summary, log, progress, describe)
    if todo:
        connect(address)
        slots, resources = worker_slots(spec.device)
        count = min(workers or slots, len(todo))
        chunks = [c for c in chunks_of(todo, count) if any(not j.warmup for j in c)]
        actor_class = ray.remote(max_restarts=0, max_task_retries=0, **resources)(_Worker)
        _Driver(ray, actor_class, spec, settings, describe, summary, keep_going, log, progress,
                announce or (lambda text: None), chunks_of).run(chunks, count)
    summary.stopped_early = len(summary.done) + len(summary.skipped) + len(summary.failed) < summary.total
    summary.seconds = time.perf_counter() - start
    return summary


def _absolute(job: Job) -> Job:
    """Workers run elsewhere, in other folders: every path they get is absolute."""
    source = FrameSource(job.source.path.absolute(), job.source.frame, job.source.missing)
    return Job(source, job.output.absolute(), warmup=job.warmup)


class _Driver:
    """The driver's loop: actors started, chunks queued on them, results counted, chunks of a
    lost worker sent again."""

    def __init__(self, ray, actor_class, spec: ModelSpec, settings: BatchSettings, describe: DescribeFn,
                 summary: Summary, keep_going: bool, log: LogFn, progress: Callable[[int], None],
                 announce: Callable[[str], None], chunks_of: Callable[[list[Job], int], list[list[Job]]]):
        self.chunks_of = chunks_of
        self.ray, self.actor_class, self.spec, self.settings, self.describe = ray, actor_class, spec, settings, describe
        self.summary, self.keep_going, self.log, self.progress, self.announce = summary, keep_going, log, progress, announce
        self.lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
                     ray.exceptions.NodeDiedError)
        self.stop = False
        self.where: dict = {}  # actor -> (host, pid) it runs as
        self.lost_outputs: dict[tuple[str, int], set[Path]] = {}  # a lost worker -> outputs it may have been writing

    def _start(self, count: int, timeout: float | None = None) -> list:
        """``count`` actors with the model loaded; a model that cannot load raises its error here,
        once, before any frame is sent."""
        actors = [self.actor_class.remote() for _ in range(count)]
        started = {actor.start.remote(self.spec, self.settings, self.describe): actor for actor in actors}
        ready, _ = self.ray.wait(list(started), num_returns=len(started), timeout=timeout)
        live = []
        for ref in ready:
            try:
                host, pid, device = self.ray.get(ref)
            except self.lost:
                continue
            except self.ray.exceptions.RayTaskError as exc:  # the model cannot load: the same on every worker
                cause = exc.cause
                if isinstance(cause, McDenoiseError):
                    raise cause from None
                raise McDenoiseError(f"a Ray worker could not load the model ({type(cause).__name__}: {cause})") from None
            live.append(started[ref])
            self.where[started[ref]] = (host, pid)
            self.announce(f"ray: worker {len(live)} ready on {host} pid {pid} on {device}")
        return live

    def run(self, chunks: list[list[Job]], count: int) -> None:
        try:
            self._run(chunks, count)
        finally:
            self._remove_lost_temps()

    def _run(self, chunks: list[list[Job]], count: int) -> None:
        actors = self._start(count)
        queue = deque(enumerate(chunks))
        attempts: Counter = Counter()
        retried: set[int] = set()
        inflight: dict = {}  # result ref -> (actor, chunk index)
        load: Counter = Counter()
        sent = [[_absolute(job) for job in chunk] for chunk in chunks]
        while (queue and not self.stop) or inflight:
            if not actors and not inflight:
                actors = self._start(1, timeout=START_SECONDS)
                if not actors:
                    self._fail_all(queue, "no Ray worker could be started to denoise it")
                    return
            for actor in actors:
                while queue and not self.stop and load[actor] < QUEUED_PER_ACTOR:
                    index, _ = queue.popleft()
                    inflight[actor.run.remote(sent[index], self.keep_going)] = (actor, index)
                    load[actor] += 1
            [ref], _ = self.ray.wait(list(inflight), num_returns=1)
            actor, index = inflight.pop(ref)
            load[actor] -= 1
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:  # run_batch counts every frame's error: a bug
                self._fail_chunk(chunks[index], f"unexpected {type(exc.cause).__name__} on a Ray worker: {exc.cause}")
                continue
            except self.lost as exc:
                self.lost_outputs.setdefault(self.where[actor], set()).update(j.output for j in sent[index])
                if actor in actors:
                    actors.remove(actor)
                    self.log("warning", f"ray: lost a worker ({type(exc).__name__}); its frames go to another worker")
                attempts[index] += 1
                if attempts[index] > RETRIES:
                    self._fail_chunk(chunks[index], f"lost {attempts[index]} Ray workers while denoising it")
                else:
                    # Planned again: on the temporal path the warm-up goes before the first frame
                    # the lost worker did not finish.
                    chunks[index] = [j for c in self.chunks_of([j for j in chunks[index] if not j.warmup], 1) for j in c]
                    sent[index] = [_absolute(job) for job in chunks[index]]
                    queue.appendleft((index, chunks[index]))
                    retried.add(index)
                continue
            self._count(chunks[index], result, retried=index in retried)

    def _remove_lost_temps(self) -> None:
        """Remove the temps lost workers of this host left. The retry's triage removes only
        stale ones, and Ray reports a worker lost (its node's raylet killed) while its process
        may still be writing: the temps it leaves when it does die are removed here, once it
        has exited. Those of other hosts are removed by a later run on their host."""
        deadline = time.monotonic() + EXIT_SECONDS
        for (host, pid), outputs in self.lost_outputs.items():
            if host != host_name():
                continue
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            for output in outputs:
                remove_stale_temps(output)

    def _count(self, chunk: list[Job], result: dict, retried: bool) -> None:
        for level, message in result["logs"]:
            self.log(level, message)
        s = self.summary
        # A resent chunk finds the outputs its lost worker finished: this run wrote them.
        (s.done if retried else s.skipped).extend(chunk[i] for i in result["skipped"])
        s.done.extend(chunk[i] for i in result["done"])
        s.failed.extend((chunk[i], message) for i, message in result["failed"])
        s.warnings += result["warnings"]
        s.model_seconds += result["model_seconds"]
        self.progress(len(result["done"]) + len(result["skipped"]) + len(result["failed"]))
        if result["fatal"] or (result["failed"] and not self.keep_going):
            s.fatal = s.fatal or result["fatal"]
            self.stop = True

    def _fail_chunk(self, chunk: list[Job], why: str) -> None:
        for job in (j for j in chunk if not j.warmup):
            message = self.describe(McDenoiseError(f"{job.source.path}: {why}"))
            self.summary.failed.append((job, message))
            self.log("error", message)
            self.progress(1)
        if not self.keep_going:
            self.stop = True

    def _fail_all(self, queue: deque, why: str) -> None:
        while queue:
            self._fail_chunk(queue.popleft()[1], why)


def _render_scenes(root: str, index: int, options: dict) -> dict:
    """One scene through :func:`mcdenoise.dataset.render.render_dataset`, the function a local
    ``render-dataset`` runs: its lock, resume and atomic folder rules apply unchanged."""
    from mcdenoise.dataset.render import render_dataset

    return render_dataset(root, 1, start=index, progress=False, **options)


def render_dataset_ray(address: str, root: Path, indices: list[int], options: dict, *,
                       progress: Callable[[int], None] | None = None) -> dict:
    """``render-dataset --ray``: each scene index is a Ray task (retried by Ray on another worker
    if its worker is lost), rendering into ``root`` on shared storage; returns the summed
    statistics a local run returns. ``options``: the rest of ``render_dataset``'s arguments."""
    ray = _import_ray()
    progress = progress or (lambda n: None)
    start = time.perf_counter()
    totals = {"rendered": 0, "skipped": 0, "busy": 0, "selected": len(indices), "seconds": 0.0, "mean_scene_seconds": 0.0}
    if not indices:
        return totals
    connect(address)
    threads = int(options.get("threads") or 0)
    gpu = options.get("device", "cpu") != "cpu"
    task = ray.remote(num_cpus=max(1, threads), num_gpus=1 if gpu else 0, max_retries=RETRIES)(_render_scenes)
    pending = [task.remote(str(root.absolute()), index, options) for index in indices]
    scene_seconds = 0.0
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            stats = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            for ref in pending:
                ray.cancel(ref)
            if isinstance(exc.cause, McDenoiseError):
                raise exc.cause from None
            raise McDenoiseError(f"render-dataset on Ray: {type(exc.cause).__name__}: {exc.cause}") from None
        for key in ("rendered", "skipped", "busy"):
            totals[key] += stats[key]
        scene_seconds += stats["mean_scene_seconds"] * stats["rendered"]
        progress(1)
    totals["seconds"] = time.perf_counter() - start
    totals["mean_scene_seconds"] = scene_seconds / totals["rendered"] if totals["rendered"] else 0.0
    return totals
