"""Per-scene settings at ``scene.mcdenoise`` (saved with the .blend, read by render farms)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

# mirrors mcdenoise.models.tiers.QUALITIES (kept literal: the panel must draw without importing the core)
QUALITIES = [
    ("fast", "Fast", "The small model: about half the time of Balanced, for previews"),
    ("balanced", "Balanced", "The default model"),
    ("high", "High", "A wider model averaged over 4 rotations: about 5x the time of Balanced, cleaner finals"),
]


class McDenoiseSceneSettings(bpy.types.PropertyGroup):
    auto_denoise: BoolProperty(
        name="Auto-denoise",
        description="After each rendered frame, add a denoised pass to the written multilayer EXR",
        default=False,
    )
    quality: EnumProperty(
        name="Quality", items=QUALITIES, default="balanced",
        description="Model size and time per frame (ignored when a weights file is set in the preferences)",
    )
    pass_name: StringProperty(name="Pass name", description="Name of the pass written into the EXR", default="Denoised")
    tile: IntProperty(
        name="Tile size", description="Pixels per tile (smaller uses less memory, same result); 0 = whole frame",
        default=1024, min=0, soft_max=4096,
    )
    require_aux: BoolProperty(
        name="Require albedo/normal",
        description="Fail instead of denoising from colour only when Denoising Data passes are missing",
        default=False,
    )
    status: StringProperty(name="Last result", description="What the last denoise did, or why it failed", default="")
