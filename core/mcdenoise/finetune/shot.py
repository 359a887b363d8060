"""An artist's shot, read and rendered through Blender as a Python module (the ``render`` extra).

``open_shot`` loads the .blend and reads what fine-tuning must match: the active camera, the
frame range, the final resolution and the sample count. ``render_window`` renders one frame of
it, one window of the picture, into an EXR with the passes the denoiser reads. Everything that
makes the picture (camera, materials, lights, bounces, exposure, motion blur) stays the shot's;
only what we need to read the result changes: EXR output with the Denoising Data passes and
Cycles' own denoiser off (``dataset.render.set_output``), and no compositing, so the file holds
the render itself. The .blend on disk is never written.

Windows rather than a smaller resolution: a window of the full-resolution frame has the shot's
own noise, texture detail and blur per pixel, which is what the denoiser will meet on the final
frames; scaling the resolution down would change all three. A window costs its share of the
frame's samples, so a CPU budget buys a few windows per frame instead of one blurred frame.
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcdenoise.dataset.blender_scene import import_bpy
from mcdenoise.dataset.render import (
    signals_held,
    REF_ADAPTIVE_THRESHOLD,
    _quiet_stdout,
    _setup_device,
    cycles_seed,
    render_exr,
    set_output,
)
from mcdenoise.errors import ShotError

# The first bytes of a .blend: uncompressed, gzip (Blender 2.x-3.x "Compress"), zstd (3.0+).
BLEND_MAGICS = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")


@dataclass(frozen=True)
class Shot:
    """What fine-tuning reads from a .blend: names, frame range, final pixels and samples."""

    path: Path
    scene: str
    camera: str
    view_layer: str
    frame_start: int
    frame_end: int
    width: int
    height: int
    spp: int  # Cycles' samples (the maximum, when adaptive sampling is on)
    adaptive: bool
    blender: str

    def seed(self, frame: int, role: str) -> int:
        """A Cycles seed per frame and role, from the file name: a re-render is the same image,
        and every render of a frame gets independent noise (``dataset.render.cycles_seed``)."""
        return cycles_seed(zlib.crc32(f"{self.path.name}:{self.scene}:{frame}".encode()), role)


def check_blend(path: str | Path) -> Path:
    """``path`` if it is a readable .blend file (by its first bytes, whatever its name)."""
    path = Path(path)
    if not path.is_file():
        raise ShotError(f"{path}: no such file", fix="blend_file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ShotError(f"{path}: cannot read it ({exc.strerror})", fix="blend_file") from exc
    if not head.startswith(BLEND_MAGICS):
        raise ShotError(f"{path}: not a Blender file (.blend)", fix="blend_file")
    return path


def open_shot(path: str | Path, frames: list[int] | None = None) -> tuple[Any, Shot]:
    """Load the .blend into Blender and check it can be fine-tuned on; returns (bpy scene, Shot).

    Refused, each with its own fix: a file that is not a .blend, a scene without a camera, a
    scene that does not render with Cycles, and ``frames`` outside the scene's frame range.
    Python inside the file (drivers, startup scripts) is not run: the file may come from anyone.
    """
    path = check_blend(path).resolve()
    bpy = import_bpy()
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    try:
        with _quiet_stdout():
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ShotError(f"{path}: Blender cannot open it ({first})", fix="blend_file") from exc
    scene = bpy.context.scene
    if scene.camera is None:
        raise ShotError(f"{path}: scene {scene.name!r} has no active camera", fix="shot_camera")
    if scene.render.engine != "CYCLES":
        raise ShotError(f"{path}: scene {scene.name!r} renders with {scene.render.engine}, not Cycles", fix="shot_engine")
    first, last = scene.frame_start, scene.frame_end
    outside = [f for f in frames or () if not first <= f <= last]
    if outside:
        shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        raise ShotError(f"{path}: frame(s) {shown} are outside the scene's range {first}-{last}",
                        fix="shot_frames", first=first, last=last)
    layer = next((vl for vl in scene.view_layers if vl.use), scene.view_layers[0])
    pct = scene.render.resolution_percentage / 100
    shot = Shot(path=path, scene=scene.name, camera=scene.camera.name, view_layer=layer.name,
                frame_start=first, frame_end=last,
                width=max(1, int(scene.render.resolution_x * pct)), height=max(1, int(scene.render.resolution_y * pct)),
                spp=int(scene.cycles.samples), adaptive=bool(scene.cycles.use_adaptive_sampling),
                blender=bpy.app.version_string)
    return scene, shot


def prepare(scene: Any, shot: Shot, device: str = "cpu", threads: int = 0) -> str:
    """Set the loaded shot up for our renders: one view layer, EXR output with denoising data,
    no compositing, the seed ours. Returns the Cycles device used (``cpu`` or a GPU backend)."""
    bpy = import_bpy()
    used = _setup_device(bpy, scene, device)
    layer = scene.view_layers[shot.view_layer]
    for vl in scene.view_layers:
        vl.use = vl == layer
    set_output(scene, threads, layer)
    r = scene.render
    r.use_compositing = False
    r.use_sequencer = False
    r.use_border = True
    r.use_crop_to_border = True
    scene.cycles.use_animated_seed = False  # our seed per render, not one derived from the frame
    return used


def render_window(scene: Any, shot: Shot, frame: int, window: tuple[int, int, int, int], samples: int,
                  seed: int, out: Path, reference: bool = False) -> None:
    """Render ``window`` (x0, y0, x1, y1 in pixels, y down) of ``frame`` into ``out``.

    The noisy side keeps the shot's own adaptive sampling (what its final frames will have); a
    reference uses adaptive sampling at a threshold no looser than the dataset's, which keeps it
    unbiased and skips converged pixels.
    """
    bpy = import_bpy()
    x0, y0, x1, y1 = window
    r = scene.render
    # Blender's border is in fractions of the frame, y up from the bottom.
    r.border_min_x, r.border_max_x = x0 / shot.width, x1 / shot.width
    r.border_min_y, r.border_max_y = 1 - y1 / shot.height, 1 - y0 / shot.height
    scene.frame_set(frame)
    c = scene.cycles
    saved = (c.adaptive_threshold, getattr(c, "time_limit", 0.0))
    try:
        if reference:
            c.adaptive_threshold = min(c.adaptive_threshold or REF_ADAPTIVE_THRESHOLD, REF_ADAPTIVE_THRESHOLD)
            with contextlib.suppress(AttributeError):
                c.time_limit = 0.0
        with signals_held():
            render_exr(bpy, scene, out, samples, seed, adaptive=shot.adaptive or reference)
    finally:
        c.adaptive_threshold = saved[0]
        with contextlib.suppress(AttributeError):
            c.time_limit = saved[1]
