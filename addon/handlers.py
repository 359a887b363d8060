"""Auto-denoise: add a Denoised pass to every frame Blender writes, from its render handlers.

``render_write`` fires once per written frame (stills and animations) after the file is on disk,
so a multilayer EXR output is denoised in place (the core writes atomically and keeps every pass).
When no EXR was written (F12 without saving, or a format without passes such as PNG),
``render_complete`` saves the Render Result to a temporary multilayer EXR and shows the denoised
frame as an image instead. A handler that raised
would abort an overnight animation, so every error is caught, printed and kept in
``scene.mcdenoise.status``.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from . import scene_io, worker

# When the current frame started rendering, and whether render_write denoised a file for it.
_frame = {"started": 0.0, "written": False}


def written_frame(scene: bpy.types.Scene) -> Path | None:
    """The EXR Blender just wrote: ``frame_path`` for animations (and '#' in the path), the plain
    output path for a still (Blender 5 writes stills without a frame number)."""
    render = scene.render
    still = Path(bpy.path.abspath(render.filepath))
    if render.use_file_extension and still.suffix.lower() != ".exr":
        still = still.with_name(still.name + ".exr")
    candidates = [Path(render.frame_path(frame=scene.frame_current)), still]
    fresh = [p for p in candidates if p.is_file() and p.stat().st_mtime >= _frame["started"] - 1.0]
    return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None


def report(scene: bpy.types.Scene, message: str, error: bool = False) -> None:
    scene.mcdenoise.status = f"Error: {message}" if error else message
    print(f"mcdenoise: {'ERROR: ' if error else ''}{message}", file=sys.stderr if error else sys.stdout)


def _denoise(scene: bpy.types.Scene, in_path: Path, out_path: Path) -> worker.Outcome | None:
    from .operators import describe  # noqa: PLC0415

    try:
        outcome = worker.run(scene_io.make_job(scene, in_path, out_path))
    except Exception as exc:  # noqa: BLE001 - never abort the render
        if not isinstance(exc, worker.AddonError):
            traceback.print_exc()
        report(scene, f"frame {scene.frame_current}: {describe(exc)}", error=True)
        return None
    for note in outcome.warnings:
        print(f"mcdenoise: warning: {note}")
    return outcome


@persistent
def on_render_pre(scene: bpy.types.Scene, *_args) -> None:
    _frame.update(started=time.time(), written=False)


@persistent
def on_render_write(scene: bpy.types.Scene, *_args) -> None:
    try:
        settings = scene.mcdenoise
        if not settings.auto_denoise or not scene_io.is_multilayer_exr(scene):
            return
        path = written_frame(scene)
        _frame["written"] = path is not None
        if path is None:
            report(scene, f"frame {scene.frame_current}: cannot find the written EXR ({scene.render.filepath})", error=True)
            return
        if _denoise(scene, path, path) is not None:
            report(scene, f"frame {scene.frame_current}: '{settings.pass_name}' pass added to {path}")
    except Exception as exc:  # noqa: BLE001
        report(scene, f"auto-denoise failed: {exc}", error=True)


@persistent
def on_render_complete(scene: bpy.types.Scene, *_args) -> None:
    try:
        if not scene.mcdenoise.auto_denoise or _frame["written"]:
            return
        if not scene_io.is_multilayer_exr(scene):
            print("mcdenoise: warning: the output format keeps no passes; denoising the Render Result into an "
                  "image only (use 'Set up passes' for a multilayer EXR with a Denoised pass)")
        in_path = scene_io.save_render_result(scene, scene_io.temp_dir())
        outcome = _denoise(scene, in_path, in_path.with_name(in_path.stem + "_denoised.exr"))
        in_path.unlink(missing_ok=True)
        if outcome is None:
            return
        name = "Render Result (denoised)"
        if bpy.app.background:
            _show(name, outcome)
        else:  # handlers run on the render thread; new images are made on the main thread
            bpy.app.timers.register(lambda: _show(name, outcome), first_interval=0.0)
        why = "no EXR was written" if scene_io.is_multilayer_exr(scene) else "output format has no passes"
        report(scene, f"frame {scene.frame_current}: denoised into image '{name}' ({why})")
    except Exception as exc:  # noqa: BLE001
        report(scene, f"auto-denoise failed: {exc}", error=True)


def _show(name: str, outcome: worker.Outcome) -> None:
    if outcome.denoised is not None:
        scene_io.show_pixels(name, outcome.denoised)
    else:
        scene_io.show_file(name, outcome.out_path)


HANDLERS = (
    (bpy.app.handlers.render_pre, on_render_pre),
    (bpy.app.handlers.render_write, on_render_write),
    (bpy.app.handlers.render_complete, on_render_complete),
)


def register() -> None:
    for event, handler in HANDLERS:
        if handler not in event:
            event.append(handler)


def unregister() -> None:
    for event, handler in HANDLERS:
        while handler in event:
            event.remove(handler)
