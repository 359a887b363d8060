"""Run one denoise, inside Blender (PyTorch importable) or in an external Python as a subprocess.

Nothing here touches ``bpy``: a :class:`Job` is a snapshot of the settings taken on the main
thread, so the operator can run :func:`run` in a background thread and the render handlers can
run it directly. Every failure comes out as a ``McDenoiseError``-like exception with a message
an artist can act on; cancelling raises the core's ``Cancelled``.
"""

from __future__ import annotations

import os
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import runtime, wording

# The loaded network is kept between frames of an animation (loading it costs more than a
# small frame); keyed by weights path and device so a preference change reloads.
_MODEL_CACHE: dict[tuple[str, str], object] = {}
DEVICE_NAMES = {"AUTO": "auto", "CPU": "cpu", "GPU": "cuda"}


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
    if job.backend != "AUTO":
        return job.backend
    if not runtime.missing_modules():
        return "BLENDER"
    if job.python_path:
        return "EXTERNAL"
    raise AddonError(
        "PyTorch is not available in Blender: open Edit > Preferences > Add-ons > mcdenoise and click "
        "'Install PyTorch', or set 'External Python' to an environment with mcdenoise installed"
    )


def run(job: Job, progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None) -> Outcome:
    """Denoise one layer of one file; ``cancel`` stops it at the next tile (inside Blender) or
    kills the worker process, raising the core's ``Cancelled``."""
    cancel = cancel or threading.Event()
    if choose_backend(job) == "EXTERNAL":
        return _run_external(job, cancel)

    def tile_done(done: int, total: int) -> None:
        if cancel.is_set():
            raise _cancelled()
        if progress is not None:
            progress(done, total)

    return _run_inside(job, tile_done)


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


def _run_inside(job: Job, progress: Callable[[int, int], None] | None) -> Outcome:
    missing = runtime.missing_modules()
    if missing:
        raise AddonError(
            f"{', '.join(missing)} cannot be imported in Blender: use 'Install PyTorch' in the mcdenoise "
            "preferences, or switch 'Run the model' to External Python"
        )
    runtime.core()
    from mcdenoise.inference.frames import denoise_file  # noqa: PLC0415
    from mcdenoise.models.tiers import load_for_cli  # noqa: PLC0415

    weights = job.weights_path or None
    quality = None if weights else job.quality
    key = (str(weights), quality, job.device)
    loaded = _MODEL_CACHE.get(key)
    if loaded is None:
        loaded = _MODEL_CACHE[key] = load_for_cli(weights, quality, device=DEVICE_NAMES[job.device])
    from mcdenoise.io.passes import PassNames  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = denoise_file(loaded, job.in_path, job.out_path, PassNames(layer=job.layer), pass_name=job.pass_name,
                              runtime=_runtime(loaded.model, job), require_aux=job.require_aux, progress=progress)
    return Outcome(result.output, result.denoised, [str(w.message) for w in caught], result.frame.alpha)


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

    cmd = [job.python_path, "-m", "mcdenoise", "denoise", str(job.in_path), "-o", str(job.out_path),
           "--device", DEVICE_NAMES[job.device], "--tile", str(job.tile), "--max-memory", str(DEFAULT_MAX_MEMORY_GIB),
           "--pass-name", job.pass_name, "--overwrite"]  # the add-on decides what to denoise again
    if job.layer is not None:
        cmd += ["--layer", job.layer]
    if job.weights_path:
        cmd += ["--weights", job.weights_path]
    else:
        cmd += ["--quality", job.quality]
    if job.require_aux:
        cmd.append("--require-aux")
    # Core errors come back as JSON lines, worded below in the add-on's terms instead of flags.
    env = dict(os.environ, **wording.JSON_ERRORS)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    while True:
        try:
            out, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                proc.terminate()
                proc.communicate()
                raise _cancelled() from None
    if proc.returncode != 0:
        lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()]
        worded = next(filter(None, map(wording.describe_json_line, reversed(lines))), None)
        raise AddonError(worded or f"external mcdenoise failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    notes = wording.cli_warnings(err or "")
    return Outcome(job.out_path, None, notes)
