"""mcdenoise for Blender: one-click denoise and auto-denoise of Cycles renders.

A thin layer over the core package vendored in ``vendor/``; torch, OpenEXR and the core are only
imported when something is denoised, so registering works on a Blender without PyTorch.
"""

from __future__ import annotations

import bpy

from . import external, handlers, runtime
from .composite import MCDENOISE_OT_recomposite
from .finetune_ui import MCDENOISE_OT_finetune, MCDENOISE_OT_finetune_cancel
from .install import MCDENOISE_OT_install_torch
from .operators import MCDENOISE_OT_cancel_queue, MCDENOISE_OT_denoise_image, MCDENOISE_OT_setup_passes
from .panels import MCDENOISE_PT_image_editor, MCDENOISE_PT_render
from .preferences import McDenoisePreferences
from .properties import McDenoiseSceneSettings
from .sequence import MCDENOISE_OT_denoise_sequence

classes = (
    McDenoisePreferences,
    McDenoiseSceneSettings,
    MCDENOISE_OT_denoise_image,
    MCDENOISE_OT_setup_passes,
    MCDENOISE_OT_cancel_queue,
    MCDENOISE_OT_denoise_sequence,
    MCDENOISE_OT_recomposite,
    MCDENOISE_OT_finetune,
    MCDENOISE_OT_finetune_cancel,
    MCDENOISE_OT_install_torch,
    MCDENOISE_PT_image_editor,
    MCDENOISE_PT_render,
)


def register() -> None:
    runtime.add_paths()
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.mcdenoise = bpy.props.PointerProperty(type=McDenoiseSceneSettings)
    handlers.register()


def unregister() -> None:
    handlers.unregister()
    external.close()  # the external Python's worker process
    del bpy.types.Scene.mcdenoise
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
    runtime.remove_paths()
