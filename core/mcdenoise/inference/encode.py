"""The network's input for one window of a frame: each pass uploaded raw and prepared on the
model's device, written straight into the (h, w, C) buffer the network reads. Which passes, in
which channels and prepared how comes from the layout's row in :mod:`mcdenoise.features`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mcdenoise.features import channel_count, channel_slices, layout_features


@dataclass
class FrameInputs:
    """The passes of one frame the network may read, as read from the EXR (H x W x C, any float
    type); one field per non-grey feature of :data:`mcdenoise.features.FEATURES`, None where the
    frame has no such pass. ``samples``: the samples per pixel it was rendered with, None where
    unknown."""

    color: np.ndarray
    albedo: np.ndarray | None = None
    normal: np.ndarray | None = None
    vector: np.ndarray | None = None
    samples: float | None = None


def of_frame(frame) -> FrameInputs:
    """The inputs of a frame read from a file (:class:`mcdenoise.io.exr.Frame`) as the benchmarks
    feed every method: colour made finite, the aux passes and the sample count as read."""
    from mcdenoise import hdr

    return FrameInputs(hdr.sanitize(frame.color), frame.albedo, frame.normal, frame.vector, frame.samples)


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A pass window as a tensor, a view where torch can take one: read-only arrays and
    reversed views (negative strides) are copied, any float dtype is accepted."""
    if not a.flags.writeable or any(step < 0 for step in a.strides):
        a = np.array(a)
    return torch.from_numpy(a)


def fill_input(buf: torch.Tensor, frame: FrameInputs, exposure: float, inputs: str, ys: slice, xs: slice) -> torch.Tensor:
    """Write the network input of one window for layout ``inputs`` into ``buf`` (h, w, C), on
    any device.

    Each pass is uploaded raw and transformed on the device, in a contiguous scratch tensor of
    its own width (vectorised log1p on a 3-of-9-channel strided view is ~20x slower on CPU),
    then copied into its channels of the buffer the network reads. Missing passes become zeros,
    which the shipped models are trained to treat as "no aux" (aux dropout). A per-frame value
    fills its channels with its constants.
    """
    scratch: dict[int, torch.Tensor] = {}
    slices = channel_slices(inputs)
    for feature in layout_features(inputs):
        channels = slices[feature.name]
        passes = getattr(frame, feature.name)
        if feature.planes is not None:
            buf[..., channels] = torch.tensor(feature.planes(passes), dtype=buf.dtype, device=buf.device)
            continue
        if passes is None:
            buf[..., channels] = 0.0
            continue
        if feature.channels not in scratch:
            scratch[feature.channels] = torch.empty(buf.shape[:2] + (feature.channels,), device=buf.device)
        buf[..., channels] = feature.prepare(scratch[feature.channels].copy_(_tensor(passes[ys, xs])), exposure)
    return buf


def build_input_hwc(frame: FrameInputs, exposure: float, inputs: str, ys: slice, xs: slice) -> np.ndarray:
    """Network input (h, w, C) for one window, C-contiguous, which is exactly an NHWC
    (channels-last) tensor."""
    h, w = frame.color[ys, xs].shape[:2]
    return fill_input(torch.empty((h, w, channel_count(inputs))), frame, exposure, inputs, ys, xs).numpy()


def build_input(frame: FrameInputs, exposure: float, inputs: str, ys: slice, xs: slice) -> np.ndarray:
    """Network input (C, h, w) for one window, for callers (training) that want NCHW."""
    return np.ascontiguousarray(build_input_hwc(frame, exposure, inputs, ys, xs).transpose(2, 0, 1))
