"""Denoise one EXR file end to end: read passes, run the model, write the file back with the
new pass. The CLI, the batch runner and the Blender add-on all call :func:`denoise_file`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcdenoise import hdr
from mcdenoise.errors import MissingPassError, OutputError, WeightsError
from mcdenoise.io.exr import Frame, read_frame, write_with_pass
from mcdenoise.inference.denoise import ProgressFn, denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.runtime import DEFAULT_TILE
from mcdenoise.models.loader import LoadedModel
from mcdenoise.io.passes import PassNames


class AuxMissingWarning(UserWarning):
    """A frame has no albedo/normal pass; the model runs colour-only (lower quality)."""


@dataclass
class DenoiseResult:
    input: Path
    output: Path
    frame: Frame
    denoised: np.ndarray
    used_aux: bool


@dataclass
class PreparedFrame:
    """A frame read and checked, ready for the model: the batch runner reads the next frame into
    one of these while the model works on the previous one."""

    frame: Frame
    inputs: FrameInputs
    exposure: float
    used_aux: bool
    aux_warning: str | None = None


def prepare_frame(
    loaded: LoadedModel,
    in_path: str | os.PathLike,
    names: PassNames = PassNames(),
    require_aux: bool = False,
    low_memory: bool = False,
) -> PreparedFrame:
    """Read ``in_path`` and decide what the model gets; a missing aux pass is an error with
    ``require_aux`` and otherwise a warning message returned (not raised: threads share the
    warnings filter, so the caller reports it)."""
    in_path = Path(in_path)
    if loaded.inputs == "grey":
        raise WeightsError(f"{loaded.path}: a greyscale DnCNN (for eval-dncnn) cannot denoise colour renders; use a render model")
    frame = read_frame(in_path, names, low_memory=low_memory)
    has_aux = frame.albedo is not None and frame.normal is not None
    warning = None
    if loaded.uses_aux and not has_aux:
        missing = " and ".join(n for n, a in (("albedo", frame.albedo), ("normal", frame.normal)) if a is None)
        if require_aux:
            raise MissingPassError(
                f"{in_path}: no {missing} pass; enable Denoising Data passes in Blender "
                "(View Layer > Passes > Data > Denoising Data) or drop --require-aux"
            )
        warning = f"{in_path}: no {missing} pass, denoising from colour only (lower quality)"
    inputs = FrameInputs(frame.color, frame.albedo if has_aux else None, frame.normal if has_aux else None)
    return PreparedFrame(frame, inputs, hdr.autoexposure(frame.color), loaded.uses_aux and has_aux, warning)


def run_model(loaded: LoadedModel, prepared: PreparedFrame, tile: int | str | None = DEFAULT_TILE, progress: ProgressFn | None = None, **options) -> np.ndarray:
    """Denoise a prepared frame with its full-frame exposure (so tiles never disagree).

    The result comes back in half when the colour is stored in half: it is written in the
    colour's pixel type anyway, and on an 8K frame that saves 200 MB. ``options`` go to
    :func:`mcdenoise.inference.denoise_frame` (precision, compile).
    """
    out_dtype = np.float16 if prepared.frame.color_dtype == np.float16 else np.float32
    return denoise_frame(loaded, prepared.inputs, tile=tile, exposure=prepared.exposure, progress=progress, out_dtype=out_dtype, **options)


def check_output_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".exr":
        raise OutputError(f"{out_path}: output must be an .exr file")
    return out_path


def denoise_file(
    loaded: LoadedModel,
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    names: PassNames = PassNames(),
    pass_name: str = "Denoised",
    tile: int | None = DEFAULT_TILE,
    require_aux: bool = False,
    progress: ProgressFn | None = None,
) -> DenoiseResult:
    """Denoise ``in_path`` into ``out_path`` (which may be the same file: the write is atomic)."""
    in_path, out_path = Path(in_path), check_output_path(out_path)
    prepared = prepare_frame(loaded, in_path, names, require_aux)
    if prepared.aux_warning:
        warnings.warn(prepared.aux_warning, AuxMissingWarning, stacklevel=2)
    denoised = run_model(loaded, prepared, tile, progress)
    write_with_pass(prepared.frame, out_path, denoised, pass_name=pass_name)
    return DenoiseResult(in_path, out_path, prepared.frame, denoised, prepared.used_aux)
