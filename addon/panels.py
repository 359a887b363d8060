"""The Denoise button and settings: Image Editor sidebar (tab "mcdenoise") and Render properties."""

from __future__ import annotations

import bpy

from . import composite, finetune_ui, jobs, scene_io, sequence, status


def draw_common(layout: bpy.types.UILayout, context: bpy.types.Context, image_name: str) -> None:
    settings = context.scene.mcdenoise
    layout.operator("mcdenoise.denoise_image", icon="SHADERFX").image_name = image_name
    layout.prop(settings, "auto_denoise")
    col = layout.column(align=True)
    col.prop(settings, "quality")
    col.prop(settings, "pass_name")
    col.prop(settings, "tile")
    col.prop(settings, "require_aux")
    col.prop(settings, "keep_original")
    composite.draw(layout, context)
    sequence.draw(layout, context)
    finetune_ui.draw(layout, context)
    problems = scene_io.setup_problems(context)
    if problems:
        box = layout.box()
        for problem in problems:
            box.label(text=problem, icon="ERROR")
        box.operator("mcdenoise.setup_passes", icon="CHECKMARK")
    if jobs.pending():
        row = layout.row()
        row.label(text=status.now() or f"{jobs.pending()} frame(s) queued", icon="SORTTIME")
        row.operator("mcdenoise.cancel_queue", text="", icon="CANCEL")
    if status.last():
        layout.label(text=status.last(), icon="ERROR" if status.is_error() else "INFO")


class MCDENOISE_PT_image_editor(bpy.types.Panel):
    bl_label = "Denoise"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "mcdenoise"

    def draw(self, context: bpy.types.Context) -> None:
        image = context.space_data.image
        draw_common(self.layout, context, image.name if image is not None else "")


class MCDENOISE_PT_render(bpy.types.Panel):
    bl_label = "mcdenoise"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"

    def draw(self, context: bpy.types.Context) -> None:
        draw_common(self.layout, context, "Render Result")
