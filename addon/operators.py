"""The one-click operators: Denoise (Render Result or an opened EXR) and Set up passes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import runtime, scene_io, wording, worker


def describe(exc: BaseException) -> str:
    """Core errors worded with this add-on's own controls, add-on errors as they are; anything
    else is a bug worth its type name."""
    runtime.core()
    from mcdenoise.errors import McDenoiseError  # noqa: PLC0415

    if isinstance(exc, McDenoiseError):
        return wording.describe(exc)
    if isinstance(exc, worker.AddonError):
        return str(exc)
    return f"denoising failed ({type(exc).__name__}: {exc}); see the system console"


def is_cancelled(exc: BaseException) -> bool:
    runtime.core()
    from mcdenoise.errors import Cancelled  # noqa: PLC0415

    return isinstance(exc, Cancelled)


class MCDENOISE_OT_denoise_image(bpy.types.Operator):
    """Denoise the Render Result or an opened multilayer EXR; the result opens as a new image"""

    bl_idname = "mcdenoise.denoise_image"
    bl_label = "Denoise"
    bl_options = {"REGISTER"}

    image_name: StringProperty(name="Image", description="Image to denoise; empty = the one in the Image Editor, else the Render Result")

    _thread = None
    _timer = None

    # ------------------------------------------------------------------ setup

    def _source(self, context: bpy.types.Context) -> bpy.types.Image | None:
        if self.image_name:
            return bpy.data.images.get(self.image_name)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
            return space.image
        return bpy.data.images.get("Render Result")

    def _prepare(self, context: bpy.types.Context) -> worker.Job:
        image = self._source(context)
        self._temp_input = None
        if image is None:
            raise worker.AddonError("no image to denoise: render a frame (F12) or open a multilayer EXR in the Image Editor")
        if image.type == "RENDER_RESULT":
            in_path = self._temp_input = scene_io.save_render_result(context.scene, scene_io.temp_dir())
            out_path = in_path.with_name(in_path.stem + "_denoised.exr")
        else:
            in_path = Path(bpy.path.abspath(image.filepath_raw or image.filepath))
            if image.source != "FILE" or in_path.suffix.lower() != ".exr":
                raise worker.AddonError(f"'{image.name}' is not an EXR file: open a multilayer EXR with albedo/normal passes, or render a frame")
            # Next to the source, never over it: an artist's original stays untouched.
            folder = in_path.parent if os.access(in_path.parent, os.W_OK) else scene_io.temp_dir()
            out_path = folder / f"{in_path.stem}_denoised.exr"
        self._result_name = f"{image.name} (denoised)"
        return scene_io.make_job(context.scene, in_path, out_path)

    def _finish(self, context: bpy.types.Context, outcome: worker.Outcome) -> None:
        if self._temp_input is not None:
            self._temp_input.unlink(missing_ok=True)
        if outcome.denoised is not None:
            image = scene_io.show_pixels(self._result_name, outcome.denoised)
        else:
            image = scene_io.show_file(self._result_name, outcome.out_path)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR":
            space.image = image
        for note in outcome.warnings:
            self.report({"WARNING"}, note)
        message = f"Denoised into '{image.name}' (pass '{context.scene.mcdenoise.pass_name}' in {outcome.out_path})"
        context.scene.mcdenoise.status = message
        self.report({"INFO"}, message)

    def _fail(self, context: bpy.types.Context, exc: BaseException) -> set[str]:
        if getattr(self, "_temp_input", None) is not None:
            self._temp_input.unlink(missing_ok=True)
        if is_cancelled(exc):
            context.scene.mcdenoise.status = "Cancelled"
            self.report({"WARNING"}, "Denoising cancelled")
            return {"CANCELLED"}
        message = describe(exc)
        print(f"mcdenoise: {message}")
        context.scene.mcdenoise.status = f"Error: {message}"
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    # ------------------------------------------------------------------ synchronous (scripts, background)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            outcome = worker.run(self._prepare(context))
            self._finish(context, outcome)
        except Exception as exc:  # noqa: BLE001 - a failing model must never take Blender down
            return self._fail(context, exc)
        return {"FINISHED"}

    # ------------------------------------------------------------------ interactive: thread + timer

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        try:
            job = self._prepare(context)
        except Exception as exc:  # noqa: BLE001
            return self._fail(context, exc)
        self._cancel, self._done, self._started = threading.Event(), [0, 0], time.monotonic()
        self._outcome = self._error = None

        def progress(done: int, total: int) -> None:
            self._done[:] = [done, total]
            if self._cancel.is_set():
                runtime.core()
                from mcdenoise.errors import Cancelled  # noqa: PLC0415

                raise Cancelled("denoising cancelled")

        def target() -> None:
            try:
                self._outcome = worker.run(job, progress, self._cancel)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc

        self._thread = threading.Thread(target=target, name="mcdenoise", daemon=True)
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC":
            self._cancel.set()  # the thread stops at its next tile (or the worker is killed)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done, total = self._done
        wm = context.window_manager
        if total:
            wm.progress_update(int(100 * done / total))
        elapsed = time.monotonic() - self._started
        tiles = f"tile {done}/{total}, " if total else ""
        context.workspace.status_text_set(f"mcdenoise: denoising ({tiles}{elapsed:.0f} s), Esc cancels")
        if self._thread.is_alive():
            return {"RUNNING_MODAL"}
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        if self._error is not None:
            return self._fail(context, self._error)
        try:
            self._finish(context, self._outcome)
        except Exception as exc:  # noqa: BLE001
            return self._fail(context, exc)
        return {"FINISHED"}


class MCDENOISE_OT_setup_passes(bpy.types.Operator):
    """Switch to Cycles with its own denoiser off, enable Denoising Data passes and set the output to multilayer EXR"""

    bl_idname = "mcdenoise.setup_passes"
    bl_label = "Set up passes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        scene.render.engine = "CYCLES"
        # Cycles' denoiser only costs render time here: mcdenoise reads the raw render (Noisy
        # Image, or Combined when that denoiser is off). The viewport's denoiser is left alone.
        scene.cycles.use_denoising = False
        for view_layer in scene.view_layers:
            view_layer.cycles.denoising_store_passes = True
        scene_io.use_multilayer_exr(scene.render.image_settings)
        self.report({"INFO"}, "Cycles with its own denoiser off, Denoising Data passes and multilayer EXR output are on")
        return {"FINISHED"}
