"""Blender-side glue shared by the operators and the render handlers: settings snapshots, the
Render Result as a temporary EXR, denoised pixels as a new image, and what a scene lacks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import bpy
import numpy as np

from . import preferences, properties, runtime
from .worker import Job


def make_job(scene: bpy.types.Scene, in_path: Path, out_path: Path) -> Job:
    prefs, settings = preferences.get(), scene.mcdenoise
    return Job(in_path, out_path, prefs.backend, prefs.python_path, prefs.device, prefs.weights_path,
               settings.pass_name, properties.tile_side(settings), settings.require_aux, settings.quality)


def is_multilayer_exr(scene: bpy.types.Scene) -> bool:
    return scene.render.image_settings.file_format == "OPEN_EXR_MULTILAYER"


def _format_fields(im: bpy.types.ImageFormatSettings) -> tuple[str, ...]:
    """The output-format settings in the order they must be set: Blender 5.0 added
    ``media_type``, which picks the formats ``file_format`` may take; 4.2 to 4.5 have none."""
    return ("media_type", "file_format", "color_depth") if hasattr(im, "media_type") else ("file_format", "color_depth")


def use_multilayer_exr(im: bpy.types.ImageFormatSettings) -> None:
    """Set an output format to multilayer EXR on every Blender the manifest claims."""
    if hasattr(im, "media_type"):
        im.media_type = "MULTI_LAYER_IMAGE"
    im.file_format = "OPEN_EXR_MULTILAYER"


@contextlib.contextmanager
def multilayer_exr_settings(scene: bpy.types.Scene):
    """Switch the scene's output format to multilayer EXR for a ``save_render`` and put it back:
    ``save_render`` always writes in the scene's format, and a PNG would lose the passes."""
    im = scene.render.image_settings
    before = {name: getattr(im, name) for name in _format_fields(im)}
    try:
        if not is_multilayer_exr(scene):
            use_multilayer_exr(im)
            im.color_depth = "32"
        yield
    finally:
        for name, value in before.items():
            if getattr(im, name) != value:
                setattr(im, name, value)


def save_render_result(scene: bpy.types.Scene, folder: Path) -> Path:
    image = bpy.data.images.get("Render Result")
    if image is None:
        raise runtime_error("there is no Render Result yet: render a frame (F12) first")
    path = folder / f"render_result_{os.getpid()}_{scene.frame_current:04d}.exr"
    with multilayer_exr_settings(scene):
        image.save_render(str(path), scene=scene)
    if not path.is_file():
        raise runtime_error("Blender wrote no file for the Render Result; render a frame (F12) first")
    return path


def runtime_error(message: str) -> Exception:
    from .worker import AddonError  # noqa: PLC0415

    return AddonError(message)


def temp_dir() -> Path:
    path = Path(tempfile.gettempdir()) / "mcdenoise-blender"
    path.mkdir(parents=True, exist_ok=True)
    return path


def show_pixels(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """A float image holding linear radiance (Blender shows it with the scene's view transform)."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (w, h):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = rgb
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender stores rows bottom-up
    image.update()
    return image


def show_file(name: str, path: Path) -> bpy.types.Image:
    """Load a denoised EXR written by an external worker (pick the pass in the Image Editor)."""
    old = bpy.data.images.get(name)
    if old is not None:
        bpy.data.images.remove(old)
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    return image


def setup_problems(context: bpy.types.Context) -> list[str]:
    """What keeps the denoiser from getting its inputs, as panel warnings."""
    scene, problems = context.scene, []
    if scene.render.engine != "CYCLES":
        problems.append("Render engine is not Cycles")
    elif scene.cycles.use_denoising:
        problems.append("Cycles' own denoiser is on: it costs render time, and mcdenoise reads Noisy Image, not its result")
    if not all(getattr(vl, "cycles", None) and vl.cycles.denoising_store_passes for vl in scene.view_layers if vl.use):
        problems.append("Denoising Data passes are off (albedo/normal)")
    if not is_multilayer_exr(scene):
        problems.append("Output is not multilayer EXR (passes not written)")
    prefs = preferences.get(context)
    if prefs.backend == "EXTERNAL" or (prefs.backend == "AUTO" and runtime.missing_modules()):
        problem = runtime.external_python_problem(prefs.python_path)
        if problem:
            problems.append("PyTorch not in Blender and no external Python set" if prefs.backend == "AUTO" else problem)
    elif runtime.missing_modules():
        problems.append(f"Not importable: {', '.join(runtime.missing_modules())}")
    return problems
