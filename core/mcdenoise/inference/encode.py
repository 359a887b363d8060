"""The network's input for one window of a frame: each pass uploaded raw and prepared on the
model's device, written straight into the (h, w, C) buffer the network reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mcdenoise import hdr


@dataclass
class FrameInputs:
    """Radiance and aux passes of one frame, as read from the EXR (float32, H x W x C)."""

    color: np.ndarray
    albedo: np.ndarray | None = None
    normal: np.ndarray | None = None


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A pass window as a tensor, a view where torch can take one: read-only arrays and
    reversed views (negative strides) are copied, any float dtype is accepted."""
    if not a.flags.writeable or any(step < 0 for step in a.strides):
        a = np.array(a)
    return torch.from_numpy(a)


def fill_input(buf: torch.Tensor, frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> torch.Tensor:
    """Write the network input of one window into ``buf`` (h, w, C), on any device.

    Each pass is uploaded raw and transformed on the device, in a contiguous 3-channel
    scratch tensor (vectorised log1p on a 3-of-9-channel strided view is ~20x slower on CPU),
    then copied into its channels of the buffer the network reads. Missing aux passes become
    zeros, which the shipped models are trained to treat as "no aux" (aux dropout).
    """
    scratch = torch.empty(buf.shape[:2] + (3,), device=buf.device)
    buf[..., 0:3] = hdr.forward_(scratch.copy_(_tensor(frame.color[ys, xs])), exposure)
    if uses_aux:
        for lo, hi, passes, prepare in ((3, 6, frame.albedo, hdr.prepare_albedo_), (6, 9, frame.normal, hdr.prepare_normal_)):
            if passes is None:
                buf[..., lo:hi] = 0.0
            else:
                buf[..., lo:hi] = prepare(scratch.copy_(_tensor(passes[ys, xs])))
    return buf


def build_input_hwc(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (h, w, C) for one window, C-contiguous, which is exactly an NHWC
    (channels-last) tensor."""
    h, w = frame.color[ys, xs].shape[:2]
    return fill_input(torch.empty((h, w, 9 if uses_aux else 3)), frame, exposure, uses_aux, ys, xs).numpy()


def build_input(frame: FrameInputs, exposure: float, uses_aux: bool, ys: slice, xs: slice) -> np.ndarray:
    """Network input (C, h, w) for one window, for callers (training) that want NCHW."""
    return np.ascontiguousarray(build_input_hwc(frame, exposure, uses_aux, ys, xs).transpose(2, 0, 1))
