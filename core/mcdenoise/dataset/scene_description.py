"""Seed -> JSON-able description of one procedural scene.

Kept separate from Blender so the *what* (random choices) is pure Python and testable without
bpy, and so every rendered scene can be rebuilt or inspected later from its JSON alone. All
randomness comes from one ``random.Random(seed)``: the same seed yields the same dict on every
machine and Python version (``Random`` with an int seed is stable across CPython releases).

Variety matters more than realism here: the denoiser must have seen diffuse and glossy noise,
caustics and fireflies, thin features, fine bump detail, depth of field and motion blur before it
meets an artist's frame. Units: metres, Z up, ground at z = 0, objects near the origin, the
camera on the -Y side looking towards +Y (where walls, if any, stand).
"""

from __future__ import annotations

import colorsys
import math
import random
from typing import Any

#: Bumped whenever the meaning of the dict changes, so old datasets can be recognised.
DESCRIPTION_VERSION = 2

# Half height of each unit primitive as blender_scene builds it, so objects can rest on the floor.
HALF_HEIGHT = {
    "cube": 1.0, "uv_sphere": 1.0, "ico_sphere": 1.0, "cylinder": 1.0, "cone": 1.0,
    "torus": 0.3, "suzanne": 0.8, "blob": 1.0, "slab": 0.15,
}
MAIN_KINDS = {
    "cube": 1.0, "uv_sphere": 1.2, "ico_sphere": 0.6, "cylinder": 0.9, "cone": 0.5, "torus": 0.7,
    "suzanne": 0.9, "blob": 0.9, "slab": 0.4,
}
MATERIAL_KINDS = {
    "diffuse": 2.5, "plastic": 1.2, "rough_metal": 1.0, "sharp_metal": 0.8, "glass": 1.0,
    "emission": 0.3, "subsurface": 0.8, "sheen": 0.6, "coat": 0.8,
}
TEXTURES = ("noise", "voronoi", "wave", "checker", "brick")


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _r(x: float) -> float:
    """Round so the JSON stays short and compares exactly after a round trip."""
    return round(x, 5)


def _vec(*xs: float) -> list[float]:
    return [_r(x) for x in xs]


def _color(rng: random.Random, sat: tuple[float, float] = (0.0, 0.9),
           val: tuple[float, float] = (0.05, 0.9)) -> list[float]:
    # HSV keeps colours physically plausible (albedo < 1) while covering greys and saturated hues.
    return _vec(*colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))


def _light_color(rng: random.Random) -> list[float]:
    """Mostly near-white with warm/cool casts, like real bulbs and daylight."""
    t = rng.uniform(-1.0, 1.0) * rng.random()
    return _vec(1.0 + 0.3 * max(t, 0), 1.0, 1.0 + 0.4 * max(-t, 0) - 0.25 * max(t, 0))


def _texture(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(TEXTURES)
    return {
        "type": kind,
        # Log-uniform scale, up to patterns finer than a pixel at 256² (the hand-built suite's
        # checker floor and fabric threads): a denoiser trained on coarse patterns only learns to
        # smear fine albedo detail that it should keep.
        "scale": _r(math.exp(rng.uniform(0.0, math.log(80.0) if kind != "brick" else math.log(20.0)))),
        "color2": _color(rng),
        "detail": _r(rng.uniform(0.0, 8.0)),
        "distortion": _r(rng.uniform(0.0, 3.0) if rng.random() < 0.4 else 0.0),
        "drives_roughness": rng.random() < 0.5,
    }


def _bump(rng: random.Random) -> dict[str, Any]:
    fine = rng.random() < 0.5  # pixel-scale detail the denoiser must not smear away
    return {
        "type": rng.choice(("noise", "voronoi", "wave")),
        "scale": _r(rng.uniform(80.0, 300.0) if fine else rng.uniform(3.0, 30.0)),
        "strength": _r(rng.uniform(0.1, 1.0)),
        "distance": _r(rng.uniform(0.002, 0.02) if fine else rng.uniform(0.02, 0.2)),
        "fine": fine,
    }


def describe_material(rng: random.Random, allow_emission: bool = True,
                      simple: bool = False) -> dict[str, Any]:
    """Principled BSDF parameters for one material kind, plus optional texture and bump."""
    kinds = dict(MATERIAL_KINDS)
    if not allow_emission:
        kinds.pop("emission")
    kind = "diffuse" if simple else _pick(rng, kinds)
    m: dict[str, Any] = {
        "kind": kind, "base_color": _color(rng), "metallic": 0.0,
        "roughness": _r(rng.uniform(0.4, 1.0)), "transmission": 0.0, "ior": 1.5,
        "subsurface": 0.0, "subsurface_radius": [1.0, 0.2, 0.1], "sheen": 0.0, "coat": 0.0,
        "coat_roughness": 0.03, "emission_strength": 0.0, "emission_color": [1.0, 1.0, 1.0],
        "specular": 0.5, "texture": None, "bump": None,
    }
    if kind == "plastic":
        m["roughness"] = _r(rng.uniform(0.02, 0.4))
    elif kind == "rough_metal":
        m.update(metallic=1.0, roughness=_r(rng.uniform(0.2, 0.6)), base_color=_color(rng, (0, 0.6), (0.5, 1.0)))
    elif kind == "sharp_metal":
        m.update(metallic=1.0, roughness=_r(rng.uniform(0.0, 0.12)), base_color=_color(rng, (0, 0.4), (0.6, 1.0)))
    elif kind == "glass":
        m.update(transmission=1.0, roughness=_r(rng.choice((0.0, 0.0, rng.uniform(0.02, 0.3)))),
                 ior=_r(rng.uniform(1.33, 1.8)), base_color=_color(rng, (0, 0.4), (0.8, 1.0)))
    elif kind == "emission":
        m.update(emission_strength=_r(rng.uniform(2.0, 30.0)), emission_color=_light_color(rng),
                 base_color=_color(rng, (0, 0.3), (0.1, 0.5)))
    elif kind == "subsurface":
        m.update(subsurface=_r(rng.uniform(0.5, 1.0)), roughness=_r(rng.uniform(0.2, 0.6)),
                 subsurface_radius=_vec(rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.3)),
                 base_color=_color(rng, (0.1, 0.6), (0.5, 0.95)))
    elif kind == "sheen":
        m.update(sheen=_r(rng.uniform(0.5, 1.0)), roughness=_r(rng.uniform(0.6, 1.0)))
    elif kind == "coat":
        m.update(coat=_r(rng.uniform(0.5, 1.0)), coat_roughness=_r(rng.uniform(0.0, 0.15)),
                 roughness=_r(rng.uniform(0.2, 0.7)), metallic=float(rng.random() < 0.3))
    if not simple and kind not in ("glass", "emission") and rng.random() < 0.6:
        m["texture"] = _texture(rng)
    if not simple and kind != "emission" and rng.random() < 0.35:
        m["bump"] = _bump(rng)
    return m


def _object(rng: random.Random, kind: str, xy: tuple[float, float], size: float,
            simple: bool) -> dict[str, Any]:
    """One object resting on (or, rarely, floating above / tilted on) the ground."""
    sx = sy = sz = size
    if kind in ("cube", "cylinder", "slab"):
        sx, sy, sz = (size * rng.uniform(0.5, 1.5) for _ in range(3))
    tilt = not simple and rng.random() < 0.15
    rot = _vec(rng.uniform(-0.6, 0.6) if tilt else 0.0, rng.uniform(-0.6, 0.6) if tilt else 0.0,
               rng.uniform(0, 2 * math.pi))
    lift = rng.uniform(0.0, 1.0) if (not simple and rng.random() < 0.1) else 0.0
    z = sz * HALF_HEIGHT[kind] + lift
    obj: dict[str, Any] = {
        "kind": kind, "location": _vec(xy[0], xy[1], z), "rotation": rot, "scale": _vec(sx, sy, sz),
        "smooth": kind not in ("cube", "slab") and rng.random() < 0.8,
        "subdivision": 0, "displace": None,
        "material": describe_material(rng, simple=simple),
    }
    if kind == "torus":
        obj["minor_radius"] = _r(rng.uniform(0.08, 0.3))
        obj["location"][2] = _r(sz * obj["minor_radius"] + lift)
    if kind == "blob":  # subdivided and displaced: smooth, lumpy surfaces with shading detail
        obj["subdivision"] = 2
        obj["displace"] = {"texture": rng.choice(("clouds", "voronoi")), "size": _r(rng.uniform(0.3, 1.2)),
                           "strength": _r(rng.uniform(0.1, 0.5))}
    elif kind in ("cube", "cylinder") and not simple and rng.random() < 0.2:
        obj["subdivision"] = 1  # bevel-like rounded edges
    return obj


def _wires(rng: random.Random, radius: float) -> list[dict[str, Any]]:
    """Thin cylinders (posts, cables, a fence): sub-pixel features that noise easily swallows."""
    out = []
    n = rng.randint(1, 6)
    x0, y0 = rng.uniform(-radius, radius), rng.uniform(-radius, radius)
    ang = rng.uniform(0, math.pi)
    horizontal = rng.random() < 0.4
    spacing = rng.uniform(0.05, 0.4)
    r = rng.uniform(0.004, 0.03)
    length = rng.uniform(0.8, 3.0)
    mat = describe_material(rng, allow_emission=False)
    for i in range(n):
        x = x0 + math.cos(ang) * spacing * i
        y = y0 + math.sin(ang) * spacing * i
        if horizontal:
            loc = _vec(x, y, rng.uniform(0.05, 1.5))
            rot = _vec(math.pi / 2, 0.0, ang + math.pi / 2)
        else:
            loc = _vec(x, y, length / 2)
            rot = _vec(rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), 0.0)
        out.append({"kind": "cylinder", "location": loc, "rotation": rot,
                    "scale": _vec(r, r, length / 2), "smooth": True, "subdivision": 0,
                    "displace": None, "material": mat})
    return out


def _clutter(rng: random.Random, radius: float) -> list[dict[str, Any]]:
    """Many small scattered objects sharing a few materials: high-frequency geometry edges."""
    mats = [describe_material(rng) for _ in range(rng.randint(1, 3))]
    out = []
    for _ in range(rng.randint(8, 40)):
        kind = rng.choice(("cube", "ico_sphere", "uv_sphere", "cylinder", "cone", "slab"))
        size = rng.uniform(0.03, 0.15)
        xy = (rng.uniform(-radius, radius) * 1.3, rng.uniform(-radius, radius) * 1.3)
        o = _object(rng, kind, xy, size, simple=True)
        o["material"] = rng.choice(mats)
        out.append(o)
    return out


def _look_rotation_free_light(rng: random.Random, kind: str, target: list[float],
                              dist_scale: float) -> dict[str, Any]:
    """A light somewhere in the upper hemisphere around the target, aimed at it."""
    az = rng.uniform(0, 2 * math.pi)
    el = rng.uniform(math.radians(15), math.radians(80))
    d = rng.uniform(2.0, 6.0) * dist_scale
    loc = _vec(target[0] + d * math.cos(el) * math.cos(az), target[1] + d * math.cos(el) * math.sin(az),
               target[2] + d * math.sin(el))
    falloff = (d / 4.0) ** 2  # keep irradiance at the target roughly independent of distance
    light: dict[str, Any] = {"type": kind, "location": loc, "target": list(target), "color": _light_color(rng)}
    if kind == "area":
        light.update(size=_r(rng.uniform(0.2, 3.0)), energy=_r(rng.uniform(60, 500) * falloff),
                     shape=rng.choice(("SQUARE", "DISK", "RECTANGLE")), size_y=_r(rng.uniform(0.2, 2.0)))
    elif kind == "point":
        light.update(radius=_r(rng.choice((0.01, rng.uniform(0.05, 0.5)))),
                     energy=_r(rng.uniform(60, 500) * falloff))
    elif kind == "spot":
        light.update(radius=_r(rng.uniform(0.01, 0.3)), energy=_r(rng.uniform(150, 1000) * falloff),
                     spot_size=_r(rng.uniform(math.radians(20), math.radians(90))),
                     spot_blend=_r(rng.uniform(0.0, 1.0)))
    elif kind == "sun":
        light.update(energy=_r(rng.uniform(0.5, 2.5)), angle=_r(rng.uniform(math.radians(0.5), math.radians(10))))
    return light


def _keep_inside(light: dict[str, Any], room: dict[str, Any]) -> None:
    """Walls are opaque from inside: a light placed behind one would leave the scene black."""
    if light["type"] == "sun" or room["walls"] == "none":
        return
    loc = light["location"]
    loc[1] = _r(min(loc[1], room["back_y"] - 0.3))
    sx = room["side_x"]
    if room["walls"] in ("corner", "room"):
        loc[0] = _r(min(loc[0], sx - 0.3) if sx > 0 else max(loc[0], sx + 0.3))
    if room["walls"] == "room":
        loc[0] = _r(max(min(loc[0], abs(sx) - 0.3), -abs(sx) + 0.3))
        loc[2] = _r(min(loc[2], room["height"] - 0.3))


def _camera(rng: random.Random, target: list[float], radius: float, walls: str,
            simple: bool) -> dict[str, Any]:
    lens = rng.uniform(20, 85)
    half_fov = math.atan(18.0 / lens)  # 36 mm sensor, square render: fov is set by the width
    dist = radius / math.sin(half_fov) * rng.uniform(0.55, 1.1)
    az = -math.pi / 2 + rng.uniform(-1.1, 1.1) * (0.6 if walls != "none" else 1.0)
    el = rng.uniform(math.radians(3), math.radians(50))
    loc = [target[0] + dist * math.cos(el) * math.cos(az), target[1] + dist * math.cos(el) * math.sin(az),
           max(0.08, target[2] + dist * math.sin(el))]
    cam: dict[str, Any] = {"location": _vec(*loc), "target": _vec(*target), "lens": _r(lens),
                           "dof": None, "motion_blur": False}
    if not simple and rng.random() < 0.2:
        focus = math.dist(loc, target) * rng.uniform(0.8, 1.2)
        cam["dof"] = {"focus_distance": _r(focus), "fstop": _r(rng.uniform(1.2, 5.6))}
    return cam


def describe_scene(seed: int) -> dict[str, Any]:
    """The full scene for ``seed``: room, objects, materials, lights, world, camera, volume.

    About 5 % of scenes are deliberately simple (a few diffuse primitives, one light), so the
    denoiser also sees clean, low-frequency content and does not invent texture.
    """
    rng = random.Random(seed)
    simple = rng.random() < 0.05
    radius = rng.uniform(0.8, 2.2)

    # Room: ground always; walls make corners lit mostly by indirect light.
    walls = "none" if simple else _pick(rng, {"none": 0.35, "back": 0.3, "corner": 0.25, "room": 0.1})
    room = {
        "walls": walls,
        "back_y": _r(radius + rng.uniform(0.3, 3.0)),
        "side_x": _r((radius + rng.uniform(0.3, 3.0)) * rng.choice((-1, 1))),
        "height": _r(rng.uniform(2.5, 5.0)),
        "ground": describe_material(rng, allow_emission=False, simple=simple),
        "wall": describe_material(rng, allow_emission=False, simple=simple),
    }
    if not simple and rng.random() < 0.5 and room["ground"]["kind"] not in ("glass",):
        room["ground"]["texture"] = room["ground"]["texture"] or _texture(rng)

    # Main objects, rejection-sampled so they do not all pile up in one spot.
    objects: list[dict[str, Any]] = []
    spots: list[tuple[float, float, float]] = []
    for _ in range(rng.randint(1, 3) if simple else rng.randint(2, 7)):
        kind = rng.choice(("cube", "uv_sphere", "cylinder")) if simple else _pick(rng, MAIN_KINDS)
        size = rng.uniform(0.2, 0.7)
        for _try in range(20):
            xy = (rng.uniform(-radius, radius), rng.uniform(-radius, radius))
            if all(math.dist(xy, s[:2]) > 0.8 * (size + s[2]) for s in spots):
                break
        spots.append((xy[0], xy[1], size))
        objects.append(_object(rng, kind, xy, size, simple))
    if not simple and rng.random() < 0.35:
        objects += _wires(rng, radius)
    if not simple and rng.random() < 0.3:
        objects += _clutter(rng, radius)

    n = len(spots)
    cx = sum(s[0] for s in spots) / n
    cy = sum(s[1] for s in spots) / n
    extent = max(math.dist((cx, cy), s[:2]) + s[2] for s in spots)
    target = _vec(cx + rng.uniform(-0.2, 0.2), cy + rng.uniform(-0.2, 0.2), rng.uniform(0.2, 0.8))
    camera = _camera(rng, target, max(extent, 0.5) * 1.1, walls, simple)

    motion = not simple and rng.random() < 0.08
    if motion:  # a couple of objects move during the shutter
        camera["motion_blur"] = True
        for o in rng.sample(objects, k=min(len(objects), rng.randint(1, 3))):
            o["motion"] = _vec(rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(-0.1, 0.2))

    # Lights.
    lights: list[dict[str, Any]] = []
    n_lights = 1 if simple else rng.randint(1, 4)
    for _ in range(n_lights):
        kind = "area" if simple else _pick(rng, {"area": 0.35, "point": 0.2, "spot": 0.15, "sun": 0.15,
                                                   "mesh": 0.15})
        if kind == "mesh":  # emissive panel or sphere: light that is also visible geometry
            d = _look_rotation_free_light(rng, "point", target, 0.7)
            lights.append({"type": "mesh", "shape": rng.choice(("sphere", "panel")), "location": d["location"],
                           "target": d["target"], "size": _r(rng.uniform(0.1, 0.8)),
                           "strength": _r(rng.uniform(2, 15)), "color": d["color"]})
        else:
            lights.append(_look_rotation_free_light(rng, kind, target, 1.0))
    for light in lights:
        _keep_inside(light, room)
    if not simple and walls != "none" and rng.random() < 0.3:
        # Light aimed away from the objects at the back wall: the scene sees mostly bounce light.
        lights.append({"type": "area", "location": _vec(target[0], target[1] - 0.5, room["height"] * 0.6),
                       "target": _vec(target[0], room["back_y"], room["height"] * 0.5),
                       "size": _r(rng.uniform(0.5, 2.0)), "size_y": 1.0, "shape": "DISK",
                       "energy": _r(rng.uniform(100, 700)), "color": _light_color(rng), "bounce_only": True})
    if not simple and rng.random() < 0.3:
        # Tiny, very bright emitter: the classic firefly source once it reflects or refracts.
        s = rng.choice(spots)
        lights.append({"type": "mesh", "shape": "sphere", "firefly": True,
                       "location": _vec(s[0] + rng.uniform(-1, 1), s[1] + rng.uniform(-1, 1), rng.uniform(0.1, 2.0)),
                       "target": target, "size": _r(rng.uniform(0.01, 0.05)),
                       "strength": _r(rng.uniform(200, 3000)), "color": _light_color(rng)})

    world_kind = "color" if simple else _pick(rng, {"sky": 0.35, "color": 0.45, "dark": 0.2})
    world: dict[str, Any] = {"type": world_kind}
    if world_kind == "sky":
        world.update(sky_type=rng.choice(("MULTIPLE_SCATTERING", "SINGLE_SCATTERING")),
                     sun_elevation=_r(rng.uniform(math.radians(5), math.radians(70))),
                     sun_rotation=_r(rng.uniform(0, 2 * math.pi)), strength=_r(rng.uniform(0.05, 0.4)))
    elif world_kind == "color":
        world.update(color=_color(rng, (0.0, 0.5), (0.3, 1.0)), strength=_r(rng.uniform(0.05, 1.0)))
    else:
        world.update(color=_color(rng, (0.0, 0.3), (0.3, 1.0)), strength=_r(rng.uniform(0.0, 0.02)))

    volume = None
    if not simple and rng.random() < 0.08:
        s = rng.choice(spots)
        volume = {"location": _vec(s[0], s[1], rng.uniform(0.3, 1.0)), "scale": _r(rng.uniform(0.6, 1.8)),
                  "density": _r(rng.uniform(0.05, 1.0)), "color": _color(rng, (0, 0.5), (0.6, 1.0)),
                  "anisotropy": _r(rng.uniform(-0.3, 0.7))}

    return {
        "version": DESCRIPTION_VERSION, "seed": seed, "simple": simple, "room": room,
        "objects": objects, "lights": lights, "world": world, "camera": camera, "volume": volume,
    }


# -- training sequences: seed-derived motion over frames 1..T ------------------------------------
#
# A still scene made animated: the still description is frame 1 exactly, and the motion comes from
# its own random stream (``"mcdenoise:<seed>:motion"``), so adding motion never changes a still
# scene. Every pose is a pure function of the frame number: a sequence of 12 frames starts with
# the 8 frames of the same sequence rendered with ``--frames 8``.

#: Camera moves and how often each is drawn; ``still`` keeps the camera fixed (objects may move).
CAMERA_MOVES = {"still": 0.2, "dolly": 0.2, "truck": 0.25, "orbit": 0.2, "pan": 0.15}
#: The fastest image motion drawn, as a fraction of the image width per frame (6 px at 128 px):
#: fast enough that a temporal model meets history it must reject, not only history to trust.
MAX_SPEED = 6 / 128
#: A dolly in stays slower (its pixels move fastest at the image edge, and it must not reach the
#: objects within a couple of dozen frames); this is its largest relative step per frame.
MAX_DOLLY_IN = 0.03
#: The camera never goes below this height (the ground is at z = 0).
MIN_CAMERA_Z = 0.08


def _half_fov(lens: float) -> float:
    return math.atan(18.0 / lens)  # 36 mm sensor, square render (as _camera frames it)


def _image_width(camera: dict[str, Any], depth: float | None = None) -> float:
    """Width in metres that the image spans at ``depth`` (default: the camera's target):
    converts a speed in image widths per frame into metres per frame at that depth."""
    depth = math.dist(camera["location"], camera["target"]) if depth is None else depth
    return 2 * depth * math.tan(_half_fov(camera["lens"]))


def _nearest_depth(camera: dict[str, Any]) -> float:
    """Depth of the nearest ground the camera sees (the middle of the image's bottom edge), or of
    its target if that is nearer. A camera that moves sideways or forwards moves near things
    fastest across the image, so its speed is set there: a low camera's ground would otherwise
    race past at several times the drawn speed."""
    loc, target = camera["location"], camera["target"]
    dist = math.dist(loc, target)
    hf = _half_fov(camera["lens"])
    down = math.asin(max(-1.0, min(1.0, (loc[2] - target[2]) / dist))) + hf  # bottom ray below horizontal
    if down <= 0:
        return dist
    return min(dist, loc[2] * math.cos(hf) / math.sin(down))


def _unit(v: tuple[float, ...]) -> tuple[float, ...]:
    n = math.sqrt(sum(a * a for a in v)) or 1.0
    return tuple(a / n for a in v)


def _turn_about(point: list[float], centre: list[float], angle: float) -> list[float]:
    """``point`` turned by ``angle`` about the vertical axis through ``centre``."""
    dx, dy = point[0] - centre[0], point[1] - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    return [centre[0] + c * dx - s * dy, centre[1] + s * dx + c * dy, point[2]]


def _camera_motion(rng: random.Random, camera: dict[str, Any]) -> dict[str, Any]:
    move = _pick(rng, CAMERA_MOVES)
    speed = 0.0 if move == "still" else rng.uniform(0.05, 1.0) * MAX_SPEED  # image widths / frame
    m: dict[str, Any] = {"move": move, "speed": _r(speed)}
    loc, target = camera["location"], camera["target"]
    view = _unit(tuple(b - a for a, b in zip(loc, target)))
    if move == "truck":  # sideways (sometimes up or down) with the view direction kept
        right = _unit((view[1], -view[0], 0.0))
        up = (right[1] * view[2] - right[2] * view[1], right[2] * view[0] - right[0] * view[2],
              right[0] * view[1] - right[1] * view[0])
        a = rng.uniform(-0.5, 0.5) + (math.pi / 2 if rng.random() < 0.15 else 0.0)
        a += math.pi if rng.random() < 0.5 else 0.0
        step = speed * _image_width(camera, _nearest_depth(camera))
        vel = [step * (math.cos(a) * r + math.sin(a) * u) for r, u in zip(right, up)]
        if vel[2] < 0 and loc[2] + 24 * vel[2] < MIN_CAMERA_Z + 0.2:
            vel[2] = -vel[2]  # a low camera moves up rather than into the ground
        m["velocity"] = _vec(*vel)
    elif move == "orbit":  # around the target, aimed at it: near and far move in opposite directions
        horizontal = math.dist(loc[:2], target[:2]) or 1.0
        step = speed * _image_width(camera, _nearest_depth(camera))
        m["turn"] = _r(min(0.08, step / horizontal) * rng.choice((-1, 1)))
    elif move == "pan":  # turning in place: everything slides across the image alike
        m["turn"] = _r(2 * speed * math.tan(_half_fov(camera["lens"])) * rng.choice((-1, 1)))
    elif move == "dolly":  # towards or away from the target: motion grows towards the edges
        inward = rng.random() < 0.5
        rate = 2 * speed * _nearest_depth(camera) / math.dist(loc, target)  # the bottom edge's speed
        m["rate"] = _r(min(rate, MAX_DOLLY_IN) if inward else -rate)
    return m


def _movable(obj: dict[str, Any]) -> bool:
    """Objects worth moving: not the thin wires nor the smallest clutter."""
    return max(obj["scale"]) >= 0.2 and min(obj["scale"]) >= 0.08


def describe_motion(seed: int, desc: dict[str, Any]) -> dict[str, Any]:
    """The motion of the training sequence of scene ``seed`` (``desc``: its still description):
    a camera move, 1-3 objects sliding and/or turning, and in some sequences a light circling
    the target. Speeds are in image widths per frame (camera, objects) and radians per frame."""
    rng = random.Random(f"mcdenoise:{seed}:motion")
    cam = desc["camera"]
    camera = _camera_motion(rng, cam)
    view = _unit(tuple(b - a for a, b in zip(cam["location"], cam["target"])))
    candidates = [i for i, o in enumerate(desc["objects"]) if _movable(o)]
    objects = []
    for i in sorted(rng.sample(candidates, k=min(len(candidates), rng.randint(1, 3)))):
        kind = rng.choice(("slide", "turn", "slide+turn"))
        speed = rng.uniform(0.05, 1.0) * MAX_SPEED if "slide" in kind else 0.0
        a = rng.uniform(0, 2 * math.pi)
        # In image widths at the object's own depth: an object near the lens would race past.
        depth = sum((p - c) * v for p, c, v in zip(desc["objects"][i]["location"], cam["location"], view))
        width = _image_width(cam, max(depth, 0.1))
        objects.append({"index": i, "kind": kind, "speed": _r(speed),
                        "velocity": _vec(speed * width * math.cos(a), speed * width * math.sin(a), 0.0),
                        "turn": _r(rng.uniform(0.03, 0.15) * rng.choice((-1, 1)) if "turn" in kind else 0.0)})
    light = None
    if desc["lights"] and rng.random() < 0.35:
        light = {"index": rng.randrange(len(desc["lights"])),
                 "turn": _r(rng.uniform(0.03, 0.15) * rng.choice((-1, 1)))}
    return {"camera": camera, "objects": objects, "light": light}


def describe_sequence(seed: int) -> dict[str, Any]:
    """The still scene of ``seed`` with its motion (``"animation"``) and without motion blur:
    Blender writes the Vector pass only with motion blur off, and the still scenes' blurred
    objects would move during the shutter only, so their shutter motion is dropped."""
    desc = describe_scene(seed)
    desc["camera"]["motion_blur"] = False
    for o in desc["objects"]:
        o.pop("motion", None)
    desc["animation"] = describe_motion(seed, desc)
    return desc


def camera_pose(desc: dict[str, Any], frame: int) -> tuple[list[float], list[float]]:
    """Camera location and look-at target at ``frame`` (frame 1 is the still scene's pose)."""
    cam, m = desc["camera"], desc["animation"]["camera"]
    loc, target, t = list(cam["location"]), list(cam["target"]), frame - 1
    if t == 0 or m["move"] == "still":
        pass
    elif m["move"] == "truck":
        shift = [v * t for v in m["velocity"]]
        loc = [a + d for a, d in zip(loc, shift)]
        target = [a + d for a, d in zip(target, shift)]
    elif m["move"] == "orbit":
        loc = _turn_about(loc, target, m["turn"] * t)
    elif m["move"] == "pan":
        target = _turn_about(target, loc, m["turn"] * t)
    elif m["move"] == "dolly":
        k = math.exp(-m["rate"] * t)  # a constant relative step: image motion stays even
        loc = [b + (a - b) * k for a, b in zip(loc, target)]
    if loc[2] < MIN_CAMERA_Z:
        target[2] += MIN_CAMERA_Z - loc[2]
        loc[2] = MIN_CAMERA_Z
    return loc, target


def object_pose(desc: dict[str, Any], move: dict[str, Any], frame: int) -> tuple[list[float], list[float]]:
    """Location and rotation of moving object ``move["index"]`` at ``frame``."""
    obj, t = desc["objects"][move["index"]], frame - 1
    loc = [a + v * t for a, v in zip(obj["location"], move["velocity"])]
    rot = list(obj["rotation"])
    rot[2] += move["turn"] * t
    return loc, rot


def light_location(desc: dict[str, Any], frame: int) -> list[float]:
    """Where the moving light is at ``frame``: circling its target, kept inside the room."""
    m = desc["animation"]["light"]
    light = dict(desc["lights"][m["index"]])
    if frame != 1:
        light["location"] = _turn_about(light["location"], light["target"], m["turn"] * (frame - 1))
        if not light.get("firefly") and not light.get("bounce_only"):  # as describe_scene placed them
            _keep_inside(light, desc["room"])
    return light["location"]
