"""Extension preferences: where PyTorch comes from, the compute device and the weights file."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import devices, runtime

BACKENDS = [
    ("AUTO", "Automatic", "PyTorch inside Blender when importable, otherwise the external Python"),
    ("BLENDER", "Inside Blender", "Import PyTorch in Blender's own Python (installed with the button below or already there)"),
    ("EXTERNAL", "External Python", "Run 'python -m mcdenoise denoise' from another environment as a worker process"),
]


class McDenoisePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend: EnumProperty(name="Run the model", items=BACKENDS, default="AUTO")
    python_path: StringProperty(
        name="External Python",
        description="Python of an environment where mcdenoise is installed from a clone ('pip install -e .' or its built wheel), e.g. ~/mcdenoise-env/bin/python",
        subtype="FILE_PATH",
    )
    device: EnumProperty(name="Device", items=devices.ITEMS, default="AUTO", description="Where the model runs")
    weights_path: StringProperty(
        name="Weights",
        description="A .pt file from 'mcdenoise train'; empty = the model shipped with the extension",
        subtype="FILE_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend")
        devices.draw(layout, self)
        layout.prop(self, "weights_path")
        box = layout.box()
        missing = runtime.missing_modules()
        if missing:
            box.label(text=f"Not importable in Blender: {', '.join(missing)}", icon="ERROR")
        elif runtime.known_import_problem():  # found, but 'import torch' failed: a partial or wrong install
            box.label(text="PyTorch is found but fails to import: install it again", icon="ERROR")
        else:
            box.label(text="PyTorch and OpenEXR are importable in Blender", icon="CHECKMARK")
        row = box.row()
        row.operator("mcdenoise.install_torch", text="Install PyTorch (CPU)").variant = "CPU"
        row.operator("mcdenoise.install_torch", text="Install PyTorch (CUDA)").variant = "CUDA"
        box.label(text=f"Installs into {runtime.user_site_dir() or '?'} (about 200 MB CPU, 2.5 GB CUDA)")
        if not getattr(bpy.app, "online_access", True):
            box.label(text="Blender is offline: allow Online Access in System > Network to install", icon="INFO")
        box = layout.box()
        box.prop(self, "python_path")
        box.label(text="Used by 'External Python' (or Automatic without PyTorch in Blender)")


def get(context: bpy.types.Context | None = None) -> McDenoisePreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences
