"""The one-click operators: Denoise (Render Result or an opened EXR) and Set up passes."""

from __future__ import annotations

import os
import threading
import time

import bpy
from bpy.props import StringProperty

from . import composite, jobs, modal, render_view, scene_io, status, worker, writeback


class MCDENOISE_OT_denoise_image(bpy.types.Operator):
    """Denoise the Render Result or an opened multilayer EXR; the result opens as a new image"""

    bl_idname = "mcdenoise.denoise_image"
    bl_label = "Denoise"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(name="Image", description="Image to denoise; empty = the one in the Image Editor, else the Render Result")

    _thread = None
    _timer = None
    _progress = False  # modal.start began a progress bar

    # ------------------------------------------------------------------ setup

    def _source(self, context: bpy.types.Context) -> bpy.types.Image | None:
        if self.image_name:
            return bpy.data.images.get(self.image_name)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
            return space.image
        return bpy.data.images.get("Render Result")

    def _prepare(self, context: bpy.types.Context) -> writeback.FileJob:
        image = self._source(context)
        self._temp_input = None
        if image is None:
            raise worker.AddonError("no image to denoise: render a frame (F12) or open a multilayer EXR in the Image Editor")
        self._result_name = f"{image.name} (denoised)"
        self._shown_layer = scene_io.shown_layer(context.scene)
        layers = scene_io.view_layer_names(context.scene)
        self._from_render = image.type == "RENDER_RESULT"
        if image.type == "RENDER_RESULT":
            render_view.check_render_slot(image)
            in_path = self._temp_input = scene_io.save_render_result(context.scene)
            out_path = scene_io.scratch_output(self._result_name)
        else:
            space = getattr(context, "space_data", None)
            user = space.image_user if space is not None and space.type == "IMAGE_EDITOR" and space.image == image else None
            in_path, scratch = scene_io.image_file(image, user.frame_current if user is not None else context.scene.frame_current)
            # Next to the source, never over it: an artist's original stays untouched.
            out_path = writeback.copy_path(in_path)
            if scratch:
                self._temp_input = in_path
                out_path = scene_io.scratch_output(self._result_name)
            elif not os.access(in_path.parent, os.W_OK):
                out_path = scene_io.scratch_output(self._result_name)
        job = scene_io.make_job(context.scene, in_path, out_path)
        return writeback.FileJob(in_path, job, layers, copy=True, out_path=out_path)

    def _finish(self, context: bpy.types.Context, result: writeback.FileResult) -> None:
        image = scene_io.show_result(self._result_name, result, self._shown_layer)
        settings = context.scene.mcdenoise
        # The Render Result's own 'Denoised' slot, where the artist already looks (J compares).
        in_slot = self._from_render and settings.show_denoised and composite.into_slot(context.scene, result.path, settings.pass_name)
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR" and not in_slot:
            space.image = image
        for note in result.warnings:
            self.report({"WARNING"}, note)
        message = f"Denoised into '{image.name}' (pass '{context.scene.mcdenoise.pass_name}' in {result.path})"
        status.report(message)
        self.report({"INFO"}, message)

    def _cleanup(self) -> None:
        if getattr(self, "_temp_input", None) is not None:
            self._temp_input.unlink(missing_ok=True)

    def _fail(self, context: bpy.types.Context, exc: BaseException) -> set[str]:
        self._cleanup()
        if worker.is_cancelled(exc):
            status.report("Cancelled")
            self.report({"WARNING"}, "Denoising cancelled")
            return {"CANCELLED"}
        message = worker.describe(exc)
        status.report(message, error=True)
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    # ------------------------------------------------------------------ synchronous (scripts, background)

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            result = writeback.denoise(self._prepare(context))
            self._cleanup()
            self._finish(context, result)
        except Exception as exc:  # noqa: BLE001 - a failing model must never take Blender down
            return self._fail(context, exc)
        return {"FINISHED"}

    # ------------------------------------------------------------------ interactive: thread + timer

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        try:
            file_job = self._prepare(context)
        except Exception as exc:  # noqa: BLE001
            return self._fail(context, exc)
        self._cancel, self._done, self._started = threading.Event(), [0, 0], time.monotonic()
        self._result = self._error = None

        def progress(done: int, total: int) -> None:
            self._done[:] = [done, total]

        def target() -> None:
            try:
                self._result = writeback.denoise(file_job, progress, self._cancel)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc

        self._thread = threading.Thread(target=target, name="mcdenoise", daemon=True)
        self._thread.start()
        modal.start(self, context, 0.2, progress_total=100)
        return {"RUNNING_MODAL"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (a file is loaded, the window closes): stop the thread at its
        next tile and leave nothing behind; its partial output is a temp that is removed."""
        if getattr(self, "_cancel", None) is not None:
            self._cancel.set()
        modal.stop(self, context)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._cleanup()

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC":
            self._cancel.set()  # the thread stops at its next tile (or the worker is killed)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done, total = self._done
        if total:
            context.window_manager.progress_update(int(100 * done / total))
        elapsed = time.monotonic() - self._started
        tiles = f"tile {done}/{total}, " if total else ""
        context.workspace.status_text_set(f"mcdenoise: denoising ({tiles}{elapsed:.0f} s), Esc cancels")
        if self._thread.is_alive():
            return {"RUNNING_MODAL"}
        modal.stop(self, context)
        if self._error is not None:
            return self._fail(context, self._error)
        self._cleanup()
        try:
            self._finish(context, self._result)
        except Exception as exc:  # noqa: BLE001
            return self._fail(context, exc)
        return {"FINISHED"}


class MCDENOISE_OT_setup_passes(bpy.types.Operator):
    """Switch to Cycles with its own denoiser off, enable Denoising Data (and Vector) passes and set the output to multilayer EXR"""

    bl_idname = "mcdenoise.setup_passes"
    bl_label = "Set up passes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        scene.render.engine = "CYCLES"
        # Cycles' denoiser only costs render time here: mcdenoise reads the raw render (Noisy
        # Image, or Combined when that denoiser is off). The viewport's denoiser is left alone.
        scene.cycles.use_denoising = False
        # The Vector pass feeds the temporal path. With motion blur on Cycles writes it all zeros;
        # motion blur is the artist's look, so it is left as it is and only mentioned.
        vector = scene.mcdenoise.temporal
        for view_layer in scene.view_layers:
            view_layer.cycles.denoising_store_passes = True
            view_layer.use_pass_vector = view_layer.use_pass_vector or vector
        scene_io.use_multilayer_exr(scene.render.image_settings)
        message = "Cycles with its own denoiser off, Denoising Data passes and multilayer EXR output are on"
        if vector:
            message += ("; Vector pass on, but with motion blur on it holds no motion: animations are denoised frame "
                        "by frame (turn motion blur off for temporal denoising)" if scene.render.use_motion_blur else
                        "; Vector pass on (temporal denoising of animations)")
        self.report({"INFO"}, message)
        return {"FINISHED"}


class MCDENOISE_OT_cancel_queue(bpy.types.Operator):
    """Stop auto-denoising: the frame being denoised stays as rendered, queued frames are dropped"""

    bl_idname = "mcdenoise.cancel_queue"
    bl_label = "Cancel denoising"

    def execute(self, context: bpy.types.Context) -> set[str]:
        stopped = jobs.cancel()
        status.report(f"cancelled: {stopped} frame(s) not denoised" if stopped else "nothing to cancel")
        return {"FINISHED"}
