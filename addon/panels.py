"""The Denoise button and settings: Image Editor sidebar (tab "mcdenoise") and Render properties."""

from __future__ import annotations

import bpy

from . import scene_io


def draw_common(layout: bpy.types.UILayout, context: bpy.types.Context, image_name: str) -> None:
    settings = context.scene.mcdenoise
    layout.operator("mcdenoise.denoise_image", icon="SHADERFX").image_name = image_name
    layout.prop(settings, "auto_denoise")
    col = layout.column(align=True)
    col.prop(settings, "quality")
    col.prop(settings, "pass_name")
    col.prop(settings, "tile")
    col.prop(settings, "require_aux")
    problems = scene_io.setup_problems(context)
    if problems:
        box = layout.box()
        for problem in problems:
            box.label(text=problem, icon="ERROR")
        box.operator("mcdenoise.setup_passes", icon="CHECKMARK")
    if settings.status:
        layout.label(text=settings.status, icon="ERROR" if settings.status.startswith("Error") else "INFO")


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
