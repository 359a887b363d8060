"""Run one denoise, inside Blender (PyTorch importable) or in an external Python's worker process.

Nothing here touches ``bpy``: a :class:`Job` is a snapshot of the settings taken on the main
thread, so the operator can run :func:`run` in a background thread and the render handlers can
run it directly. Every failure comes out as a ``McDenoiseError``-like exception with a message
an artist can act on; cancelling raises the core's ``Cancelled``.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import external, runtime, wording

# The loaded network is kept between presses of Denoise (loading it costs more than a small
# frame); keyed by weights path and device so a preference change reloads. While a render runs
# it would hold GPU memory Cycles needs for the next frame: the render handlers
# (handlers.py) call render_started/render_ended, and meanwhile the model is freed at each
# frame's start and after each denoise (reloading it costs a fraction of a frame).
_MODEL_CACHE: dict[tuple[str, str], object] = {}
_CACHE_LOCK = threading.Lock()
_RENDERING = threading.Event()
# The preferences' Device -> ``--device`` (``choices.DEVICES``); "GPU" is CUDA/ROCm, as saved before.
DEVICE_NAMES = {"AUTO": "auto", "CPU": "cpu", "GPU": "cuda", "MPS": "mps", "XPU": "xpu"}


class AddonError(Exception):
    """A problem outside the core (no PyTorch, a broken external Python): shown as is."""


@dataclass
class Job:
    """Paths absolute (resolved on the main thread: the worker thread never calls into bpy)."""

    in_path: Path
    out_path: Path
    backend: str = "AUTO"
    python_path: str = ""
    device: str = "AUTO"
    weights_path: str = ""
    pass_name: str = "Denoised"
    tile: int = 1024
    require_aux: bool = False
    quality: str = "balanced"  # used when weights_path is empty
    layer: str | None = None  # the view layer to denoise; None: the first with a colour pass


@dataclass
class Outcome:
    out_path: Path
    denoised: object | None  # HxWx3 float32 array when run inside Blender, else None
    warnings: list[str] = field(default_factory=list)
    alpha: object | None = None  # HxW alpha of the colour pass (inside Blender), kept in the shown image


def choose_backend(job: Job) -> str:
    """Where ``job`` runs. Inside Blender needs PyTorch found *and* importable (a partial install
    or a wrong build is found but fails to import); Automatic then falls back to the external
    Python when one is set. Imports torch: call it from the denoise thread, not from a panel."""
    if job.backend == "EXTERNAL":
        return "EXTERNAL"
    missing = runtime.missing_modules()
    if missing and job.backend == "AUTO":
        problem = ("PyTorch is not available in Blender: open Edit > Preferences > Add-ons > mcdenoise and click "
                   "'Install PyTorch', or set 'External Python' to an environment with mcdenoise installed")
    elif missing:
        problem = (f"{', '.join(missing)} cannot be imported in Blender: use 'Install PyTorch' in the mcdenoise "
                   "preferences, or switch 'Run the model' to External Python")
    else:
        problem = runtime.import_problem()
    if problem is None:
        return "BLENDER"
    if job.backend == "AUTO" and job.python_path:
        return "EXTERNAL"
    raise AddonError(problem)


def run(job: Job, progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
        temporal: Callable | None = None) -> Outcome:
    """Denoise one layer of one file; ``temporal`` (inside Blender only: the caller checks
    :func:`choose_backend`) stabilises it with the previous frames (:mod:`mcdenoise.temporal_state`);
    ``cancel`` stops it at the next tile (inside Blender) or stops the external worker's run
    (the worker stays for the next frame), raising the core's ``Cancelled``."""
    cancel = cancel or threading.Event()
    if choose_backend(job) == "EXTERNAL":
        return _run_external(job, cancel)

    def tile_done(done: int, total: int) -> None:
        if cancel.is_set():
            raise _cancelled()
        if progress is not None:
            progress(done, total)

    return _run_inside(job, tile_done, temporal)


def _cancelled() -> Exception:
    runtime.core()
    from mcdenoise.errors import Cancelled  # noqa: PLC0415 (pure Python, no torch)

    return Cancelled("denoising cancelled")


def describe(exc: BaseException) -> str:
    """Core errors worded with this add-on's own controls, add-on errors as they are; anything
    else is a bug worth its type name."""
    runtime.core()
    from mcdenoise.errors import McDenoiseError  # noqa: PLC0415

    if isinstance(exc, McDenoiseError):
        return wording.describe(exc)
    if isinstance(exc, AddonError):
        return str(exc)
    return f"denoising failed ({type(exc).__name__}: {exc}); see the system console"


def is_cancelled(exc: BaseException) -> bool:
    runtime.core()
    from mcdenoise.errors import Cancelled  # noqa: PLC0415

    return isinstance(exc, Cancelled)


def _run_inside(job: Job, progress: Callable[[int, int], None] | None, temporal: Callable | None = None) -> Outcome:
    """Inside Blender (:func:`run` checked that PyTorch imports)."""
    runtime.core()
    from mcdenoise.inference.frames import denoise_file  # noqa: PLC0415
    from mcdenoise.inference.runtime import resolve_device  # noqa: PLC0415
    from mcdenoise.models.tiers import load_for_cli  # noqa: PLC0415

    weights = job.weights_path or None
    quality = None if weights else job.quality
    key = (str(weights), quality, job.device)
    with _CACHE_LOCK:
        loaded = _MODEL_CACHE.get(key)
        if loaded is None:
            loaded = _MODEL_CACHE[key] = load_for_cli(weights, quality, device=resolve_device(DEVICE_NAMES[job.device]))
    from mcdenoise.io.passes import PassNames  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = denoise_file(loaded, job.in_path, job.out_path, PassNames(layer=job.layer), pass_name=job.pass_name,
                              runtime=_runtime(loaded.model, job), require_aux=job.require_aux, progress=progress,
                              temporal=temporal)
    del loaded  # the cache's reference is then the only one: releasing it frees the model
    if _RENDERING.is_set():
        release_models()
    return Outcome(result.output, result.denoised, [str(w.message) for w in caught], result.frame.alpha)


def release_models() -> int:
    """Drop the cached models and hand PyTorch's cached GPU blocks back to the driver, so that
    Cycles has the memory; returns how many models were dropped."""
    with _CACHE_LOCK:
        count = len(_MODEL_CACHE)
        _MODEL_CACHE.clear()
    torch = sys.modules.get("torch")
    if torch is not None:
        for name in ("cuda", "xpu"):  # ROCm builds are torch.cuda too
            device = getattr(torch, name, None)
            if device is not None and getattr(device, "is_initialized", lambda: False)():
                device.empty_cache()
        mps = getattr(getattr(torch, "backends", None), "mps", None)
        if mps is not None and mps.is_available() and hasattr(torch, "mps"):
            torch.mps.empty_cache()
    return count


def render_started() -> None:
    """A render (or the next frame of an animation) starts: free the model for it."""
    _RENDERING.set()
    release_models()


def render_ended() -> None:
    _RENDERING.clear()


def _runtime(model, job: Job):
    """How the model runs inside Blender: as ``mcdenoise denoise`` runs it (the external worker's
    command line asks for the same), the scene's tile size a maximum within the CLI's default
    memory budget."""
    from mcdenoise.inference.runtime import DEFAULT_MAX_MEMORY, Runtime  # noqa: PLC0415

    return Runtime.for_model(model, max_memory=DEFAULT_MAX_MEMORY, max_tile=job.tile or None)


def _run_external(job: Job, cancel: threading.Event) -> Outcome:
    problem = runtime.external_python_problem(job.python_path)
    if problem:
        raise AddonError(problem)
    runtime.core()
    from mcdenoise.choices import DEFAULT_MAX_MEMORY_GIB  # noqa: PLC0415 (pure Python, no torch)

    argv = ["denoise", str(job.in_path), "-o", str(job.out_path),
            "--device", DEVICE_NAMES[job.device], "--tile", str(job.tile), "--max-memory", str(DEFAULT_MAX_MEMORY_GIB),
            "--pass-name", job.pass_name, "--overwrite"]  # the add-on decides what to denoise again
    if job.layer is not None:
        argv += ["--layer", job.layer]
    if job.weights_path:
        argv += ["--weights", job.weights_path]
    else:
        argv += ["--quality", job.quality]
    if job.require_aux:
        argv.append("--require-aux")
    if cancel.is_set():
        raise _cancelled()
    # One worker process serves every frame (external.py); core errors come back as JSON lines,
    # worded below in the add-on's terms instead of flags.
    env = dict(os.environ, **wording.JSON_ERRORS)
    try:
        reply = external.request(job.python_path, argv, env, cancel)
    except external.Cancelled:
        raise _cancelled() from None
    except external.WorkerError as exc:
        raise AddonError(str(exc)) from None
    out, err = reply.get("stdout", ""), reply.get("stderr", "")
    if reply.get("code") != 0:
        lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()]
        worded = next(filter(None, map(wording.describe_json_line, reversed(lines))), None)
        code = reply.get("code")
        raise AddonError(worded or f"external mcdenoise failed: {lines[-1] if lines else f'exit code {code}'}")
    return Outcome(job.out_path, None, wording.cli_warnings(err))
