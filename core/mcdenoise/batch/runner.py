"""Denoise a list of frames unattended: plan outputs, skip finished ones, overlap I/O with the
model, and count what happened.

A farm job must survive a kill at any moment and a bad frame among thousands: finished outputs
are skipped (:mod:`mcdenoise.batch.plan`). Three stages run at once (:class:`_Pipeline`): a
reader thread reads and checks the next frame, the calling thread runs the model, a writer
thread writes the previous result back. Frames in flight are bounded by a pixel budget, so
1080p sequences overlap freely while an 8K frame is alone in memory.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcdenoise.batch.plan import Job, output_is_complete
from mcdenoise.errors import InputFileError, McDenoiseError, WeightsError
from mcdenoise.inference.frames import PreparedFrame, prepare_views, run_model
from mcdenoise.inference.allocator import freed_memory_returned, keeping_freed_memory, return_freed_memory
from mcdenoise.inference.runtime import Runtime
from mcdenoise.io.atomic import remove_stale_temps
from mcdenoise.io import header
from mcdenoise.io.exr import Frame
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_with_passes
from mcdenoise.models.loader import LoadedModel

# Pixels of frames read but not yet written. Two 4K frames fit; an 8K frame runs alone.
PIPELINE_PIXELS = 2 * 3840 * 2160
# (level: "info" | "warning" | "error", message); a warning with a fix comes as an error for the front end to word
LogFn = Callable[[str, "str | McDenoiseError"], None]
DescribeFn = Callable[[McDenoiseError], str]  # a front end's wording of an error (fix in its own terms)
# A frame between read and write (low-memory read: half colour and albedo, float normal, result).
READ_BYTES_PER_PIXEL = 24


@dataclass
class Summary:
    total: int = 0
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    warnings: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    stopped_early: bool = False
    fatal: bool = False  # stopped by an error that would fail every frame (the weights), keep_going or not

    def line(self) -> str:
        return f"done {len(self.done)} / skipped {len(self.skipped)} / failed {len(self.failed)}"


def run_batch(
    loaded: LoadedModel,
    jobs: list[Job],
    runtime: Runtime | None = None,
    names: PassNames = PassNames(),
    pass_name: str = "Denoised",
    require_aux: bool = False,
    keep_going: bool = False,
    overwrite: bool = False,
    log: LogFn | None = None,
    progress: Callable[[int], None] | None = None,
    on_denoised: Callable[[Job, PreparedFrame, np.ndarray], None] | None = None,
    describe: DescribeFn = str,
    temporal: Callable[[Job, PreparedFrame, np.ndarray], np.ndarray] | None = None,
) -> Summary:
    """Denoise ``jobs``; per-frame problems are counted in the summary, not raised.

    Missing frames of a pattern stop the job before any work unless ``keep_going`` (then they
    count as failed): a farm should learn about a render gap at once, not after hours.
    Without ``keep_going`` the first failed frame stops the batch (a re-run resumes).
    ``progress(n)`` is called as frames finish in any way. ``runtime`` runs the model and
    picks each frame's tile (default: the model's device, a share of free memory).
    ``describe`` words each frame's error for ``log`` and ``Summary.failed``: the front end
    names the fix in its own terms (the CLI in flags, or as JSON for the add-on's worker).
    ``temporal``: the temporal path's per-frame call (:class:`mcdenoise.temporal.history.RunnerHook`),
    the single-frame result in and the result to write out, frames in job order; the Vector
    pass is then read too. Warm-up jobs (``Job.warmup``) are denoised for it only: never
    skipped, written or counted, and one that fails is a warning (the history restarts after it).
    """
    start = time.perf_counter()
    log = log or (lambda level, message: None)
    progress = progress or (lambda n: None)
    summary = Summary(total=sum(not job.warmup for job in jobs))
    todo = triage(jobs, pass_name, overwrite, keep_going, summary, log, progress, describe)
    runtime = runtime or Runtime.for_model(loaded.model)
    _Pipeline(loaded, runtime, names, pass_name, require_aux, keep_going, summary, log, progress, on_denoised,
              describe, temporal).run(todo)
    summary.stopped_early = len(summary.done) + len(summary.skipped) + len(summary.failed) < summary.total
    summary.seconds = time.perf_counter() - start
    return summary


def triage(jobs: list[Job], pass_name: str, overwrite: bool, keep_going: bool, summary: Summary, log: LogFn,
           progress: Callable[[int], None], describe: DescribeFn) -> list[Job]:
    """The jobs to run: finished outputs are skipped, and frames missing from a sequence stop
    the job (or, with ``keep_going``, count as failed)."""
    todo: list[Job] = []
    missing: list[Job] = []
    for job in jobs:
        if job.warmup:
            todo.append(job)
        elif not overwrite and output_is_complete(job.output, pass_name):
            summary.skipped.append(job)
            progress(1)
        elif job.source.missing:
            missing.append(job)
        else:
            remove_stale_temps(job.output)
            todo.append(job)
    if missing:
        listed = ", ".join(str(j.source.frame) for j in missing[:20]) + (" ..." if len(missing) > 20 else "")
        text = f"{len(missing)} frame(s) missing from the sequence: {listed} (e.g. {missing[0].source.path} does not exist)"
        if not keep_going:
            raise InputFileError(text, fix="frames_missing")
        for job in missing:
            gap = InputFileError(f"{job.source.path}: frame {job.source.frame} is missing from the sequence")
            summary.failed.append((job, describe(gap)))
        log("error", describe(InputFileError(text)))
        progress(len(missing))
    return todo


def _frame_pixels(path: Path) -> int:
    """Pixels of the largest part a frame's header declares, times its views (0 when it cannot be read). Only a
    regular file is peeked at: a FIFO or device named ``*.exr`` would block the open; the
    reader refuses it (:func:`mcdenoise.io.exr.check_regular_file`)."""
    if not path.is_file():  # False for anything but a regular file, links followed
        return 0  # the reader reports it, worded
    try:
        with open(path, "rb") as fh:
            layout = header.read_layout(fh)
        return layout.largest_part_pixels() * max(1, len(layout.views()))  # a stereo file's views are in flight together
    except (OSError, header.HeaderError, struct.error):
        return 0  # the reader reports what is wrong with the file


class _PixelBudget:
    """Blocks the reader while the frames in flight hold ``capacity`` pixels; a frame larger
    than the whole budget waits until it is alone."""

    def __init__(self, capacity: int, stop: threading.Event):
        self.capacity, self.used, self.stop = capacity, 0, stop
        self.cond = threading.Condition()

    def acquire(self, pixels: int) -> int:
        cost = min(pixels, self.capacity)
        with self.cond:
            while self.used + cost > self.capacity and not self.stop.is_set():
                self.cond.wait(0.1)
            self.used += cost
        return cost

    def release(self, cost: int) -> None:
        with self.cond:
            self.used -= cost
            self.cond.notify_all()


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


def _message(job: Job, exc: BaseException, describe: DescribeFn) -> str:
    if not isinstance(exc, McDenoiseError):  # a bug: worded all the same, so a JSON reader gets JSON
        exc = McDenoiseError(f"{job.source.path}: unexpected {type(exc).__name__}: {exc}")
    return describe(exc)


def _drop_planes(frame) -> None:
    """Let go of a frame's pixel arrays: the writer re-reads the file and needs none of them."""
    for name, value in vars(frame).items():
        if isinstance(value, np.ndarray):
            setattr(frame, name, None)


class _Pipeline:
    """The three stages of one batch and what they share: the reader thread (:meth:`read`), the
    model on the calling thread (:meth:`run`) and the writer thread (:meth:`write`), joined by
    one-slot queues and bounded by a pixel budget; the first failure stops all three unless
    ``keep_going``."""

    def __init__(self, loaded: LoadedModel, runtime: Runtime, names: PassNames, pass_name: str, require_aux: bool,
                 keep_going: bool, summary: Summary, log: LogFn, progress: Callable[[int], None],
                 on_denoised: Callable[[Job, PreparedFrame, np.ndarray], None] | None, describe: DescribeFn,
                 temporal: Callable[[Job, PreparedFrame, np.ndarray], np.ndarray] | None = None):
        self.temporal = temporal
        self.loaded, self.runtime, self.names, self.pass_name = loaded, runtime, names, pass_name
        self.require_aux, self.keep_going, self.on_denoised = require_aux, keep_going, on_denoised
        self.summary, self.log, self.progress, self.describe = summary, log, progress, describe
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.budget = _PixelBudget(PIPELINE_PIXELS, self.stop)
        self.read_q: queue.Queue = queue.Queue(maxsize=1)
        self.write_q: queue.Queue = queue.Queue(maxsize=1)

    def fail(self, job: Job, exc: BaseException) -> None:
        message = _message(job, exc, self.describe)
        if job.warmup:  # the run or shard that writes this frame reports it
            self.log("warning", f"temporal warm-up frame skipped: {message}")
            return
        with self.lock:
            self.summary.failed.append((job, message))
        self.log("error", message)
        self.progress(1)
        # Weights that cannot denoise (NaN, of another layout) would fail every frame the same
        # way: the batch stops even with keep_going, and the error names the weights.
        if not self.keep_going or isinstance(exc, WeightsError):
            self.summary.fatal = self.summary.fatal or isinstance(exc, WeightsError)
            self.stop.set()

    def read(self, todo: list[Job], pixels: list[int]) -> None:
        for job, frame_pixels in zip(todo, pixels):
            if self.stop.is_set():
                break
            cost = self.budget.acquire(frame_pixels)
            try:
                self.runtime.check_frame_fits(frame_pixels, READ_BYTES_PER_PIXEL, job.source.path)
                item: list[PreparedFrame] | BaseException = prepare_views(  # one per view of a stereo file
                    self.loaded, job.source.path, self.names, self.require_aux, low_memory=True, pass_name=self.pass_name,
                    also_read=("vector",) if self.temporal is not None else ())
            except Exception as exc:
                item = exc
            _put(self.read_q, (job, item, cost), self.stop)
            del item  # or this thread would hold the frame's planes while waiting for the next
        _put(self.read_q, None, self.stop)

    def write(self) -> None:
        while (item := self.write_q.get()) is not None:
            job, results, cost = item
            try:
                write_with_passes(results, job.output, pass_name=self.pass_name)
            except Exception as exc:
                self.fail(job, exc)
            else:
                with self.lock:
                    self.summary.done.append(job)
                self.log("info", f"{job.source.path} -> {job.output}")
                self.progress(1)
            finally:
                del results, item
                self.budget.release(cost)

    def run(self, todo: list[Job]) -> None:
        # Each header is read once, here: the pixel budget and the allocator choice both need it.
        pixels = [_frame_pixels(job.source.path) for job in todo]
        # Frames that fill the memory budget run with freed memory returned to the system at
        # once: the heap kept for speed (keep_freed_memory) would take their peak past it.
        max_memory = self.runtime.max_memory
        memory_tight = bool(max_memory) and any(n * READ_BYTES_PER_PIXEL > max_memory // 4 for n in pixels)
        threads = [threading.Thread(target=self.read, args=(todo, pixels), name="mcdenoise-read", daemon=True),
                   threading.Thread(target=self.write, name="mcdenoise-write", daemon=True)]
        with freed_memory_returned() if memory_tight else contextlib.nullcontext():
            for t in threads:
                t.start()
            try:
                self._denoise_all()
            finally:
                self.write_q.put(None)  # the writer finishes what it holds: those frames are done work
                threads[1].join()
                self.stop.set()
                threads[0].join()

    def _denoise_all(self) -> None:
        """The model's stage: each frame read is denoised and handed to the writer, its input
        planes let go of first so that they are not alive while the writer re-reads the file."""
        while (item := self._next_read()) is not None:
            job, prepared, cost = item
            del item
            results = self._denoise(job, prepared, cost)
            del prepared
            if results is None:
                continue
            if job.warmup:
                self.budget.release(cost)
                continue
            for frame, _ in results:
                _drop_planes(frame)
            if not keeping_freed_memory():
                return_freed_memory()
            _put(self.write_q, (job, results, cost), self.stop)
            del results

    def _next_read(self) -> tuple | None:
        """The next (job, prepared frame or its error, pixel cost) from the reader; None at the
        end or when the batch stops."""
        while not self.stop.is_set():
            try:
                return self.read_q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _denoise(self, job: Job, prepared: list[PreparedFrame] | BaseException,
                 cost: int) -> list[tuple[Frame, np.ndarray]] | None:
        """Each view's frame and denoised colour (one view but in a stereo file), or None when
        the frame failed (counted as failed). The temporal history follows one view: a stereo
        file's views are denoised frame by frame."""
        if isinstance(prepared, BaseException):
            self.budget.release(cost)
            self.fail(job, prepared)
            return None
        results = []
        for view in prepared:
            if view.aux_warning:
                with self.lock:
                    self.summary.warnings += 1
                self.log("warning", view.aux_warning)
            try:
                t0 = time.perf_counter()
                denoised = run_model(self.loaded, view, self.runtime)
                if self.temporal is not None and len(prepared) == 1:
                    denoised = self.temporal(job, view, denoised)
                self.summary.model_seconds += time.perf_counter() - t0
                if self.on_denoised is not None and not results:  # the first (default) view
                    self.on_denoised(job, view, denoised)
            except Exception as exc:
                self.budget.release(cost)
                self.fail(job, exc)
                return None
            results.append((view.frame, denoised))
        return results
