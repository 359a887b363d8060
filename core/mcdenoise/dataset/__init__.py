"""Procedurally generated Cycles training data.

``layout`` (file naming) and ``scene_description`` (seed -> scene dict) are pure Python and safe
to import anywhere; ``blender_scene`` and ``render`` import bpy lazily, only when they render.
"""

from mcdenoise.dataset.layout import (
    PASSES,
    SceneEntry,
    desc_path,
    list_scenes,
    noisy_path,
    ref_path,
    scene_dir,
)

__all__ = ["PASSES", "SceneEntry", "desc_path", "list_scenes", "noisy_path", "ref_path", "scene_dir"]
