""""Fine-tune on this shot" in the panel: its settings, the button, progress with Cancel, and
the result. The job itself is :mod:`finetune_job`."""

from __future__ import annotations

import bpy
from bpy.props import IntProperty

from . import finetune_job, worker


class MCDENOISE_OT_finetune(bpy.types.Operator):
    """Tune the shipped model on this shot's own frames in the background, within the minutes given; the model is written next to the .blend and used for this scene's denoising"""

    bl_idname = "mcdenoise.finetune"
    bl_label = "Fine-tune on this shot"

    max_steps: IntProperty(name="Steps at most", description="Cap on the training steps, 0 = as many as the minutes "
                           "allow", default=0, min=0, options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            run = finetune_job.start(context.scene, self.max_steps)
        except Exception as exc:  # noqa: BLE001 - never take Blender down
            self.report({"ERROR"}, worker.describe(exc))
            return {"CANCELLED"}
        if not bpy.app.background:
            self.report({"INFO"}, f"Fine-tuning in the background; the model goes to {run.output.name}")
            return {"FINISHED"}
        finetune_job.wait()  # a script or a command-line Blender: no timer would apply the result
        if run.error is not None:
            self.report({"ERROR"}, run.error)
            return {"CANCELLED"}
        if run.result is None:
            self.report({"WARNING"}, "Fine-tuning stopped before it finished; no model written")
            return {"CANCELLED"}
        self.report({"INFO"}, finetune_job.result_text(run.result))
        return {"FINISHED"}


class MCDENOISE_OT_finetune_cancel(bpy.types.Operator):
    """Stop fine-tuning: no model is written; the same settings resume it later"""

    bl_idname = "mcdenoise.finetune_cancel"
    bl_label = "Cancel fine-tuning"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not finetune_job.cancel():
            self.report({"INFO"}, "no fine-tuning is running")
        return {"FINISHED"}


def draw(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The panel's fine-tune box."""
    settings = context.scene.mcdenoise
    box = layout.box()
    run = finetune_job.current()
    if run is not None and run.running:
        row = box.row()
        row.label(text=f"Fine-tuning: {run.progress_text()}", icon="SORTTIME")
        row.operator("mcdenoise.finetune_cancel", text="", icon="CANCEL")
        done, total = run.update.get("done", 0), run.update.get("total", 0)
        if total:  # the phase's share done: renders, then training steps
            box.progress(factor=min(done / total, 1.0), type="BAR", text=f"{run.update['phase']} {done}/{total}")
    else:
        row = box.row(align=True)
        row.prop(settings, "finetune_frames")
        row.prop(settings, "finetune_minutes")
        box.operator("mcdenoise.finetune", icon="MODIFIER")
    box.prop(settings, "weights_path")
    if settings.finetune_note:
        box.label(text=settings.finetune_note, icon="INFO")
    if run is not None and not run.running and run.result is None and run.blend == bpy.data.filepath:
        if run.error is not None:
            box.label(text=run.error, icon="ERROR")
        else:
            box.label(text="Cancelled: no model written; the same settings resume it", icon="INFO")


classes = (MCDENOISE_OT_finetune, MCDENOISE_OT_finetune_cancel)
