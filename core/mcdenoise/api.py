"""Denoising from Python, for pipelines: :func:`denoise` takes arrays, :func:`denoise_exr` files.

Both run the same model, tiling and memory rule as ``mcdenoise denoise`` (see docs/api.md).
A model is loaded once per (quality or weights file, device) and kept for the process, so a
pipeline that denoises frame after frame pays for loading once. Arrays are checked here and
refused with a :class:`~mcdenoise.errors.McDenoiseError` saying what to pass instead, rather
than failing somewhere inside torch.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from mcdenoise.choices import DEFAULT_DEVICE, DEFAULT_QUALITY
from mcdenoise.errors import McDenoiseError, MissingPassError, PassShapeError, WeightsError

# Float types an array may come in (converted to float32 for the network; float16 is kept, it
# is exact in float32 and the encoder converts it tile by tile). Integers are refused: 8-bit
# values are display-referred, not radiance, and would be denoised as nonsense HDR.
ACCEPTED_DTYPES = (np.float16, np.float32, np.float64)

_models: dict[tuple[str, str], object] = {}
_models_lock = threading.Lock()


def denoise(color, albedo=None, normal=None, *, samples: float | None = None, quality: str = DEFAULT_QUALITY,
            weights: str | os.PathLike | None = None, device: str = DEFAULT_DEVICE) -> np.ndarray:
    """The denoised colour of one image: (H, W, 3) float32 in ``color``'s radiance units.

    ``color``, ``albedo`` and ``normal`` are NumPy arrays of shape (H, W, 3) and one size,
    float16, float32 or float64 (other types are refused). ``albedo`` and ``normal`` come
    together or not at all; without them the model denoises from colour only (lower quality).
    NaN and infinite values are made finite as the command line does. ``samples``: the samples
    per pixel the image was rendered with (the maximum, with adaptive sampling), which tells the
    model how much of what it sees is noise; without it the model judges that from the picture,
    and may take fine texture of a clean render for noise. ``quality`` picks a
    shipped model (fast, balanced, high); ``weights`` a trained weights file instead.
    ``device`` is auto, cpu, cuda or cuda:N.
    """
    color = _image(color, "color")
    guides = {"albedo": _image(albedo, "albedo", color.shape), "normal": _image(normal, "normal", color.shape)}
    if (guides["albedo"] is None) != (guides["normal"] is None):
        given, missing = ("albedo", "normal") if guides["normal"] is None else ("normal", "albedo")
        raise MissingPassError(f"{given} was given without {missing}; give both guide images, or neither")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, (int, float, np.integer, np.floating))
                                or not samples >= 1):
        raise McDenoiseError(f"samples is {samples!r}; pass the samples per pixel the image was rendered with "
                             "(a number, 1 or more), or None when it is not known")

    from mcdenoise import features, hdr
    from mcdenoise.inference.denoise import denoise_frame
    from mcdenoise.inference.encode import FrameInputs
    from mcdenoise.inference.runtime import Runtime

    loaded = _model(quality, weights, device)
    if features.layout_features(loaded.inputs)[0] is not features.COLOR:
        raise WeightsError(f"{loaded.path}: a greyscale DnCNN cannot denoise colour images; use a render model")
    wanted = features.passes_to_read(loaded.inputs)
    passes = {name: guides.get(name) for name in wanted}
    if any(passes[name] is None for name in features.AUX_FEATURES):  # aux passes come together or not at all
        passes.update(dict.fromkeys(features.AUX_FEATURES))
    inputs = FrameInputs(color, **passes, samples=None if samples is None else float(samples))
    runtime = Runtime.for_model(loaded.model)
    tile = runtime.tile_for(loaded.model, inputs)
    result = denoise_frame(loaded, inputs, tile, hdr.autoexposure(color), runtime=runtime)
    if not np.isfinite(result).all():
        raise WeightsError(f"the denoised image is not finite (NaN pixels) though its inputs were; "
                           f"the weights ({loaded.path}) are the likely cause: re-export or re-download them")
    return result


def denoise_exr(in_path: str | os.PathLike, out_path: str | os.PathLike, *, quality: str = DEFAULT_QUALITY,
                weights: str | os.PathLike | None = None, device: str = DEFAULT_DEVICE, pass_name: str = "Denoised",
                pass_preset: str | None = None, require_aux: bool = False) -> Path:
    """Denoise an EXR render into ``out_path`` (which may be ``in_path``: the write is atomic)
    with a ``pass_name`` pass added beside the file's own parts, as ``mcdenoise denoise IN -o
    OUT`` does; returns ``out_path``. ``pass_preset`` names the renderer's pass naming
    (:data:`mcdenoise.io.passes.PRESETS`; default Blender's). A frame without albedo/normal is
    denoised from colour only, with an ``AuxMissingWarning``, unless ``require_aux``."""
    from mcdenoise.inference.frames import denoise_file
    from mcdenoise.io.passes import DEFAULT_PRESET, PRESETS

    preset = pass_preset or DEFAULT_PRESET
    if preset not in PRESETS:
        raise McDenoiseError(f"unknown pass preset {preset!r}; use one of {', '.join(sorted(PRESETS))}")
    loaded = _model(quality, weights, device)
    result = denoise_file(loaded, in_path, out_path, PRESETS[preset], pass_name=pass_name, require_aux=require_aux)
    return result.output


def _image(array, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """``array`` as an (H, W, 3) float array, or a McDenoiseError saying what to pass instead."""
    if array is None:
        if shape is None:
            raise PassShapeError("color is required (an (H, W, 3) float array)")
        return None
    if not isinstance(array, np.ndarray):
        raise PassShapeError(f"{name} must be a NumPy array of shape (H, W, 3), got a {type(array).__name__}; "
                             "wrap it with numpy.asarray(..., dtype=numpy.float32)")
    if array.dtype not in ACCEPTED_DTYPES:
        raise PassShapeError(f"{name} has dtype {array.dtype}; pass float16, float32 or float64 radiance "
                             "(integer images are display values, not radiance, and complex values are no image)")
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        raise PassShapeError(f"{name} is channels-first {array.shape}; pass (H, W, 3): numpy.moveaxis({name}, 0, -1)")
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise PassShapeError(f"{name} has shape {array.shape}; pass (H, W, 3) (for RGBA, {name}[..., :3]; "
                             f"for a grey image, numpy.repeat({name}[..., None], 3, axis=-1))")
    if shape is not None and array.shape != shape:
        raise PassShapeError(f"{name} is {array.shape[1]}x{array.shape[0]} but color is {shape[1]}x{shape[0]}; "
                             "pass guide images of the colour's size")
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _model(quality: str, weights: str | os.PathLike | None, device: str):
    """The loaded model for these options, loaded on first use and then kept."""
    from mcdenoise.inference.runtime import resolve_device
    from mcdenoise.models.tiers import load_quality, load_weights

    if weights is not None and quality != DEFAULT_QUALITY:
        raise WeightsError("both a weights file and a quality were given (a weights file already fixes the model size)",
                           fix="weights_or_quality")
    dev = resolve_device(device)
    key = (f"weights:{Path(weights).resolve()}" if weights is not None else f"quality:{quality}", str(dev))
    with _models_lock:
        if key not in _models:
            _models[key] = load_weights(weights, device=dev) if weights is not None else load_quality(quality, device=dev)
        return _models[key]
