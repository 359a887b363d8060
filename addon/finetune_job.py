""""Fine-tune on this shot": the core's ``finetune_shot`` run as a background process, its
progress and result brought back to the scene on the main thread.

**Why a separate process.** ``finetune_shot`` renders the shot by opening the .blend with
``bpy.ops.wm.open_mainfile``: inside the artist's Blender that would replace the open file, and
its minutes of Cycles renders and training would freeze the interface. So the add-on saves a copy
of the scene as it is now (``save_as_mainfile(copy=True)``, relative paths remapped, the artist's
file and its unsaved state untouched) into the job's work folder beside the .blend, and starts
:mod:`finetune_child` on it in a new process, chosen like the denoise backend:

* **External Python** (the preference, or Automatic without PyTorch in Blender): that Python runs
  the script; its environment needs bpy (mcdenoise's ``render`` extra) besides PyTorch.
* **Inside Blender**, in a Blender application: Blender's own binary (``bpy.app.binary_path``) in
  background mode runs the script, with the paths where this Blender finds PyTorch, OpenEXR and
  the vendored core. Nothing new to install: the same PyTorch the Denoise button uses.
* **Inside Blender**, with bpy as a Python module (``binary_path`` is empty: a pipeline script,
  the tests): ``sys.executable`` runs the script, as bpy imports there.

The child prints progress as JSON lines; a watcher thread reads them, and the result is applied to
the scene by a follow-up on the main thread (:func:`jobs.on_main_thread`, run by the add-on's
timer, or by :func:`wait` in background mode). Cancel sends SIGTERM: the core stops after the
render or training step in flight, its state and checkpoint on disk, and writes no weights (the
weights file is only ever written whole, at the end; a process that does not end is killed after
``KILL_AFTER_SECONDS``); clicking the button again with the same settings resumes it.
The model is written next to the .blend as ``<name>_mcdenoise.pt`` and selected in the scene's
*Weights*, which the Denoise button and auto-denoise use; a tuning that did not beat the shipped
model on the frame held aside is reported, and the scene keeps the shipped model.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import jobs, preferences, runtime, status, wording, worker
from .finetune_child import PREFIX, STOPPED

CHILD = Path(__file__).resolve().parent / "finetune_child.py"
SUFFIX = "_mcdenoise"
KILL_AFTER_SECONDS = 60.0  # after SIGTERM: the step in flight ends well before this


@dataclass
class Run:
    """One fine-tuning process and what it said; read by the panel (main thread), written by the
    watcher thread (plain assignments of whole values)."""

    proc: subprocess.Popen
    blend: str  # bpy.data.filepath when it started: the result goes to that file's scene only
    scene: str
    output: Path
    started: float = field(default_factory=time.monotonic)
    update: dict = field(default_factory=dict)
    phases: list = field(default_factory=list)  # the phases it went through: start, render, train, check
    result: dict | None = None
    error: str | None = None
    stopped: bool = False
    cancelled: bool = False
    done: bool = False
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return not self.done

    def progress_text(self) -> str:
        text = self.update.get("text") or "starting"
        return f"{text} ({time.monotonic() - self.started:.0f} s)"


_state: dict = {"run": None}


def current() -> Run | None:
    """The running job, or the last one of this session (the panel shows how it ended)."""
    return _state["run"]


def weights_file(blend: str | Path) -> Path:
    """Where the tuned model of ``blend`` goes: ``shot_mcdenoise.pt`` beside ``shot.blend``."""
    blend = Path(blend)
    return blend.with_name(blend.stem + SUFFIX + ".pt")


def start(scene: bpy.types.Scene, max_steps: int = 0) -> Run:
    """Start fine-tuning on ``scene``'s shot (main thread): its saved .blend, the frames and
    minutes of its mcdenoise settings. Raises :class:`worker.AddonError` with what to do."""
    run = _state["run"]
    if run is not None and run.running:
        raise worker.AddonError("a fine-tune is already running: wait for it or cancel it in the mcdenoise panel")
    if not bpy.data.filepath:
        raise worker.AddonError("save the .blend first: fine-tuning renders the shot from its file and writes "
                                "the tuned model next to it")
    blend = Path(bpy.path.abspath(bpy.data.filepath))
    if not os.access(blend.parent, os.W_OK):
        raise worker.AddonError(f"{blend.parent} is not writable: the tuned model is written next to the .blend; "
                                "save the .blend in a folder you can write to")
    settings = scene.mcdenoise
    runtime.core()
    from mcdenoise.batch.sequence import parse_frames
    from mcdenoise.finetune.run import work_dir

    try:
        frames = parse_frames(settings.finetune_frames) if settings.finetune_frames.strip() else None
    except ValueError as exc:
        raise worker.AddonError(f"Frames: {exc}") from None
    prefs = preferences.get()
    python = runtime.bpy_abspath(prefs.python_path) if prefs.python_path else ""
    cmd, paths = command(choose_backend(prefs.backend, python), python)
    output = weights_file(blend)
    work = work_dir(output)
    fresh = not work.is_dir()
    work.mkdir(exist_ok=True)
    copy = work / blend.name
    options = {"frames": frames, "minutes": settings.finetune_minutes, "quality": settings.quality,
               "device": worker.DEVICE_NAMES[prefs.device], "render_device": "gpu" if scene.cycles.device == "GPU" else "cpu",
               "max_steps": max_steps, "restart": True}
    args = {"blend": str(copy), "output": str(output), "options": options, "clean": True, **paths}
    try:
        # The scene as the artist sees it now, unsaved changes included; their file stays as it is.
        try:
            bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True, relative_remap=True)
        except RuntimeError as exc:
            raise worker.AddonError(f"cannot save a copy of the scene to {copy} ({str(exc).strip()})") from None
        try:
            proc = subprocess.Popen(cmd + [json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except OSError as exc:
            raise worker.AddonError(f"cannot start the fine-tuning process {cmd[0]} ({exc.strerror or exc})") from None
    except worker.AddonError:
        if fresh:  # nothing of an earlier job was there: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    run = _state["run"] = Run(proc, bpy.data.filepath, scene.name, output)
    run.thread = threading.Thread(target=_watch, args=(run,), name="mcdenoise-finetune", daemon=True)
    run.thread.start()
    status.report(f"fine-tuning on {blend.name} ({settings.finetune_minutes:g} min budget) -> {output.name}")
    if not bpy.app.background and not bpy.app.timers.is_registered(_redraw_while_running):
        bpy.app.timers.register(_redraw_while_running, first_interval=1.0)
    return run


def choose_backend(choice: str, python: str) -> str:
    """Where the job runs: the denoise backend's rule, with PyTorch only looked for, not imported
    (it is the child process that imports it; Blender's own process need not load it for this)."""
    if choice == "EXTERNAL" or (choice == "AUTO" and runtime.missing_modules() and python):
        return "EXTERNAL"
    if not runtime.missing_modules():
        return "BLENDER"
    return worker.choose_backend(worker.Job(Path(), Path(), choice, python))  # raises, saying what to install


def command(backend: str, python: str) -> tuple[list[str], dict]:
    """The command line that runs :mod:`finetune_child` for ``backend`` (see the module's
    docstring), and the paths the child puts on its ``sys.path``."""
    vendor = [str(runtime.VENDOR_DIR)] if runtime.VENDOR_DIR.is_dir() else []
    if backend == "EXTERNAL":
        problem = runtime.external_python_problem(python)
        if problem:
            raise worker.AddonError(problem)
        return [python, str(CHILD)], {"prepend": vendor}
    paths = {"prepend": vendor, "append": [p for p in sys.path if p]}  # where this Blender finds torch
    if bpy.app.binary_path:  # a Blender application: its own binary, in background mode
        return [bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(CHILD),
                "--"], paths
    return [sys.executable, str(CHILD)], paths  # bpy as a module: it imports in this Python


def _watch(run: Run) -> None:
    """The watcher thread: the child's lines into ``run``, then the follow-up for the scene."""
    try:
        for line in run.proc.stdout:
            line = line.rstrip("\n")
            if not line.startswith(PREFIX):
                if line.strip():
                    run.tail.append(line)
                continue
            message = json.loads(line[len(PREFIX):])
            if "update" in message:
                run.update = message["update"]
                if not run.phases or run.phases[-1] != run.update["phase"]:
                    run.phases.append(run.update["phase"])
            elif "result" in message:
                run.result = message["result"]
            elif "error" in message:
                run.error = wording.describe_json_line(json.dumps(message["error"]))
            elif "stopped" in message:
                run.stopped = True
        code = run.proc.wait()
    except Exception as exc:  # noqa: BLE001 - reported, never raised into Blender
        run.error, code = f"fine-tuning failed ({type(exc).__name__}: {exc})", 1
    if run.result is None and run.error is None and not (run.stopped or run.cancelled):
        last = run.tail[-1] if run.tail else f"exit code {code}"
        run.error = f"fine-tuning process failed: {last}; see the system console"
        print("mcdenoise: fine-tuning output:\n" + "\n".join(run.tail), file=sys.stderr)
    if code == STOPPED:
        run.stopped = True
    jobs.on_main_thread(lambda: _finish(run))


def _finish(run: Run) -> None:
    """Main thread: select the model for the scene it was tuned for and say what it did."""
    run.done = True
    if run.result is None:
        if run.cancelled or run.stopped:
            status.report("fine-tuning cancelled: no model written; 'Fine-tune on this shot' with the same "
                          "settings resumes it")
        else:
            status.report(f"fine-tuning: {run.error}", error=True)
        return
    note = result_text(run.result)
    scene = bpy.data.scenes.get(run.scene) if bpy.data.filepath == run.blend else None
    if scene is None:  # another file was opened meanwhile: leave it alone
        status.report(f"{note}; written to {run.output} (its .blend is no longer open: select it there under Weights)")
        return
    settings = scene.mcdenoise
    settings.finetune_note = note
    selected = runtime.bpy_abspath(settings.weights_path) if settings.weights_path else ""
    if run.result["kept"] == "tuned":
        settings.weights_path = bpy.path.relpath(str(run.output))
    elif selected and Path(selected) == run.output:  # this file now holds the shipped model
        settings.weights_path = ""
    status.report(note)


def result_text(result: dict) -> str:
    """What the panel says about a finished job."""
    held = result["held_frame"]
    if result["kept"] == "tuned":
        return f"Fine-tuned: {result['gain_db']:+.2f} dB on frame {held} vs the shipped model"
    if result.get("tuned_psnr") is None:
        return "Fine-tuning did not help (no training step fitted the minutes): kept the shipped model"
    return f"Fine-tuning did not help ({result['gain_db']:+.2f} dB on frame {held}): kept the shipped model"


def cancel() -> bool:
    """Stop the running job (SIGTERM, then a kill if it does not end); whether one was running."""
    run = _state["run"]
    if run is None or not run.running or run.proc.poll() is not None:
        return False
    run.cancelled = True
    run.proc.terminate()

    def kill_later() -> None:
        try:
            run.proc.wait(timeout=KILL_AFTER_SECONDS)
        except subprocess.TimeoutExpired:
            run.proc.kill()

    threading.Thread(target=kill_later, name="mcdenoise-finetune-stop", daemon=True).start()
    return True


def wait(timeout: float | None = None) -> Run | None:
    """Block until the job ended and its result is applied (main thread; background mode, where
    no timer runs)."""
    run = _state["run"]
    if run is not None and run.thread is not None:
        run.thread.join(timeout)
        jobs.run_follow_ups()
    return run


def _redraw_while_running() -> float | None:
    """Timer: redraw the panels while a job runs, so its progress moves."""
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type in {"PROPERTIES", "IMAGE_EDITOR"}:
                area.tag_redraw()
    run = _state["run"]
    return 1.0 if run is not None and run.running else None


@atexit.register
def _stop_at_exit() -> None:
    """Blender quits: the job stops with it (it resumes on the next click)."""
    run = _state["run"]
    if run is not None and run.proc.poll() is None:
        run.proc.terminate()
