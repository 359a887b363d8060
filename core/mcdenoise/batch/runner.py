"""Denoise a list of frames unattended: plan outputs, skip finished ones, overlap I/O with the
model, and count what happened.

A farm job must survive a kill at any moment and a bad frame among thousands: finished outputs
are skipped (:mod:`mcdenoise.batch.plan`). Three stages run at once: a reader thread reads and checks the
next frame, the calling thread runs the model, a writer thread writes the previous result
back. Frames in flight are bounded by a pixel budget, so 1080p sequences overlap freely while
an 8K frame is alone in memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.batch.plan import Job, output_is_complete, remove_stale_temps
from mcdenoise.errors import InputFileError, McDenoiseError
from mcdenoise.inference.frames import PreparedFrame, prepare_frame, run_model
from mcdenoise.inference.runtime import DEFAULT_TILE, freed_memory_returned, keeping_freed_memory, tile_for_budget
from mcdenoise.io.exr import write_with_pass
from mcdenoise.io.passes import PassNames
from mcdenoise.models.loader import LoadedModel

# Pixels of frames read but not yet written. Two 4K frames fit; an 8K frame runs alone.
PIPELINE_PIXELS = 2 * 3840 * 2160
LogFn = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)
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

    def line(self) -> str:
        return f"done {len(self.done)} / skipped {len(self.skipped)} / failed {len(self.failed)}"


def _give_back_free_memory() -> None:
    """Ask glibc to return freed heap pages: after an 8K frame's tiles the heap holds ~400 MB
    of freed activations that would otherwise sit under the re-read file at write time.
    Only sequences whose frames fill the memory budget need it: for smaller frames, keeping
    the pages saves the next frame from faulting them all in again (see keep_freed_memory)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows, musl): nothing to do


def _frame_pixels(path: Path) -> int:
    try:
        parts = OpenEXR.File(str(path), header_only=True).parts
        return max(int(np.prod(p.header["dataWindow"][1] - p.header["dataWindow"][0] + 1)) for p in parts)
    except Exception:
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


def _message(job: Job, exc: BaseException) -> str:
    if isinstance(exc, McDenoiseError):
        return str(exc)
    return f"{job.source.path}: unexpected {type(exc).__name__}: {exc}"


def run_batch(
    loaded: LoadedModel,
    jobs: list[Job],
    names: PassNames = PassNames(),
    pass_name: str = "Denoised",
    tile: int | None = DEFAULT_TILE,
    require_aux: bool = False,
    keep_going: bool = False,
    overwrite: bool = False,
    log: LogFn | None = None,
    progress: Callable[[int], None] | None = None,
    on_denoised: Callable[[Job, PreparedFrame, np.ndarray], None] | None = None,
    max_memory: int | None = None,
    model_options: dict | None = None,
) -> Summary:
    """Denoise ``jobs``; per-frame problems are counted in the summary, not raised.

    Missing frames of a pattern stop the job before any work unless ``keep_going`` (then they
    count as failed): a farm should learn about a render gap at once, not after hours.
    Without ``keep_going`` the first failed frame stops the batch (a re-run resumes).
    ``progress(n)`` is called as frames finish in any way. ``max_memory`` (bytes) shrinks the
    tile of frames too large for it (see :func:`tile_for_budget`). ``model_options`` go to
    :func:`mcdenoise.inference.frames.run_model` (``precision``, ``compile``).
    """
    log = log or (lambda level, message: None)
    progress = progress or (lambda n: None)
    start = time.perf_counter()
    summary = Summary(total=len(jobs))
    lock = threading.Lock()
    stop = threading.Event()

    todo: list[Job] = []
    missing: list[Job] = []
    for job in jobs:
        if not overwrite and output_is_complete(job.output, pass_name):
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
            raise InputFileError(f"{text}; re-render them, narrow --frames, or pass --keep-going to denoise the rest")
        for job in missing:
            summary.failed.append((job, f"{job.source.path}: frame {job.source.frame} is missing from the sequence"))
        log("error", text)
        progress(len(missing))

    def fail(job: Job, exc: BaseException) -> None:
        message = _message(job, exc)
        with lock:
            summary.failed.append((job, message))
        log("error", message)
        progress(1)
        if not keep_going:
            stop.set()

    budget = _PixelBudget(PIPELINE_PIXELS, stop)
    read_q: queue.Queue = queue.Queue(maxsize=1)
    write_q: queue.Queue = queue.Queue(maxsize=1)

    # Each header is read once, here: the pixel budget and the allocator choice both need it.
    pixels = [_frame_pixels(job.source.path) for job in todo]

    def reader() -> None:
        for job, frame_pixels in zip(todo, pixels):
            if stop.is_set():
                break
            cost = budget.acquire(frame_pixels)
            try:
                item: PreparedFrame | BaseException = prepare_frame(loaded, job.source.path, names, require_aux, low_memory=True)
            except Exception as exc:
                item = exc
            _put(read_q, (job, item, cost), stop)
            del item  # or this thread would hold the frame's planes while waiting for the next
        _put(read_q, None, stop)

    def writer() -> None:
        while (item := write_q.get()) is not None:
            job, frame, denoised, cost = item
            try:
                write_with_pass(frame, job.output, denoised, pass_name=pass_name)
            except Exception as exc:
                fail(job, exc)
            else:
                with lock:
                    summary.done.append(job)
                log("info", f"{job.source.path} -> {job.output}")
                progress(1)
            finally:
                del frame, denoised, item
                budget.release(cost)

    # Frames that fill the memory budget (8K within 2 GiB) run with freed memory returned to
    # the system at once: the heap that keep_freed_memory keeps for speed measured 2.0-2.1 GiB
    # on a 2-frame 8K sequence where this peaked at 1.56 GiB.
    memory_tight = bool(max_memory) and any(n * READ_BYTES_PER_PIXEL > max_memory // 4 for n in pixels)
    allocator = contextlib.ExitStack()
    if memory_tight:
        allocator.enter_context(freed_memory_returned())
    threads = [threading.Thread(target=reader, name="mcdenoise-read", daemon=True),
               threading.Thread(target=writer, name="mcdenoise-write", daemon=True)]
    for t in threads:
        t.start()
    try:
        while not stop.is_set():
            try:
                item = read_q.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                break
            job, prepared, cost = item
            del item
            if isinstance(prepared, BaseException):
                budget.release(cost)
                fail(job, prepared)
                continue
            if prepared.aux_warning:
                with lock:
                    summary.warnings += 1
                log("warning", prepared.aux_warning)
            try:
                t0 = time.perf_counter()
                denoised = run_model(loaded, prepared, tile_for_budget(loaded, prepared.inputs, tile, max_memory, prepared.frame.color_dtype.itemsize), **(model_options or {}))
                summary.model_seconds += time.perf_counter() - t0
                if on_denoised is not None:
                    on_denoised(job, prepared, denoised)
            except Exception as exc:
                budget.release(cost)
                fail(job, exc)
                continue
            frame = prepared.frame
            del prepared  # the input planes go now, before the writer re-reads the file
            frame.color = frame.albedo = frame.normal = frame.alpha = None
            if memory_tight or not keeping_freed_memory():
                _give_back_free_memory()
            _put(write_q, (job, frame, denoised, cost), stop)
            del frame, denoised
    finally:
        write_q.put(None)  # the writer finishes what it holds: those frames are done work
        threads[1].join()
        stop.set()
        threads[0].join()
        allocator.close()
    summary.stopped_early = len(summary.done) + len(summary.skipped) + len(summary.failed) < summary.total
    summary.seconds = time.perf_counter() - start
    return summary
