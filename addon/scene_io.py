"""Blender-side glue shared by the operators and the render handlers: settings snapshots, the
Render Result as a temporary EXR, denoised pixels as a new image, and what a scene lacks."""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
from pathlib import Path

import bpy
import numpy as np

from . import preferences, properties, runtime
from .worker import Job


def make_job(scene: bpy.types.Scene, in_path: Path, out_path: Path) -> Job:
    prefs, settings = preferences.get(), scene.mcdenoise
    # The scene's own model (a fine-tune on this shot) before the preferences' one, before Quality.
    chosen = settings.weights_path or prefs.weights_path
    python, weights = (runtime.bpy_abspath(p) if p else "" for p in (prefs.python_path, chosen))
    return Job(in_path, out_path, prefs.backend, python, prefs.device, weights,
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


def view_layer_names(scene: bpy.types.Scene) -> tuple[str, ...]:
    """The scene's view layers, the layers of its EXRs the denoiser may take (never Blender's
    ``Composite``)."""
    return tuple(layer.name for layer in scene.view_layers)


def shown_layer(scene: bpy.types.Scene) -> str:
    """The view layer whose denoised frame an image shows: the window's, else the first."""
    view_layer = getattr(bpy.context, "view_layer", None)
    return view_layer.name if view_layer is not None and view_layer.name in scene.view_layers else scene.view_layers[0].name


def save_render_result(scene: bpy.types.Scene) -> Path:
    """The Render Result as a multilayer EXR in Blender's session temp folder, under a name of
    its own (two runs never share one). The caller deletes it."""
    image = bpy.data.images.get("Render Result")
    if image is None:
        raise runtime_error("there is no Render Result yet: render a frame (F12) first")
    path = temp_dir() / f"render_result_{scene.frame_current:04d}_{secrets.token_hex(4)}.exr"
    with multilayer_exr_settings(scene):
        try:
            image.save_render(str(path), scene=scene)
        except RuntimeError:  # a stereo Render Result: a file per view written, reported as a failure
            if not _view_files(scene, path):
                raise
    written = {view: p for view, p in _view_files(scene, path).items() if p.is_file()}
    if written and not path.is_file():
        _join_views(written, path)
    if not path.is_file():
        raise runtime_error("Blender wrote no file for the Render Result; render a frame (F12) first")
    return path


def _view_files(scene: bpy.types.Scene, path: Path) -> dict[str, Path]:
    """The file per view ``save_render`` writes for a stereo Render Result in place of ``path``
    (whatever the Views Format: it cannot write one file holding every view); {} when mono."""
    render = scene.render
    if not render.use_multiview:
        return {}
    names = ("left", "right") if render.views_format == "STEREO_3D" else [v.name for v in render.views if v.use]
    return {name: path.with_name(path.stem + render.views[name].file_suffix + path.suffix)
            for name in names if name in render.views}


def _join_views(files: dict[str, Path], path: Path) -> None:
    """One stereo EXR at ``path`` from a file per view (deleted), so each view is denoised."""
    try:
        runtime.core()
        from mcdenoise.io.write import join_views  # noqa: PLC0415 (imports OpenEXR)
    except ImportError as exc:
        raise runtime_error(f"Blender saves a stereo Render Result as a file per view, and joining them needs OpenEXR "
                            f"in Blender ({exc}); render to a multilayer EXR output and denoise that file") from exc
    try:
        join_views(files, path)
    finally:
        for file in files.values():
            file.unlink(missing_ok=True)


def runtime_error(message: str) -> Exception:
    from .worker import AddonError  # noqa: PLC0415

    return AddonError(message)


def temp_dir() -> Path:
    """Scratch files go to Blender's own session folder (private to this Blender, removed when
    it exits), never a shared folder of the system's."""
    path = Path(bpy.app.tempdir or tempfile.gettempdir()) / "mcdenoise"
    path.mkdir(parents=True, exist_ok=True)
    return path


# Image name -> the scratch EXR it shows: a new result for the same image replaces the file.
_scratch: dict[str, Path] = {}


def scratch_output(image_name: str) -> Path:
    """A fresh scratch EXR for the denoised file behind image ``image_name``; the previous one of
    that image is deleted."""
    old = _scratch.pop(image_name, None)
    if old is not None:
        old.unlink(missing_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", image_name).strip("_") or "image"
    path = _scratch[image_name] = temp_dir() / f"{stem}_{secrets.token_hex(4)}.exr"
    return path


def image_file(image: bpy.types.Image, frame: int | None = None) -> tuple[Path, bool]:
    """The EXR behind an opened image, and whether it is a scratch copy to delete afterwards:
    the file of ``frame`` for an image sequence (the Image Editor's frame), the packed bytes
    written to Blender's temp folder for a packed image, else the image's file."""
    if image.packed_file is not None:
        data = bytes(image.packed_file.data)
        if data[:4] != EXR_MAGIC:
            raise runtime_error(f"'{image.name}' is packed but not an EXR: open a multilayer EXR with albedo/normal passes")
        path = temp_dir() / f"{Path(image.filepath or image.name).stem}_{secrets.token_hex(4)}.exr"
        path.write_bytes(data)
        return path, True
    if image.source == "SEQUENCE" and frame is not None:
        path = Path(_sequence_frame(image, frame))
    else:
        path = Path(bpy.path.abspath(image.filepath_raw or image.filepath))
    if image.source not in {"FILE", "SEQUENCE"} or path.suffix.lower() != ".exr":
        raise runtime_error(f"'{image.name}' is not an EXR file: open a multilayer EXR with albedo/normal passes, or render a frame")
    return path, False


EXR_MAGIC = b"\x76\x2f\x31\x01"


def _sequence_frame(image: bpy.types.Image, frame: int) -> str:
    """The file of ``frame`` of an image sequence: its path with the frame number replaced, as
    Blender numbers sequence files (the digits before the extension)."""
    path = bpy.path.abspath(image.filepath)
    match = re.search(r"(\d+)(\.[^.\\/]*)$", path)
    if match is None:
        return path
    digits = match.group(1)
    return path[: match.start(1)] + f"{frame:0{len(digits)}d}" + match.group(2)


def show_result(name: str, result, layer: str) -> bpy.types.Image:
    """The image of a denoised file (:class:`mcdenoise.writeback.FileResult`): the pixels of
    ``layer`` (or of the first denoised layer) when the model ran in Blender, else the file."""
    if result.denoised:
        layer = layer if layer in result.denoised else next(iter(result.denoised))
        return show_pixels(name, result.denoised[layer], result.alpha.get(layer))
    return show_file(name, result.path)


def show_pixels(name: str, rgb: np.ndarray, alpha: np.ndarray | None = None) -> bpy.types.Image:
    """A float image holding linear radiance (Blender shows it with the scene's view transform),
    with the render's alpha (a transparent film stays transparent)."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (w, h):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = rgb
    if alpha is not None:
        rgba[..., 3] = alpha
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
