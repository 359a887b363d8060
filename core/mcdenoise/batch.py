"""Denoise a list of frames unattended: plan outputs, skip finished ones, overlap I/O with the
model, and count what happened.

A farm job must survive a kill at any moment and a bad frame among thousands. Outputs are
written atomically (see :func:`mcdenoise.exr.atomic_output`), so an output that exists, passes
the truncation check and holds the denoised pass is finished and a re-run skips it; temp files
of a killed run are removed. Three stages run at once: a reader thread reads and checks the
next frame, the calling thread runs the model, a writer thread writes the previous result
back. Frames in flight are bounded by a pixel budget, so 1080p sequences overlap freely while
an 8K frame is alone in memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.errors import InputFileError, McDenoiseError, OutputError
from mcdenoise.exr import open_exr, write_with_pass
from mcdenoise.inference import DEFAULT_TILE, FrameInputs, activation_bytes_per_pixel, freed_memory_returned, keeping_freed_memory, tile_for_memory
from mcdenoise.model_io import LoadedModel
from mcdenoise.passes import PassNames, split_channel_name
from mcdenoise.pipeline import PreparedFrame, check_output_path, prepare_frame, run_model
from mcdenoise.sequence import FrameSource

# Pixels of frames read but not yet written. Two 4K frames fit; an 8K frame runs alone.
PIPELINE_PIXELS = 2 * 3840 * 2160
LogFn = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)
# What the process holds besides frames and network activations: Python, torch, OpenEXR
# (~250 MB) and allocator slack, which on an 8K frame measured another ~200 MB.
PROCESS_BASE_BYTES = 512 << 20
# A frame between read and write (low-memory read: half colour and albedo, float normal, result).
READ_BYTES_PER_PIXEL = 24


@dataclass(frozen=True)
class Job:
    source: FrameSource
    output: Path


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


def output_path(path: Path, out_dir: Path | None, suffix: str) -> Path:
    folder = out_dir if out_dir is not None else path.parent
    return folder / f"{path.stem}{suffix}.exr"


def plan_jobs(sources: list[FrameSource], output: Path | None = None, out_dir: Path | None = None, suffix: str = "_denoised") -> list[Job]:
    """Pair each input with its output, refusing plans that would clobber one output with
    another frame or write into a folder that cannot take it, before any work is done."""
    if output is not None:
        if len(sources) != 1:
            raise McDenoiseError("-o/--output takes one input; for several files use --out-dir or --suffix")
        jobs = [Job(sources[0], check_output_path(output))]
    else:
        if out_dir is not None:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{out_dir}: cannot create output folder ({exc.strerror}); choose another --out-dir") from exc
        jobs = [Job(s, output_path(s.path, out_dir, suffix)) for s in sources]
        # A folder or glob re-run beside its own outputs must not denoise those outputs again.
        outputs = {j.output.resolve() for j in jobs}
        jobs = [j for j in jobs if j.source.path.resolve() not in outputs or j.output.resolve() == j.source.path.resolve()]
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen and seen[key] != job.source.path:
            raise OutputError(f"{job.output}: both {seen[key]} and {job.source.path} would be written here; use --suffix or separate --out-dir runs")
        seen[key] = job.source.path
    for folder in sorted({j.output.parent for j in jobs}):
        if not folder.is_dir():
            raise OutputError(f"{folder}: output folder does not exist; create it or choose another --out-dir")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{folder}: output folder is not writable; fix its permissions or choose another --out-dir")
    return jobs


def output_is_complete(path: Path, pass_name: str) -> bool:
    """True for an output a previous run finished: whole file (chunk tables checked) with the
    denoised pass in it. Reads headers only, so checking a finished 8K sequence is quick."""
    if not path.is_file():
        return False
    try:
        f = open_exr(path, header_only=True)
    except McDenoiseError:
        return False
    channels = [ch.name for part in f.parts for ch in part.header.get("channels", [])]
    return any(split_channel_name(name)[1] == pass_name for name in channels)


def remove_stale_temps(output: Path) -> int:
    """Delete ``.<stem>.*.tmp.exr`` files that a killed run's atomic write left beside ``output``."""
    removed = 0
    for tmp in output.parent.glob(f".{output.stem}.*.tmp{output.suffix}"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def tile_for_budget(loaded: LoadedModel, inputs: FrameInputs, tile: int | str | None, max_memory: int | None, result_itemsize: int = 4) -> int | str | None:
    """``tile``, or a smaller one when the frame is so large that its arrays plus the network's
    working memory would pass ``max_memory`` bytes (CPU). On a GPU the whole-frame request
    (``None``) becomes the largest tile its free memory holds.

    With the balanced model within 2 GiB, an 8K frame (its passes already take ~1 GB) runs in
    640-pixel tiles and a 1080p frame in two 1152-pixel tiles. Tiled output equals untiled output, so
    this changes memory and time, never the result. ``result_itemsize`` is 2 when the result
    comes back in half (a half colour pass), which the budget counts too.
    """
    device = next(loaded.model.parameters()).device
    if device.type != "cpu":
        return tile or "auto"
    if not max_memory or tile == "auto":
        return tile
    h, w = inputs.color.shape[:2]
    margin = int(getattr(loaded.model, "receptive_radius", 32))
    alignment = int(getattr(loaded.model, "alignment", 1))
    frame_bytes = sum(a.nbytes for a in (inputs.color, inputs.albedo, inputs.normal) if a is not None) + h * w * 3 * result_itemsize
    fit = tile_for_memory(max_memory - PROCESS_BASE_BYTES - frame_bytes, activation_bytes_per_pixel(loaded.model), margin, alignment)
    requested = int(tile or max(h, w))
    return tile if requested <= fit else fit


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
    :func:`mcdenoise.pipeline.run_model` (``precision``, ``compile``).
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
