"""The aux prefilter: albedo and normal cleaned before the colour network reads them.

At a few samples per pixel the aux passes are noisy wherever the first hit is not sharp:
depth of field, motion blur, glass, sub-pixel texture. A colour network that trusts them keeps
their noise; one that distrusts them loses texture. Blender's "Accurate" OIDN mode denoises the
aux passes first and tells the colour filter they are clean (``clean_aux``). A weights file can
carry the same step (``models.loader``: the ``aux_prefilter`` entry), a small U-Net from the
prepared aux channels to themselves, trained on noisy aux against the references' aux
(``training.prefilter``); :func:`mcdenoise.inference.denoise.denoise_frame` runs it whenever the
file has one, so the CLI, the add-on, the API and the benchmarks all do. A prefilter may also
read the frame's sample count (``samples``), as the colour models do: sub-pixel texture in a
16-spp albedo looks like noise, and only the sample count says it is not.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mcdenoise.features import AUX_FEATURES, FEATURES, samples_planes
from mcdenoise.inference.encode import FrameInputs, _tensor
from mcdenoise.inference.runtime import Runtime

# Where each aux feature sits in the prefilter's input and output: AUX_FEATURES in order.
_SLICES: dict[str, slice] = {}
_start = 0
for _name in AUX_FEATURES:
    _SLICES[_name] = slice(_start, _start + FEATURES[_name].channels)
    _start += FEATURES[_name].channels


def prepared_aux(frame: FrameInputs, ys: slice, xs: slice, out: torch.Tensor) -> torch.Tensor:
    """The prefilter's input for one window, (h, w, C) in ``out``: each aux pass prepared as the
    colour network reads it (albedo clipped to [0, 1], normal to [-1, 1])."""
    for name, channels in _SLICES.items():
        window = torch.empty(out.shape[:2] + (FEATURES[name].channels,), device=out.device)
        out[..., channels] = FEATURES[name].prepare(window.copy_(_tensor(getattr(frame, name)[ys, xs])), 1.0)
    return out


@torch.inference_mode()
def clean_aux(prefilter: torch.nn.Module, frame: FrameInputs, tile: int | None, runtime: Runtime) -> FrameInputs:
    """``frame`` with its aux passes replaced by the prefilter's output (half floats, as Blender
    writes the aux passes, so an 8K frame's cleaned aux costs 12 bytes a pixel), or ``frame``
    itself when it has no aux passes (the colour network then reads zeros, as it was trained to)."""
    from mcdenoise.inference.denoise import run_tiled  # denoise imports this module on use

    if any(getattr(frame, name) is None for name in AUX_FEATURES):
        return frame
    height, width = frame.color.shape[:2]
    out = np.empty((height, width, _start), np.float16)
    channels = prefilter.enc1[0].in_channels  # the aux, then the sample count's planes if it reads them
    planes = torch.tensor(samples_planes(frame.samples)) if channels > _start else None

    def fill(buf: torch.Tensor, ys: slice, xs: slice) -> None:
        prepared_aux(frame, ys, xs, buf)
        if planes is not None:
            buf[..., _start:] = planes.to(buf.device)

    def finish(y: torch.Tensor) -> torch.Tensor:
        for name, channels in _SLICES.items():  # the passes' own ranges, as preparing would clip them
            y[..., channels] = FEATURES[name].prepare(y[..., channels].contiguous(), 1.0)
        return y

    run_tiled(prefilter, channels, fill, finish, out, tile, runtime)
    return dataclasses.replace(frame, **{name: out[..., channels] for name, channels in _SLICES.items()})
