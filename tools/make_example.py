"""Render the sample shipped in examples/: a small noisy Cycles frame with albedo/normal passes.

Run with the render extra installed:  python tools/make_example.py [--spp 4] [--out examples/]
It also writes a 1024-spp reference beside it when --reference is given (not committed: 60 s+).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def build_scene(bpy, res: tuple[int, int]) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.render.resolution_x, scene.render.resolution_y = res
    scene.render.resolution_percentage = 100
    scene.view_layers[0].cycles.denoising_store_passes = True
    scene.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
    scene.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
    scene.render.image_settings.color_depth = "16"

    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.06, 0.08, 1)
    scene.world = world

    def material(name, color, rough=0.5, metal=0.0, transmission=0.0, checker=False):
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = (*color, 1)
        bsdf.inputs["Roughness"].default_value = rough
        bsdf.inputs["Metallic"].default_value = metal
        bsdf.inputs["Transmission Weight"].default_value = transmission
        if checker:
            tex = mat.node_tree.nodes.new("ShaderNodeTexChecker")
            tex.inputs["Scale"].default_value = 12.0
            tex.inputs["Color1"].default_value = (0.8, 0.8, 0.75, 1)
            tex.inputs["Color2"].default_value = (0.15, 0.2, 0.35, 1)
            mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat

    bpy.ops.mesh.primitive_plane_add(size=12)
    bpy.context.object.data.materials.append(material("floor", (0.8, 0.8, 0.8), 0.6, checker=True))
    bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 4, 3), rotation=(math.pi / 2, 0, 0))
    bpy.context.object.data.materials.append(material("wall", (0.7, 0.55, 0.4), 0.9))
    bpy.ops.mesh.primitive_monkey_add(location=(0, 0.5, 1.0), rotation=(0.3, 0, -0.4))
    bpy.ops.object.shade_smooth()
    mod = bpy.context.object.modifiers.new("subsurf", "SUBSURF")
    mod.levels = 2
    bpy.context.object.data.materials.append(material("gold", (1.0, 0.7, 0.3), 0.25, metal=1.0))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(1.7, -0.3, 0.6))
    bpy.ops.object.shade_smooth()
    bpy.context.object.data.materials.append(material("glass", (1.0, 1.0, 1.0), 0.0, transmission=1.0))
    bpy.ops.mesh.primitive_cube_add(size=0.9, location=(-1.8, 0.2, 0.45), rotation=(0, 0, 0.5))
    bpy.context.object.data.materials.append(material("red", (0.7, 0.08, 0.05), 0.4))

    bpy.ops.object.light_add(type="AREA", location=(-2.5, -2.0, 4.0))
    bpy.context.object.data.energy = 400
    bpy.context.object.data.size = 1.0
    bpy.ops.object.light_add(type="POINT", location=(2.5, 1.5, 2.2))
    bpy.context.object.data.energy = 60
    bpy.context.object.data.shadow_soft_size = 0.05

    bpy.ops.object.camera_add(location=(0, -6.5, 2.6), rotation=(math.radians(75), 0, 0))
    scene.camera = bpy.context.object


def render(bpy, path: Path, spp: int, seed: int) -> None:
    scene = bpy.context.scene
    scene.cycles.samples = spp
    scene.cycles.seed = seed
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples")
    parser.add_argument("--spp", type=int, default=4)
    parser.add_argument("--res", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--reference", type=int, default=0, help="also render a reference with this many spp")
    args = parser.parse_args()
    import bpy

    build_scene(bpy, tuple(args.res))
    args.out.mkdir(parents=True, exist_ok=True)
    render(bpy, args.out / f"suzanne_{args.spp}spp.exr", args.spp, seed=1)
    if args.reference:
        render(bpy, args.out / f"suzanne_ref{args.reference}spp.exr", args.reference, seed=2)


if __name__ == "__main__":
    main()
