"""Small EXR files written from scratch for tests: a Blender-like multi-part multilayer file, a
single-part layered file and a plain RGBA file with an offset data window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR


def box(x0: int, y0: int, x1: int, y1: int) -> tuple:
    return (np.array([x0, y0], np.int32), np.array([x1, y1], np.int32))


def noisy_scene(h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A smooth image with Monte-Carlo-like speckle, plus matching albedo and normal."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    clean = np.stack([0.5 + 0.4 * np.sin(xx / 7), 0.4 + 0.3 * np.cos(yy / 5), 0.3 + 0.2 * np.sin((xx + yy) / 9)], -1)
    noisy = clean * rng.exponential(1.0, clean.shape).astype(np.float32)
    albedo = np.clip(clean * 0.8, 0, 1)
    normal = np.dstack([np.sin(xx / 11), np.cos(yy / 13), np.ones_like(xx)])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return {"clean": clean.astype(np.float32), "color": noisy.astype(np.float32), "albedo": albedo.astype(np.float32), "normal": normal.astype(np.float32)}


def write_blender_like(path: Path, h: int = 40, w: int = 56, layers: tuple[str, ...] = ("ViewLayer",), aux: bool = True,
                       data_window: tuple[int, int] = (0, 0), seed: int = 0) -> dict[str, np.ndarray]:
    """Multi-part file named like Blender 5.0's output, with mixed pixel types and extra attributes.
    Layer ``i`` holds ``noisy_scene(h, w, seed + i)``, so reading the wrong layer shows in the
    colour (albedo and normal do not depend on the seed); the first layer's scene is returned."""
    scenes = [noisy_scene(h, w, seed + i) for i in range(len(layers))]
    x0, y0 = data_window
    common = {
        "compression": OpenEXR.PIZ_COMPRESSION,
        "dataWindow": box(x0, y0, x0 + w - 1, y0 + h - 1),
        "displayWindow": box(0, 0, x0 + w + 7, y0 + h + 5),
        "Software": "mcdenoise tests",
        "cycles.ViewLayer.samples": "4",
        "customFloat": 2.5,
    }
    parts = []
    for layer, s in zip(layers, scenes):
        passes = {"Combined": {"R": s["color"][..., 0], "G": s["color"][..., 1], "B": s["color"][..., 2], "A": np.ones((h, w), np.float32)},
                  "Depth": {"Z": np.full((h, w), 3.0, np.float32)}}
        if aux:
            passes["Denoising Albedo"] = {c: s["albedo"][..., i].astype(np.float16) for i, c in enumerate("RGB")}
            passes["Denoising Normal"] = {c: s["normal"][..., i] for i, c in enumerate("XYZ")}
        for pname, chans in passes.items():
            name = f"{layer}.{pname}"
            header = dict(common, name=name)
            parts.append(OpenEXR.Part(header, {f"{name}.{c}": px for c, px in chans.items()}, name))
    OpenEXR.File(parts).write(str(path))
    return scenes[0]


def channel_dump(path: Path) -> dict:
    """Everything a faithful copy must keep: per part, its header (less writer-computed keys)
    and every channel's dtype and bytes."""
    f = OpenEXR.File(str(path), separate_channels=True)
    out = {}
    for part in f.parts:
        header = {k: (tuple(map(tuple, v)) if k.endswith("Window") else v) for k, v in part.header.items() if k not in ("channels", "chunkCount")}
        chans = {n: (c.pixels.dtype.str, c.pixels.tobytes()) for n, c in part.channels.items()}
        out[part.name()] = (repr(sorted(header.items(), key=lambda kv: kv[0])), chans)
    return out
