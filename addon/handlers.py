"""Auto-denoise: a Denoised pass in every frame Blender writes, queued from its render handlers.

``render_write`` fires once per written frame (stills and animations), on the render job's
thread in an interactive Blender. It only finds the files the frame was written to and queues
them (:mod:`mcdenoise.jobs`); the worker thread adds the pass while Cycles renders on. Files are
found as Blender names them: ``frame_path(frame=, view=)`` for each view written to its own file
(stereo ``_L``/``_R``), and the output path itself for a still; the one that changed since
``render_pre`` (size, modification time or inode, compared with their own values, so a file
server's clock skew does not matter) is the one written. Frames an animation skips ("Overwrite"
off, file already there) raise no handler and stay untouched.

When no EXR was written (F12 without saving, or a format without passes such as PNG),
``render_complete`` has the Render Result saved to a temporary multilayer EXR on the main
thread and the denoised frame shown as an image. Errors never reach Blender's render: each is
reported (:mod:`mcdenoise.status`) and the next frame goes on.
"""

from __future__ import annotations

import atexit
import os
import traceback
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from . import composite, jobs, render_view, scene_io, status, temporal_state, worker, writeback

# Candidate output files of the frame being rendered -> their signature before it rendered;
# whether render_write found a file for it.
_frame: dict = {"before": {}, "written": False}


def views_in_files(render: bpy.types.RenderSettings) -> list[str]:
    """The views written each to its own file ('' for one file holding every view)."""
    if not render.use_multiview or render.image_settings.views_format != "INDIVIDUAL":
        return [""]
    if render.views_format == "STEREO_3D":
        return [name for name in ("left", "right") if name in render.views]
    return [view.name for view in render.views if view.use]


def still_path(render: bpy.types.RenderSettings, view: str) -> str:
    """Where a still render (F12 with Save, ``render(write_still=True)``) is written: the output
    path with the view's suffix and the extension, no frame number."""
    path = bpy.path.abspath(render.filepath)
    has_ext = path.lower().endswith(".exr")
    base = path[:-4] if has_ext else path
    suffix = render.views[view].file_suffix if view else ""
    return base + suffix + (".exr" if has_ext or render.use_file_extension else "")


def candidates(scene: bpy.types.Scene) -> list[str]:
    render, found = scene.render, []
    for view in views_in_files(render):
        for path in (render.frame_path(frame=scene.frame_current, view=view), still_path(render, view)):
            if path not in found:
                found.append(path)
    return found


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def written_files(scene: bpy.types.Scene) -> list[Path]:
    """The files of this frame that changed since ``render_pre``: one per view."""
    before = _frame["before"]
    return [Path(p) for p in candidates(scene) if (sig := _signature(p)) is not None and sig != before.get(p)]


def file_job(scene: bpy.types.Scene, path: Path) -> writeback.FileJob:
    """A snapshot of what the worker needs (read here, never from its thread)."""
    return writeback.FileJob(path, scene_io.make_job(scene, path, path), scene_io.view_layer_names(scene),
                             copy=scene.mcdenoise.keep_original)


def queue_file(scene: bpy.types.Scene, path: Path) -> None:
    frame, pass_name, job = scene.frame_current, scene.mcdenoise.pass_name, file_job(scene, path)
    # This frame's place in the render's temporal history (one per view layer and view).
    steps = temporal_state.RENDER.steps(scene.name, temporal_state.view_of(scene, path, frame), frame,
                                        temporal_state.plan(scene, job.job))

    def task(cancel):
        try:
            result = writeback.denoise(job, cancel=cancel, temporal=steps)
        except Exception as exc:  # noqa: BLE001 - never abort the render
            if worker.is_cancelled(exc):
                status.report(f"frame {frame}: cancelled, {path.name} left as it was")
            else:
                if not isinstance(exc, worker.AddonError):
                    traceback.print_exc()
                status.report(f"frame {frame}: {worker.describe(exc)}", error=True)
            return None
        for note in result.warnings:
            print(f"mcdenoise: warning: {note}")
        layers = ", ".join(layer for layer in result.layers if layer)
        note = "".join(f" ({n})" for n in (result.note, steps.note() if steps else "") if n)
        status.report(f"frame {frame}: '{pass_name}' pass added" + (f" ({layers})" if layers else "") + f" to {result.path}{note}")
        return lambda: composite.show_denoised(scene_name, result.path, pass_name)  # the Render Result's slot

    scene_name = scene.name
    jobs.submit(f"frame {frame}", task)


@persistent
def on_render_pre(scene: bpy.types.Scene, *_args) -> None:
    try:
        _frame.update(before={p: _signature(p) for p in candidates(scene)}, written=False)
    except Exception:  # noqa: BLE001
        traceback.print_exc()


@persistent
def on_render_write(scene: bpy.types.Scene, *_args) -> None:
    try:
        if not scene.mcdenoise.auto_denoise or not scene_io.is_multilayer_exr(scene):
            return
        paths = written_files(scene)
        _frame["written"] = bool(paths)
        if not paths:
            status.report(f"frame {scene.frame_current}: cannot find the written EXR ({scene.render.filepath})", error=True)
        for path in paths:
            queue_file(scene, path)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        status.report(f"auto-denoise failed: {exc}", error=True)


@persistent
def on_render_complete(scene: bpy.types.Scene, *_args) -> None:
    try:
        if scene.mcdenoise.auto_denoise and not _frame["written"]:
            name = scene.name
            if bpy.app.background:
                _denoise_render_result(name)
            else:  # save_render and new images belong to the main thread
                jobs.on_main_thread(lambda: _denoise_render_result(name))
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        status.report(f"auto-denoise failed: {exc}", error=True)
    if bpy.app.background:
        jobs.wait()


@persistent
def on_render_cancel(scene: bpy.types.Scene, *_args) -> None:
    if bpy.app.background:
        jobs.wait()
    elif jobs.cancel():  # Esc on the render stops its denoising too
        status.report("render cancelled: queued frames not denoised")


def _denoise_render_result(scene_name: str) -> None:
    """Main thread: the Render Result to a temporary EXR, denoised into an image by the queue."""
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    reason = "no EXR was written" if scene_io.is_multilayer_exr(scene) else "output format has no passes"
    if reason != "no EXR was written":
        print("mcdenoise: warning: the output format keeps no passes; denoising the Render Result into an "
              "image only (use 'Set up passes' for a multilayer EXR with a Denoised pass)")
    try:
        in_path = scene_io.save_render_result(scene)
    except Exception as exc:  # noqa: BLE001
        status.report(f"frame {scene.frame_current}: {worker.describe(exc)}", error=True)
        return
    frame, name = scene.frame_current, "Render Result (denoised)"
    job = writeback.FileJob(in_path, scene_io.make_job(scene, in_path, in_path), scene_io.view_layer_names(scene),
                            out_path=scene_io.scratch_output(name))
    shown = scene_io.shown_layer(scene)

    def task(cancel):
        try:
            result = writeback.denoise(job, cancel=cancel)
        except Exception as exc:  # noqa: BLE001
            status.report(f"frame {frame}: {worker.describe(exc)}", error=True)
            return None
        finally:
            in_path.unlink(missing_ok=True)

        def show() -> None:
            scene_io.show_result(name, result, shown)
            status.report(f"frame {frame}: denoised into image '{name}' ({reason})")
            composite.show_denoised(scene_name, result.path, job.job.pass_name)

        return show

    jobs.submit(f"frame {frame} (Render Result)", task)
    if bpy.app.background:
        jobs.wait()


def _wait_at_exit() -> None:
    """A script that renders with bpy as a module and ends: finish the queue first."""
    jobs.wait()


@persistent
def on_render_start_memory(*_args) -> None:
    """Free the in-Blender model so Cycles has the GPU memory it would otherwise keep
    (:func:`worker.render_started`); kept again between renders, for the Denoise button."""
    worker.render_started()


@persistent
def on_render_end_memory(*_args) -> None:
    worker.render_ended()


HANDLERS = (
    (bpy.app.handlers.render_init, temporal_state.restart_render_history),
    (bpy.app.handlers.render_cancel, temporal_state.drop_after_cancel),
    (bpy.app.handlers.render_pre, on_render_pre),
    (bpy.app.handlers.render_pre, render_view.on_render_pre),
    (bpy.app.handlers.render_write, on_render_write),
    (bpy.app.handlers.render_complete, temporal_state.release_after_render),  # queued before on_render_complete waits
    (bpy.app.handlers.render_complete, on_render_complete),
    (bpy.app.handlers.render_cancel, on_render_cancel),
    # Last: at render_complete a command-line render first finishes its queue, then the render
    # counts as ended for the model's memory.
    (bpy.app.handlers.render_pre, on_render_start_memory),
    (bpy.app.handlers.render_complete, on_render_end_memory),
    (bpy.app.handlers.render_cancel, on_render_end_memory),
)


def register() -> None:
    for event, handler in HANDLERS:
        if handler not in event:
            event.append(handler)
    if not bpy.app.timers.is_registered(jobs.poll):
        bpy.app.timers.register(jobs.poll, first_interval=jobs.POLL_SECONDS, persistent=True)
    atexit.register(_wait_at_exit)


def unregister() -> None:
    for event, handler in HANDLERS:
        while handler in event:
            event.remove(handler)
    if bpy.app.timers.is_registered(jobs.poll):
        bpy.app.timers.unregister(jobs.poll)
    atexit.unregister(_wait_at_exit)
    jobs.cancel()
    worker.render_ended()
    worker.release_models()
