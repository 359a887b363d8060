"""The benchmark suite: hand-built Cycles scenes that look like real work, one or more per kind
of content the denoiser must handle.

The suite is what ``mcdenoise bench --suite`` scores against Intel OIDN, so it must stay out of
the training generator's reach: nothing here is random per render, nothing feeds
``scene_description``, and no training command reads a suite folder. Each scene is a named
builder in ``SCENES``; ``build(name)`` resets Blender to an empty file and builds it with
``bpy.data`` through the ``blender_scene`` helpers. Everything a builder places is fixed in
code (strand positions come from a ``random.Random`` seeded with the scene name), so a scene
renders the same pixels on every run. Units and conventions as in ``scene_description``:
metres, Z up, ground at z = 0, the camera on the -Y side looking towards +Y.

bpy is imported lazily, so the table (names, kinds, summaries) is readable without Blender.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcdenoise.dataset.blender_scene import (
    _build_camera,
    _build_light,
    _build_object,
    _build_room,
    _build_volume,
    _build_world,
    _node_tree,
    import_bpy,
)

#: Bumped whenever a scene changes, so a report can tell renders of different suites apart.
SUITE_VERSION = 1

#: Kind of content -> what it stresses. Every kind has at least one scene in ``SCENES``.
KINDS: dict[str, str] = {
    "texture": "high-frequency procedural textures at several scales, down to sub-pixel",
    "volume": "a fog volume lit by a spot light (light shafts, volumetric shadows)",
    "dof": "depth of field with bokeh from small emitters",
    "textured_diffuse": "textured diffuse objects under an area light",
    "fireflies": "small bright emitters seen through glossy paths (fireflies, caustics)",
    "sss": "subsurface scattering lit by a sky texture",
    "glass": "clear, tinted and frosted glass with caustics",
    "metal": "sharp and rough metals reflecting a textured room",
    "interior": "a closed room lit mostly indirectly through a window",
    "hair": "hair curves with a hair BSDF",
    "motion_blur": "objects moving and spinning during the shutter",
    "sky": "outdoor lighting from a physical (Nishita) sky texture only",
    "mixed": "a still life mixing glass, metal, textures, an emitter and depth of field",
}


@dataclass(frozen=True)
class SuiteScene:
    """One suite scene: its kind (a key of ``KINDS``), one line saying what it shows, its builder."""

    kind: str
    summary: str
    build: Callable[[Any], None]


# -- small builders over blender_scene ---------------------------------------------------------

def _mat(**kw: Any) -> dict[str, Any]:
    """A ``make_material`` spec: a grey rough dielectric unless told otherwise."""
    spec: dict[str, Any] = {
        "kind": "suite", "base_color": [0.8, 0.8, 0.8], "metallic": 0.0, "roughness": 0.5,
        "transmission": 0.0, "ior": 1.5, "subsurface": 0.0, "subsurface_radius": [1.0, 0.2, 0.1],
        "sheen": 0.0, "coat": 0.0, "coat_roughness": 0.03, "emission_strength": 0.0,
        "emission_color": [1.0, 1.0, 1.0], "texture": None, "bump": None,
    }
    spec.update(kw)
    return spec


def _tex(kind: str, scale: float, color2: list[float], **kw: Any) -> dict[str, Any]:
    return {"type": kind, "scale": scale, "color2": color2, "drives_roughness": False, **kw}


class _Scene:
    """Counters and caches one builder shares with the ``blender_scene`` helpers."""

    def __init__(self, bpy: Any) -> None:
        self.bpy = bpy
        self.meshes: dict[Any, Any] = {}
        self.materials: dict[int, Any] = {}
        # _build_object caches Blender materials by id() of the spec dict: keep every spec alive
        # so a later dict can never reuse a freed one's id and pick up the wrong material.
        self.specs: list[dict[str, Any]] = []
        self.n_obj = 0
        self.n_light = 0

    def obj(self, kind: str, location: Any, scale: Any = 1.0, material: dict | None = None,
            rotation: Any = (0, 0, 0), smooth: bool = True, subdivision: int = 0, **extra: Any) -> Any:
        """A primitive through ``_build_object`` (subdivision, displacement, motion keys)."""
        scale = (scale,) * 3 if isinstance(scale, (int, float)) else tuple(scale)
        spec = {"kind": kind, "smooth": smooth, "location": list(location), "rotation": list(rotation),
                "scale": list(scale), "material": material or _mat(), "subdivision": subdivision, **extra}
        self.specs.append(spec)
        _build_object(self.bpy, self.n_obj, spec, self.meshes, self.materials)
        self.n_obj += 1
        return self.bpy.data.objects[f"obj{self.n_obj - 1}"]

    def light(self, **spec: Any) -> None:
        spec.setdefault("color", [1.0, 1.0, 1.0])
        _build_light(self.bpy, self.n_light, spec, self.meshes)
        self.n_light += 1

    def emitter(self, location: Any, size: float, strength: float, color: Any = (1.0, 1.0, 1.0)) -> None:
        """A small emissive sphere: a light that is also seen (and reflected) directly."""
        self.light(type="mesh", shape="sphere", location=list(location), target=[0, 0, 0], size=size,
                   strength=strength, color=list(color))

    def room(self, ground: dict, walls: str = "none", wall: dict | None = None, back_y: float = 4.0,
             side_x: float = 4.0, height: float = 4.0) -> None:
        _build_room(self.bpy, {"ground": ground, "walls": walls, "wall": wall or _mat(), "back_y": back_y,
                               "side_x": side_x, "height": height}, self.meshes)

    def camera(self, location: Any, target: Any, lens: float = 35.0, dof: dict | None = None,
               motion_blur: bool = False) -> Any:
        _build_camera(self.bpy, {"location": list(location), "target": list(target), "lens": lens,
                                 "dof": dof, "motion_blur": motion_blur})
        return self.bpy.context.scene.camera

    def world(self, color: Any = (0.05, 0.05, 0.05), strength: float = 1.0, sky_type: str | None = None,
              sun_elevation: float = 0.5, sun_rotation: float = 0.0, sun_disc: bool = True) -> None:
        """A flat colour, or the physical sky ``sky_type`` (with or without its sun disc)."""
        if sky_type is None:
            _build_world(self.bpy, {"type": "color", "color": list(color), "strength": strength})
            return
        _build_world(self.bpy, {"type": "sky", "strength": strength, "sky_type": sky_type,
                                "sun_elevation": sun_elevation, "sun_rotation": sun_rotation})
        sky = next(n for n in self.bpy.context.scene.world.node_tree.nodes if n.type == "TEX_SKY")
        sky.sun_disc = sun_disc


# -- the scenes ----------------------------------------------------------------------------------

def _checker_brick(bpy: Any) -> None:
    s = _Scene(bpy)
    # 5 cm checker squares from 2 m to the horizon: several pixels wide up front, sub-pixel far away.
    s.room(_mat(base_color=[0.75, 0.75, 0.72], roughness=0.8,
                texture=_tex("checker", 400.0, [0.06, 0.06, 0.07])))
    s.obj("plane", (0.3, 5.0, 1.5), (4.0, 1.0, 1.5), rotation=(math.pi / 2, 0, 0),
          material=_mat(base_color=[0.55, 0.16, 0.09], roughness=0.9,
                        texture=_tex("brick", 6.0, [0.36, 0.11, 0.07]),
                        bump={"type": "noise", "scale": 150.0, "strength": 0.3, "distance": 0.05}))
    s.obj("uv_sphere", (-0.9, 1.2, 0.5), 0.5, _mat(base_color=[0.85, 0.8, 0.3], roughness=0.6,
                                                   texture=_tex("wave", 5.0, [0.1, 0.2, 0.5], detail=2.0)))
    s.obj("cube", (0.8, 2.2, 0.45), (0.45, 0.45, 0.45), _mat(
        base_color=[0.9, 0.9, 0.9], roughness=0.7, texture=_tex("checker", 12.0, [0.02, 0.02, 0.02])),
        rotation=(0, 0, 0.6))
    s.obj("cylinder", (1.7, 0.6, 0.35), (0.3, 0.3, 0.35), _mat(
        base_color=[0.2, 0.5, 0.25], roughness=0.5, texture=_tex("noise", 120.0, [0.9, 0.85, 0.6], detail=8.0)))
    s.light(type="area", shape="RECTANGLE", size=2.0, size_y=1.0, energy=400.0, location=[-2.5, -0.5, 3.5],
            target=[0, 1.5, 0], color=[1.0, 0.95, 0.88])
    s.world((0.55, 0.65, 0.85), 0.4)
    s.camera((0.4, -2.6, 1.1), (0.0, 2.0, 0.6), 32.0)


def _sheen_fabric(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.35, 0.3, 0.25], roughness=0.9,
                texture=_tex("wave", 90.0, [0.2, 0.16, 0.12], detail=3.0, distortion=2.0)))
    # A draped cloth: a subdivided, displaced slab with thread-scale noise and a fine weave bump.
    s.obj("slab", (0.0, 0.4, 0.08), (1.2, 0.9, 0.35), _mat(
        base_color=[0.5, 0.05, 0.08], roughness=0.85, sheen=1.0,
        texture=_tex("noise", 260.0, [0.85, 0.45, 0.2], detail=6.0),
        bump={"type": "wave", "scale": 400.0, "strength": 0.5, "distance": 0.02}),
        subdivision=3, displace={"texture": "clouds", "size": 0.35, "strength": 0.25})
    s.obj("cube", (-0.6, 0.7, 0.3), (0.35, 0.3, 0.18), _mat(
        base_color=[0.15, 0.25, 0.55], roughness=0.9, sheen=1.0,
        texture=_tex("checker", 20.0, [0.85, 0.82, 0.7])), rotation=(0.15, 0.1, 0.4), subdivision=2)
    s.obj("blob", (0.7, 0.6, 0.4), 0.3, _mat(
        base_color=[0.75, 0.7, 0.55], roughness=0.95, sheen=0.8,
        texture=_tex("brick", 12.0, [0.35, 0.3, 0.2])), subdivision=1)
    # Grazing key light: sheen lives at grazing angles, where the texture also shimmers.
    s.light(type="area", shape="DISK", size=1.2, energy=250.0, location=[3.0, 1.5, 1.4],
            target=[0, 0.6, 0.5], color=[1.0, 0.92, 0.85])
    s.light(type="area", shape="SQUARE", size=3.0, energy=60.0, location=[-2.0, -2.5, 3.0],
            target=[0, 0.5, 0], color=[0.8, 0.88, 1.0])
    s.world((0.3, 0.3, 0.32), 0.2)
    s.camera((0.0, -2.3, 1.6), (0.0, 0.7, 0.55), 40.0)


def _fog_spot(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.4, 0.4, 0.42], roughness=0.8), walls="back", back_y=3.5,
           wall=_mat(base_color=[0.5, 0.48, 0.45], roughness=0.9))
    s.obj("suzanne", (0.0, 0.8, 0.55), 0.55, _mat(base_color=[0.7, 0.5, 0.3], roughness=0.5))
    for i, x in enumerate((-1.6, -0.8, 0.8, 1.6)):  # pillars that cut the cone into shafts
        s.obj("cylinder", (x, 1.8 + 0.3 * (i % 2), 1.5), (0.1, 0.1, 1.5), _mat(base_color=[0.6, 0.6, 0.6]))
    s.light(type="spot", energy=3000.0, radius=0.05, spot_size=0.7, spot_blend=0.3,
            location=[-1.2, 3.0, 4.5], target=[0.2, 0.4, 0.0], color=[1.0, 0.9, 0.75])
    s.light(type="point", energy=40.0, radius=0.1, location=[2.0, -1.0, 1.0], target=[0, 0, 0],
            color=[0.5, 0.6, 1.0])
    _build_volume(bpy, {"location": [0.0, 0.0, 2.0], "scale": 5.0, "density": 0.12,
                        "color": [0.9, 0.9, 0.9], "anisotropy": 0.4}, s.meshes)
    s.world((0.01, 0.01, 0.015), 1.0)
    s.camera((0.6, -3.5, 1.3), (0.0, 1.0, 1.1), 30.0)


def _bokeh_lights(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.25, 0.22, 0.2], roughness=0.4), walls="back", back_y=16.0,
           wall=_mat(base_color=[0.3, 0.3, 0.35], roughness=0.7))
    s.obj("suzanne", (0.0, 0.0, 0.55), 0.45, _mat(base_color=[0.8, 0.75, 0.7], roughness=0.25, coat=0.8),
          rotation=(0, 0, 0.3), subdivision=1)
    s.obj("cylinder", (0.0, 0.0, 0.05), (0.6, 0.6, 0.05), _mat(base_color=[0.1, 0.1, 0.1], roughness=0.2))
    rng = random.Random("suite:bokeh_lights")
    colours = ([1.0, 0.7, 0.35], [1.0, 0.85, 0.6], [0.6, 0.8, 1.0], [1.0, 0.4, 0.3])
    for i in range(24):  # fairy lights far behind and a few close in front of the focus plane
        near = i < 4
        y = rng.uniform(-1.2, -0.8) if near else rng.uniform(5.0, 14.0)
        x = rng.uniform(-0.5, 0.5) if near else rng.uniform(-4.0, 4.0)
        s.emitter((x, y, rng.uniform(0.2, 1.5) if near else rng.uniform(0.3, 3.5)), 0.015,
                  rng.uniform(100, 400), colours[i % len(colours)])
    s.light(type="area", shape="DISK", size=1.0, energy=80.0, location=[-1.5, -1.5, 2.0],
            target=[0, 0, 0.5], color=[1.0, 0.95, 0.9])
    s.world((0.02, 0.02, 0.03), 1.0)
    cam = s.camera((0.3, -3.0, 0.9), (0.0, 0.0, 0.55), 85.0, dof={"focus_distance": 3.05, "fstop": 0.8})
    cam.data.dof.aperture_blades = 6


def _textured_diffuse(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.6, 0.5, 0.35], roughness=1.0, texture=_tex("voronoi", 60.0, [0.3, 0.22, 0.12])),
           walls="corner", back_y=3.0, side_x=2.5,
           wall=_mat(base_color=[0.75, 0.72, 0.65], roughness=1.0, texture=_tex("noise", 20.0, [0.6, 0.55, 0.5])))
    s.obj("cube", (-1.0, 1.0, 0.4), 0.4, _mat(base_color=[0.8, 0.1, 0.1], roughness=1.0,
                                              texture=_tex("checker", 6.0, [0.9, 0.85, 0.1])), rotation=(0, 0, 0.5))
    s.obj("uv_sphere", (0.2, 0.6, 0.45), 0.45, _mat(base_color=[0.1, 0.3, 0.8], roughness=1.0,
                                                   texture=_tex("noise", 12.0, [0.9, 0.9, 0.9], detail=5.0)))
    s.obj("cylinder", (1.3, 1.5, 0.5), (0.3, 0.3, 0.5), _mat(base_color=[0.2, 0.6, 0.2], roughness=1.0,
                                                            texture=_tex("wave", 10.0, [0.95, 0.9, 0.8])))
    s.obj("suzanne", (-0.1, -0.4, 0.35), 0.35, _mat(base_color=[0.9, 0.6, 0.2], roughness=1.0,
                                                    texture=_tex("voronoi", 15.0, [0.3, 0.1, 0.05])),
          rotation=(0, 0, -0.4))
    s.obj("cone", (1.0, 0.0, 0.3), (0.25, 0.25, 0.3), _mat(base_color=[0.6, 0.2, 0.6], roughness=1.0,
                                                          texture=_tex("brick", 8.0, [0.9, 0.9, 0.9])))
    s.light(type="area", shape="SQUARE", size=1.0, energy=300.0, location=[-1.0, -1.0, 3.0],
            target=[0, 0.6, 0], color=[1.0, 0.97, 0.92])
    s.world((0.1, 0.1, 0.12), 0.3)
    s.camera((0.5, -3.2, 1.8), (0.1, 0.6, 0.4), 35.0)


def _fireflies(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.3, 0.3, 0.3], roughness=0.15, coat=0.5), walls="room", back_y=3.0,
           side_x=2.5, height=3.0, wall=_mat(base_color=[0.7, 0.7, 0.7], roughness=0.9))
    s.obj("uv_sphere", (-0.6, 1.0, 0.5), 0.5, _mat(base_color=[0.95, 0.95, 0.95], metallic=1.0, roughness=0.02))
    s.obj("torus", (0.9, 0.9, 0.2), 0.5, _mat(base_color=[0.95, 0.7, 0.4], metallic=1.0, roughness=0.25),
          minor_radius=0.3, rotation=(0.3, 0, 0.5))
    s.obj("cylinder", (0.2, 2.0, 0.6), (0.3, 0.3, 0.6), _mat(base_color=[0.1, 0.15, 0.5], roughness=0.05))
    s.obj("cube", (-1.4, 2.2, 0.3), 0.3, _mat(base_color=[0.8, 0.8, 0.8], roughness=1.0), rotation=(0, 0, 0.4))
    for i, (x, y, z) in enumerate(((-0.2, 0.3, 1.2), (1.5, 0.4, 0.5), (-1.2, 1.6, 1.8), (0.6, 1.8, 1.6))):
        s.emitter((x, y, z), 0.012, 4000.0 if i % 2 else 2500.0, [1.0, 0.85, 0.7] if i % 2 else [0.8, 0.9, 1.0])
    s.light(type="area", shape="SQUARE", size=0.6, energy=15.0, location=[0, 0, 2.9], target=[0, 1, 0])
    s.world((0.0, 0.0, 0.0), 0.0)
    s.camera((0.3, -2.2, 1.4), (0.0, 1.2, 0.5), 32.0)


def _sss_sky(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.3, 0.35, 0.2], roughness=0.9, texture=_tex("noise", 80.0, [0.15, 0.2, 0.08], detail=4.0)))
    wax = _mat(base_color=[0.9, 0.8, 0.6], roughness=0.4, subsurface=1.0, subsurface_radius=[1.0, 0.6, 0.3])
    for i, (x, h) in enumerate(((-0.9, 0.5), (-0.55, 0.35), (-0.2, 0.65))):
        s.obj("cylinder", (x, 0.8 + 0.25 * i, h), (0.12, 0.12, h), wax)
    s.obj("suzanne", (0.55, 0.6, 0.5), 0.5, _mat(base_color=[0.85, 0.55, 0.45], roughness=0.45, subsurface=1.0,
                                                 subsurface_radius=[1.0, 0.35, 0.2]),
          rotation=(0, 0, -0.3), subdivision=2)
    s.obj("blob", (0.2, 1.6, 0.45), 0.45, _mat(base_color=[0.92, 0.92, 0.9], roughness=0.3, subsurface=0.8,
                                               subsurface_radius=[0.8, 0.8, 0.7]),
          subdivision=1, displace={"texture": "clouds", "size": 0.5, "strength": 0.15})
    # Low sun behind the objects: light reaches the camera through the material (translucency).
    s.world(strength=0.4, sky_type="MULTIPLE_SCATTERING", sun_elevation=math.radians(12),
            sun_rotation=math.radians(80))
    s.camera((0.0, -2.4, 0.9), (0.0, 0.9, 0.45), 40.0)


def _glass_caustics(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.85, 0.85, 0.82], roughness=0.8), walls="back", back_y=2.5,
           wall=_mat(base_color=[0.6, 0.6, 0.65], roughness=0.9, texture=_tex("checker", 30.0, [0.35, 0.35, 0.4])))
    s.obj("uv_sphere", (-0.8, 0.6, 0.4), 0.4, _mat(base_color=[1.0, 1.0, 1.0], transmission=1.0, roughness=0.0, ior=1.5))
    s.obj("cylinder", (0.2, 1.0, 0.45), (0.25, 0.25, 0.45), _mat(base_color=[0.45, 0.85, 0.75], transmission=1.0,
                                                                roughness=0.0, ior=1.45))
    s.obj("suzanne", (0.9, 0.3, 0.38), 0.38, _mat(base_color=[0.95, 0.95, 1.0], transmission=1.0, roughness=0.3,
                                                  ior=1.5), rotation=(0, 0, -0.5), subdivision=1)
    s.obj("cube", (-0.2, -0.3, 0.15), (0.3, 0.2, 0.15), _mat(base_color=[1.0, 0.7, 0.4], transmission=1.0,
                                                            roughness=0.0, ior=1.6), rotation=(0, 0, 0.4))
    s.light(type="point", energy=900.0, radius=0.03, location=[-1.5, -0.5, 2.5], target=[0, 0, 0],
            color=[1.0, 0.97, 0.9])
    s.world((0.5, 0.55, 0.6), 0.1)
    s.camera((0.2, -2.6, 1.5), (0.0, 0.5, 0.3), 38.0)


def _metals(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.2, 0.2, 0.22], roughness=0.6, texture=_tex("checker", 60.0, [0.6, 0.6, 0.6])),
           walls="corner", back_y=3.0, side_x=-2.5,
           wall=_mat(base_color=[0.7, 0.3, 0.2], roughness=0.9, texture=_tex("brick", 10.0, [0.85, 0.8, 0.7])))
    s.obj("uv_sphere", (-0.8, 0.8, 0.45), 0.45, _mat(base_color=[0.97, 0.97, 0.97], metallic=1.0, roughness=0.01))
    s.obj("torus", (0.3, 1.3, 0.55), 0.55, _mat(base_color=[1.0, 0.78, 0.34], metallic=1.0, roughness=0.35),
          minor_radius=0.25, rotation=(1.3, 0, 0.3))
    s.obj("suzanne", (0.9, 0.3, 0.4), 0.4, _mat(base_color=[0.95, 0.64, 0.54], metallic=1.0, roughness=0.12),
          rotation=(0, 0, -0.4), subdivision=2)
    s.obj("cube", (-0.2, 0.0, 0.25), 0.25, _mat(base_color=[0.91, 0.92, 0.92], metallic=1.0, roughness=0.5),
          rotation=(0, 0, 0.7))
    s.obj("cylinder", (1.5, 1.6, 0.6), (0.25, 0.25, 0.6), _mat(base_color=[0.55, 0.56, 0.55], metallic=1.0,
                                                              roughness=0.2, coat=1.0, coat_roughness=0.0))
    s.light(type="area", shape="RECTANGLE", size=2.0, size_y=0.5, energy=350.0, location=[1.5, -1.0, 2.5],
            target=[0, 0.8, 0.3])
    s.world((0.7, 0.75, 0.8), 0.3)
    s.camera((0.3, -2.6, 1.3), (0.2, 0.8, 0.4), 35.0)


def _interior(bpy: Any) -> None:
    """A closed 6 x 5 x 3 m room; the sun enters through one window and lights a patch of floor."""
    s = _Scene(bpy)
    plaster = _mat(base_color=[0.8, 0.78, 0.72], roughness=0.95)
    s.room(_mat(base_color=[0.45, 0.3, 0.18], roughness=0.6, texture=_tex("wave", 25.0, [0.3, 0.18, 0.1],
                                                                         detail=3.0, distortion=3.0)))
    t = 0.1
    slabs = [((0, 0, 3.0 + t), (3.0, 2.5, t)),            # ceiling
             ((0, 2.5 + t, 1.5), (3.0, t, 1.5)),          # back wall
             ((0, -2.5 - t, 1.5), (3.0, t, 1.5)),         # wall behind the camera
             ((3.0 + t, 0, 1.5), (t, 2.5, 1.5)),          # right wall
             # left wall with a 1.6 x 1.2 m window: below, above, and the two sides
             ((-3.0 - t, 0, 0.45), (t, 2.5, 0.45)), ((-3.0 - t, 0, 2.6), (t, 2.5, 0.4)),
             ((-3.0 - t, -1.65, 1.5), (t, 0.85, 0.6)), ((-3.0 - t, 1.65, 1.5), (t, 0.85, 0.6))]
    for loc, scale in slabs:
        s.obj("cube", loc, scale, plaster, smooth=False)
    s.obj("cube", (1.6, 1.6, 0.4), (1.0, 0.5, 0.4), _mat(base_color=[0.25, 0.35, 0.5], roughness=0.9, sheen=0.5))
    s.obj("cube", (0.0, 0.3, 0.7), (0.6, 0.4, 0.04), _mat(base_color=[0.5, 0.35, 0.2], roughness=0.3))
    for x in (-0.5, 0.5):
        for y in (0.0, 0.6):
            s.obj("cylinder", (x, y, 0.33), (0.03, 0.03, 0.33), _mat(base_color=[0.1, 0.1, 0.1], metallic=1.0,
                                                                    roughness=0.3))
    s.obj("uv_sphere", (0.1, 0.3, 0.84), 0.1, _mat(base_color=[0.9, 0.9, 0.9], roughness=0.05, coat=1.0))
    s.light(type="sun", energy=6.0, angle=0.01, location=[-6.0, 1.0, 4.0], target=[-1.5, 0.2, 0.0],
            color=[1.0, 0.93, 0.82])
    s.world(strength=0.3, sky_type="MULTIPLE_SCATTERING", sun_elevation=math.radians(30),
            sun_rotation=math.radians(170), sun_disc=False)
    s.camera((2.4, -2.2, 1.6), (-0.6, 1.2, 0.9), 24.0)


def _hair_ball(bpy: Any) -> None:
    """A fur ball of 8000 strands: thin geometry that covers a fraction of each pixel."""
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.5, 0.5, 0.5], roughness=0.8), walls="back", back_y=2.0,
           wall=_mat(base_color=[0.35, 0.4, 0.45], roughness=0.9))
    s.obj("uv_sphere", (0, 0.5, 0.8), 0.45, _mat(base_color=[0.3, 0.2, 0.12], roughness=0.8))
    rng = random.Random("suite:hair_ball")
    n, k = 8000, 6
    pos: list[float] = []
    for _ in range(n):  # uniform roots on the sphere, strands out along the normal, sagging
        z = rng.uniform(-1.0, 1.0)
        a = rng.uniform(0, 2 * math.pi)
        d = (math.sqrt(1 - z * z) * math.cos(a), math.sqrt(1 - z * z) * math.sin(a), z)
        length = rng.uniform(0.12, 0.22)
        for j in range(k):
            u = j / (k - 1)
            r = 0.45 + u * length
            pos += [d[0] * r, 0.5 + d[1] * r, 0.8 + d[2] * r - 0.6 * length * u * u]
    curves = bpy.data.hair_curves.new("hair")
    curves.add_curves([k] * n)
    curves.attributes["position"].data.foreach_set("vector", pos)
    radius = curves.attributes.new("radius", "FLOAT", "POINT")
    radius.data.foreach_set("value", [0.003 * (1 - 0.7 * (j / (k - 1))) for _ in range(n) for j in range(k)])
    mat = bpy.data.materials.new("hair")
    nt = _node_tree(mat)
    for node in [n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"]:
        nt.nodes.remove(node)
    bsdf = nt.nodes.new("ShaderNodeBsdfHairPrincipled")
    bsdf.parametrization = "MELANIN"
    bsdf.inputs["Melanin"].default_value = 0.45
    bsdf.inputs["Roughness"].default_value = 0.3
    out = next(n for n in nt.nodes if n.type == "OUTPUT_MATERIAL")
    nt.links.new(bsdf.outputs[0], out.inputs["Surface"])
    curves.materials.append(mat)
    obj = bpy.data.objects.new("hair", curves)
    bpy.context.scene.collection.objects.link(obj)
    s.light(type="area", shape="SQUARE", size=1.0, energy=200.0, location=[-1.5, -1.5, 2.0], target=[0, 0.5, 0.8])
    s.light(type="area", shape="RECTANGLE", size=1.5, size_y=0.3, energy=250.0, location=[1.2, 1.8, 1.8],
            target=[0, 0.5, 0.8], color=[0.85, 0.9, 1.0])  # rim light from behind
    s.world((0.3, 0.3, 0.3), 0.3)
    s.camera((0.0, -2.0, 1.1), (0.0, 0.5, 0.8), 50.0)


def _motion_blur(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.6, 0.6, 0.6], roughness=0.7, texture=_tex("checker", 80.0, [0.3, 0.3, 0.3])),
           walls="back", back_y=3.0, wall=_mat(base_color=[0.5, 0.55, 0.6], roughness=0.9))
    s.obj("cube", (-0.6, 1.0, 0.3), 0.3, _mat(base_color=[0.8, 0.2, 0.1], roughness=0.6,
                                              texture=_tex("checker", 4.0, [0.9, 0.9, 0.9])),
          motion=[1.2, 0.0, 0.0])
    s.obj("uv_sphere", (0.6, 0.4, 0.6), 0.3, _mat(base_color=[0.1, 0.4, 0.8], roughness=0.3,
                                                  texture=_tex("wave", 6.0, [0.9, 0.9, 0.3])),
          motion=[-0.4, 0.0, 0.5])
    s.obj("suzanne", (1.2, 1.6, 0.4), 0.4, _mat(base_color=[0.8, 0.8, 0.75], roughness=0.4))  # static
    fan = s.obj("torus", (-0.3, 2.0, 0.9), 0.5, _mat(base_color=[0.9, 0.9, 0.9], metallic=1.0, roughness=0.2),
                minor_radius=0.15, rotation=(math.pi / 2, 0, 0))
    for frame, angle in ((0, -0.6), (2, 0.6)):  # a spinning, slightly wobbling ring
        fan.rotation_euler = (math.pi / 2, angle, 0.2 * angle)
        fan.keyframe_insert("rotation_euler", frame=frame)
    s.light(type="area", shape="SQUARE", size=1.5, energy=300.0, location=[-1.5, -1.0, 3.0], target=[0, 1, 0])
    s.world(strength=0.2, sky_type="MULTIPLE_SCATTERING", sun_elevation=math.radians(40),
            sun_rotation=math.radians(120))
    s.camera((0.2, -2.8, 1.2), (0.0, 1.0, 0.5), 35.0, motion_blur=True)


def _sky_nishita(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.45, 0.43, 0.4], roughness=0.9, texture=_tex("noise", 150.0, [0.3, 0.29, 0.28],
                                                                        detail=6.0)))
    blocks = ((-3.0, 8.0, 2.0, 1.2, [0.7, 0.65, 0.58]), (-0.5, 12.0, 3.5, 1.5, [0.55, 0.6, 0.65]),
              (2.5, 9.0, 1.5, 1.0, [0.75, 0.45, 0.35]), (5.0, 14.0, 4.0, 1.8, [0.8, 0.8, 0.78]),
              (-6.0, 15.0, 3.0, 2.0, [0.45, 0.4, 0.35]))
    for x, y, h, w, colour in blocks:
        s.obj("cube", (x, y, h), (w, w, h), _mat(base_color=colour, roughness=0.8), smooth=False)
    s.obj("uv_sphere", (0.6, 3.0, 0.6), 0.6, _mat(base_color=[0.9, 0.9, 0.9], roughness=0.3, coat=0.8))
    s.obj("torus", (-1.5, 4.0, 0.8), 0.8, _mat(base_color=[0.7, 0.3, 0.2], roughness=0.6), minor_radius=0.2,
          rotation=(math.pi / 2, 0, 0.3))
    s.obj("cylinder", (2.2, 5.0, 1.0), (0.15, 0.15, 1.0), _mat(base_color=[0.8, 0.8, 0.8], metallic=1.0,
                                                              roughness=0.1))
    # Nishita's single-scattering sky with its sun disc is the only light, low in the sky.
    s.world(strength=0.3, sky_type="SINGLE_SCATTERING", sun_elevation=math.radians(12),
            sun_rotation=math.radians(320), sun_disc=True)
    s.camera((0.5, -3.0, 1.2), (0.0, 6.0, 1.8), 28.0)


def _mixed(bpy: Any) -> None:
    s = _Scene(bpy)
    s.room(_mat(base_color=[0.6, 0.4, 0.25], roughness=0.4, coat=0.3,
                texture=_tex("wave", 30.0, [0.35, 0.2, 0.1], detail=4.0, distortion=4.0)),
           walls="corner", back_y=1.8, side_x=1.8,
           wall=_mat(base_color=[0.8, 0.78, 0.72], roughness=0.9, texture=_tex("noise", 40.0, [0.7, 0.66, 0.6])))
    s.obj("cylinder", (-0.35, 0.4, 0.2), (0.08, 0.08, 0.2), _mat(base_color=[1, 1, 1], transmission=1.0,
                                                                roughness=0.0, ior=1.5))
    s.obj("uv_sphere", (0.05, 0.2, 0.08), 0.08, _mat(base_color=[0.95, 0.95, 0.95], metallic=1.0, roughness=0.05))
    s.obj("cube", (0.35, 0.7, 0.06), (0.2, 0.14, 0.06), _mat(base_color=[0.2, 0.3, 0.6], roughness=0.8,
                                                            texture=_tex("checker", 25.0, [0.8, 0.75, 0.5])),
          rotation=(0, 0, 0.3))
    s.obj("cylinder", (0.5, 0.25, 0.12), (0.05, 0.05, 0.12), _mat(base_color=[0.95, 0.9, 0.75], subsurface=1.0,
                                                                 subsurface_radius=[1.0, 0.6, 0.3]))
    s.emitter((0.5, 0.25, 0.27), 0.012, 300.0, [1.0, 0.65, 0.3])  # the candle's flame
    s.obj("torus", (-0.1, 0.9, 0.05), 0.15, _mat(base_color=[1.0, 0.78, 0.34], metallic=1.0, roughness=0.3),
          minor_radius=0.2)
    s.obj("suzanne", (-0.6, 1.0, 0.15), 0.15, _mat(base_color=[0.2, 0.6, 0.3], roughness=0.5, sheen=0.8))
    s.light(type="area", shape="RECTANGLE", size=1.0, size_y=0.6, energy=80.0, location=[-1.0, -0.8, 1.5],
            target=[0, 0.5, 0], color=[0.95, 0.97, 1.0])
    s.world(strength=0.15, sky_type="MULTIPLE_SCATTERING", sun_elevation=math.radians(25),
            sun_rotation=math.radians(60))
    s.camera((0.15, -1.3, 0.6), (0.0, 0.4, 0.12), 45.0, dof={"focus_distance": 1.55, "fstop": 2.8})


SCENES: dict[str, SuiteScene] = {
    "checker_brick": SuiteScene("texture", "checker floor to the horizon, brick wall, wave and fine noise "
                                           "under an area light", _checker_brick),
    "sheen_fabric": SuiteScene("texture", "draped sheen cloth with thread-scale noise and a weave bump, "
                                          "grazing light", _sheen_fabric),
    "fog_spot": SuiteScene("volume", "room-sized fog, a spot light cut into shafts by pillars", _fog_spot),
    "bokeh_lights": SuiteScene("dof", "f/0.8 portrait of a coated Suzanne with fairy lights before and "
                                      "behind the focus", _bokeh_lights),
    "textured_diffuse": SuiteScene("textured_diffuse", "checker, noise, wave, voronoi and brick diffuse "
                                                       "objects in a corner, one area light", _textured_diffuse),
    "fireflies": SuiteScene("fireflies", "tiny very bright emitters beside chrome, gold and a glossy floor "
                                         "in a dim room", _fireflies),
    "sss_sky": SuiteScene("sss", "wax candles, a skin Suzanne and a marble blob backlit by a low sky sun",
                          _sss_sky),
    "glass_caustics": SuiteScene("glass", "clear, tinted and frosted glass under a small point light "
                                          "(caustics)", _glass_caustics),
    "metals": SuiteScene("metal", "chrome, gold, copper, brushed and coated metals in a brick corner",
                         _metals),
    "interior": SuiteScene("interior", "closed room, sun through one window, the rest lit by bounces",
                           _interior),
    "hair_ball": SuiteScene("hair", "a fur ball of 8000 strands with a melanin hair BSDF, key and rim light",
                            _hair_ball),
    "motion_blur": SuiteScene("motion_blur", "sliding cube, rising sphere and a spinning metal ring",
                              _motion_blur),
    "sky_nishita": SuiteScene("sky", "outdoor blocks lit only by a low-sun Nishita sky with its disc",
                              _sky_nishita),
    "mixed": SuiteScene("mixed", "table-top still life: glass, metal, book, candle flame, f/2.8 depth of field",
                        _mixed),
}


def build(name: str) -> Any:
    """Reset Blender to an empty file and build suite scene ``name``; returns the scene."""
    if name not in SCENES:
        raise KeyError(f"unknown suite scene {name!r}; known: {', '.join(SCENES)}")
    bpy = import_bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"  # motion is uniform in the shutter
    scene = bpy.context.scene
    scene.frame_set(1)
    SCENES[name].build(bpy)
    scene.frame_set(1)
    return scene
