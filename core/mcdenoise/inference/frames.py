"""Denoise one EXR file end to end: read passes, run the model, write the file back with the
new pass. The CLI, the batch runner and the Blender add-on all call :func:`denoise_file`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcdenoise import features, hdr
from mcdenoise.errors import MissingPassError, OutputError, WeightsError
from mcdenoise.io.exr import Frame, read_frame, read_views
from mcdenoise.io.write import check_pass_name, write_with_passes
from mcdenoise.inference.denoise import ProgressFn, denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.runtime import Runtime
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
    used_aux: bool  # for a stereo file: every view had its aux passes


@dataclass
class PreparedFrame:
    """A frame read and checked, ready for the model: the batch runner reads the next frame into
    one of these while the model works on the previous one."""

    frame: Frame
    inputs: FrameInputs
    exposure: float
    used_aux: bool
    aux_warning: MissingPassError | None = None  # not raised: a warning each front end words (fix key aux_missing)


def prepare_frame(
    loaded: LoadedModel,
    in_path: str | os.PathLike,
    names: PassNames = PassNames(),
    require_aux: bool = False,
    low_memory: bool = False,
    pass_name: str | None = None,
    also_read: tuple[str, ...] = (),
) -> PreparedFrame:
    """Read ``in_path`` and decide what the model gets; a missing aux pass is an error with
    ``require_aux`` and otherwise a warning message returned (not raised: threads share the
    warnings filter, so the caller reports it). A ``pass_name`` the result could not be written
    under (:func:`mcdenoise.io.write.check_pass_name`) is refused here, before the model runs.
    ``also_read``: features read into the frame though the model does not read them (the
    temporal path's ``vector``)."""
    return _prepare(loaded, in_path, names, require_aux, low_memory, pass_name, also_read, every_view=False)[0]


def prepare_views(loaded: LoadedModel, in_path: str | os.PathLike, names: PassNames = PassNames(),
                  require_aux: bool = False, low_memory: bool = False, pass_name: str | None = None,
                  also_read: tuple[str, ...] = ()) -> list[PreparedFrame]:
    """:func:`prepare_frame` for the view ``names.view`` picks, else for every view of a stereo
    (multi-view) file in file order (one for a file of one view): a stereo file's views share
    pass names, and each is denoised from its own passes. The file is read once for all views
    (:func:`mcdenoise.io.exr.read_views`)."""
    return _prepare(loaded, in_path, names, require_aux, low_memory, pass_name, also_read, every_view=True)


def _prepare(loaded: LoadedModel, in_path: str | os.PathLike, names: PassNames, require_aux: bool, low_memory: bool,
             pass_name: str | None, also_read: tuple[str, ...], every_view: bool) -> list[PreparedFrame]:
    """The frame :func:`read_frame` gives, or with ``every_view`` those :func:`read_views`
    gives, checked and ready for the model (see :func:`prepare_frame`)."""
    in_path = Path(in_path)
    if features.layout_features(loaded.inputs)[0] is not features.COLOR:
        raise WeightsError(f"{loaded.path}: a greyscale DnCNN (for eval-dncnn) cannot denoise colour renders; use a render model")
    wanted = features.passes_to_read(loaded.inputs)
    how = {"low_memory": low_memory, "features": tuple(dict.fromkeys((*wanted, *also_read)))}
    frames = read_views(in_path, names, **how) if every_view else [read_frame(in_path, names, **how)]
    if pass_name is not None:
        for frame in frames:
            check_pass_name(frame, pass_name)
    return [_prepared(loaded, in_path, frame, wanted, require_aux) for frame in frames]


def _prepared(loaded: LoadedModel, in_path: Path, frame: Frame, wanted: tuple[str, ...],
              require_aux: bool) -> PreparedFrame:
    """One frame's model inputs, exposure and aux verdict."""
    passes = {name: getattr(frame, name) for name in wanted}
    has_aux = all(passes[name] is not None for name in features.AUX_FEATURES)
    warning = None
    if loaded.uses_aux and not has_aux:
        missing = " and ".join(name for name in features.AUX_FEATURES if passes[name] is None)
        missing += f" pass of view {frame.view!r}" if frame.view else " pass"
        if require_aux:
            raise MissingPassError(f"{in_path}: no {missing}", fix="require_aux")
        warning = MissingPassError(f"{in_path}: no {missing}, denoising from colour only (lower quality)",
                                   fix="aux_missing")
    if not has_aux:  # aux passes come together or not at all, as in training's aux dropout
        passes.update(dict.fromkeys(features.AUX_FEATURES))
    inputs = FrameInputs(frame.color, **passes, samples=frame.samples)
    return PreparedFrame(frame, inputs, hdr.autoexposure(frame.color), loaded.uses_aux and has_aux, warning)


def run_model(loaded: LoadedModel, prepared: PreparedFrame, runtime: Runtime | None = None, progress: ProgressFn | None = None) -> np.ndarray:
    """Denoise a prepared frame with its full-frame exposure (so tiles never disagree), in the
    tile ``runtime`` picks for it (default: the model's device, a share of free memory).

    The result comes back in half when the colour is stored in half: it is written in the
    colour's pixel type anyway, and the budget then counts it at half size.
    """
    runtime = runtime or Runtime.for_model(loaded.model)
    out_dtype = np.float16 if prepared.frame.color_dtype == np.float16 else np.float32
    tile = runtime.tile_for(loaded.model, prepared.inputs, np.dtype(out_dtype).itemsize)
    denoised = denoise_frame(loaded, prepared.inputs, tile, prepared.exposure, progress, runtime=runtime, out_dtype=out_dtype)
    # The network's inputs are made finite and its result clipped to the pass's range, so a
    # NaN here comes from the network itself: never write it.
    if not all(np.isfinite(denoised[y : y + 256]).all() for y in range(0, len(denoised), 256)):
        weights = f"the weights ({loaded.path})" if loaded.path is not None else "the model's weights"
        raise WeightsError(f"{prepared.frame.path}: the denoised image is not finite (NaN pixels) though its inputs were; "
                           f"{weights} are the likely cause: re-export or re-download them")
    return denoised


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
    runtime: Runtime | None = None,
    require_aux: bool = False,
    progress: ProgressFn | None = None,
    temporal: Callable[[PreparedFrame, np.ndarray], np.ndarray] | None = None,
) -> DenoiseResult:
    """Denoise ``in_path`` into ``out_path`` (which may be the same file: the write is atomic),
    run as ``runtime`` says (see :func:`run_model`). ``temporal``: the temporal path's per-frame
    call (the add-on's history across ``render_write`` calls), given the frame with its Vector
    pass read and the single-frame result, returning what is written; called once per view of a
    stereo file, in file order (``prepared.frame.view`` says which). Every view of a stereo file
    is denoised from its own passes unless ``names.view`` picks one; all go into one write."""
    in_path, out_path = Path(in_path), check_output_path(out_path)
    results = []
    for prepared in prepare_views(loaded, in_path, names, require_aux, pass_name=pass_name,
                                  also_read=("vector",) if temporal is not None else ()):
        if prepared.aux_warning:
            warnings.warn(str(prepared.aux_warning), AuxMissingWarning, stacklevel=2)
        denoised = run_model(loaded, prepared, runtime, progress)
        if temporal is not None:
            denoised = temporal(prepared, denoised)
        results.append((prepared, denoised))
    write_with_passes([(prepared.frame, denoised) for prepared, denoised in results], out_path, pass_name=pass_name)
    (first, denoised), used_aux = results[0], all(prepared.used_aux for prepared, _ in results)
    return DenoiseResult(in_path, out_path, first.frame, denoised, used_aux)  # a stereo file: its first view's
