"""Per-scene settings at ``scene.mcdenoise`` (saved with the .blend, read by render farms)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import runtime

# The menu reads the core's own table of tiers. ``mcdenoise.choices`` is pure Python, so this
# works on a Blender without PyTorch; ``runtime.core()`` makes it the vendored copy's table.
runtime.core()
from mcdenoise.choices import DEFAULT_MAX_MEMORY_GIB, DEFAULT_QUALITY, MIN_TILE_SIDE, TIERS

QUALITIES = [(tier.name, tier.label, tier.description) for tier in TIERS.values()]


def tile_side(settings) -> int:
    """The scene's tile size as the core takes it: 0 is the whole frame, other sides below the
    core's minimum become the minimum (the CLI refuses them, and they would be tens of times
    slower for the same result); a .blend saved with such a value still works."""
    return settings.tile if settings.tile == 0 else max(settings.tile, MIN_TILE_SIDE)


class McDenoiseSceneSettings(bpy.types.PropertyGroup):
    auto_denoise: BoolProperty(
        name="Auto-denoise",
        description="After each rendered frame, add a denoised pass to the written multilayer EXR",
        default=False,
    )
    quality: EnumProperty(
        name="Quality", items=QUALITIES, default=DEFAULT_QUALITY,
        description="Model size and time per frame (ignored when a weights file is set for the scene or in the preferences)",
    )
    pass_name: StringProperty(name="Pass name", description="Name of the pass written into the EXR", default="Denoised")
    tile: IntProperty(
        name="Tile size", description="Largest tile side in pixels (smaller uses less memory, same result); 0 = whole frame. "
        f"Either is cut further when the frame does not fit {DEFAULT_MAX_MEMORY_GIB:g} GiB (CPU) or the GPU's free memory",
        default=1024, min=0, soft_max=4096,
    )
    require_aux: BoolProperty(
        name="Require albedo/normal",
        description="Fail instead of denoising from colour only when Denoising Data passes are missing",
        default=False,
    )
    keep_original: BoolProperty(
        name="Keep original",
        description="Auto-denoise writes '<name>_denoised.exr' beside each rendered EXR (every pass plus the denoised "
        "one) instead of adding the pass to the EXR itself",
        default=False,
    )
    weights_path: StringProperty(
        name="Weights", subtype="FILE_PATH",
        description="This scene's model: a .pt file ('Fine-tune on this shot' sets it); used instead of Quality and of "
        "the preferences' Weights; empty = those",
    )
    finetune_frames: StringProperty(
        name="Frames", description="Frames of the shot to fine-tune on, e.g. 1-48 (one is held aside to check the result); "
        "empty = the scene's frame range",
    )
    finetune_minutes: FloatProperty(
        name="Minutes", description="The whole budget of 'Fine-tune on this shot', rendering included",
        default=10.0, min=0.5, soft_max=60.0,
    )
    finetune_note: StringProperty(name="Fine-tune result", description="What the last fine-tune of this scene gave")
    show_denoised: BoolProperty(
        name="Show in Render Result",
        description="After a frame is denoised in the open Blender, run the compositor again on its Denoised pass into "
        "the Render Result's 'Denoised' slot (J in the Image Editor switches between it and the render)",
        default=True,
    )
    temporal: BoolProperty(
        name="Temporal (animations)",
        description="Stabilise each frame of an animation with the frames before it, brought into place by the Vector "
        "pass (needs motion blur off and PyTorch in Blender); against flicker. Frames without a Vector pass are "
        "denoised one by one",
        default=True,
    )
