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
from mcdenoise.exr import Frame, read_frame, write_with_pass
from mcdenoise.inference import DEFAULT_TILE, FrameInputs, ProgressFn, denoise_frame
from mcdenoise.model_io import LoadedModel
from mcdenoise.passes import PassNames


class AuxMissingWarning(UserWarning):
    """A frame has no albedo/normal pass; the model runs colour-only (lower quality)."""


@dataclass
class DenoiseResult:
    input: Path
    output: Path
    frame: Frame
    denoised: np.ndarray
    used_aux: bool


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
    in_path, out_path = Path(in_path), Path(out_path)
    if loaded.inputs == "grey":
        raise WeightsError(f"{loaded.path}: a greyscale DnCNN (for eval-dncnn) cannot denoise colour renders; use a render model")
    if out_path.suffix.lower() != ".exr":
        raise OutputError(f"{out_path}: output must be an .exr file")
    frame = read_frame(in_path, names)
    has_aux = frame.albedo is not None and frame.normal is not None
    if loaded.uses_aux and not has_aux:
        missing = " and ".join(n for n, a in (("albedo", frame.albedo), ("normal", frame.normal)) if a is None)
        if require_aux:
            raise MissingPassError(
                f"{in_path}: no {missing} pass; enable Denoising Data passes in Blender "
                "(View Layer > Passes > Data > Denoising Data) or drop --require-aux"
            )
        warnings.warn(f"{in_path}: no {missing} pass, denoising from colour only (lower quality)", AuxMissingWarning, stacklevel=2)
    inputs = FrameInputs(frame.color, frame.albedo if has_aux else None, frame.normal if has_aux else None)
    denoised = denoise_frame(loaded, inputs, tile=tile, exposure=hdr.autoexposure(frame.color), progress=progress)
    write_with_pass(frame, out_path, denoised, pass_name=pass_name)
    return DenoiseResult(in_path, out_path, frame, denoised, loaded.uses_aux and has_aux)
