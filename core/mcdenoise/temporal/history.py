"""The temporal state of one sequence: the last few frames, and the output of the newest.

The output of frame ``t`` is a pure function of frames ``t - window .. t`` of its consecutive
run (fewer at the start of a run): the blend (the hand-made :func:`mcdenoise.temporal.stabilise.blend`
or the learned one of :mod:`mcdenoise.temporal.blendnet`, as
:func:`~mcdenoise.temporal.blendnet.choose_blend` decides) is run from the oldest kept frame up to the newest every time, instead of carrying one state from
the start of the shot forward. That costs ``window`` cheap blends per frame (no network) and
buys exact reproducibility: a shard that denoises ``window`` warm-up frames before its first
frame, or a run resumed after a kill, computes the same pixels as one uninterrupted run.

A run restarts (history dropped, the frame denoised alone) when the frame number is not the
previous one plus one (a cut in the frame list, a gap, a failed frame), when a frame has no
Vector pass, or when its size differs from the previous frame's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from mcdenoise.temporal import DEFAULT_WINDOW, stabilise, warp
from mcdenoise.temporal.blendnet import Blend, choose_blend, guides_of


@dataclass
class Kept:
    """What a frame leaves for the frames after it (one warm-up frame's worth of memory:
    ~33 bytes a pixel)."""

    number: int | None
    denoised: torch.Tensor  # (H, W, 3) float32 radiance, single-frame
    noise: torch.Tensor  # (H, W, 1) stabilise.tolerance_noise
    vector: torch.Tensor  # (H, W, 4) float16, the Vector pass
    exposure: float
    points: torch.Tensor | None  # (H, W, 2) where each pixel came from in the previous frame
    valid: torch.Tensor | None  # (H, W) bool; None for the first frame of a run
    guides: torch.Tensor | None = None  # (H, W, 6) half albedo + normal, kept only for a blend that reads them


class TemporalHistory:
    """Feed frames in order with :meth:`push`; each call returns that frame's temporal output.
    ``blend``: which blend runs (default: :func:`~mcdenoise.temporal.blendnet.choose_blend`'s)."""

    def __init__(self, window: int = DEFAULT_WINDOW, blend: Blend | None = None):
        if window < 0:
            raise ValueError(f"temporal window must be >= 0, got {window}")
        self.window = window
        self.blend = blend if blend is not None else choose_blend()
        self.kept: deque[Kept] = deque(maxlen=window + 1)

    def restart(self) -> None:
        self.kept.clear()

    def push(self, number: int | None, denoised: np.ndarray, noisy: np.ndarray, vector: np.ndarray | None,
             exposure: float, albedo: np.ndarray | None = None, normal: np.ndarray | None = None) -> np.ndarray:
        """The temporal output of frame ``number`` (same shape and dtype as ``denoised``), from
        its single-frame ``denoised`` colour, its ``noisy`` input colour, its Vector pass (None:
        no pass, the frame is returned as it is and the run restarts), its exposure and, for a
        learned blend that reads them, its albedo and normal passes."""
        if vector is None or self.window == 0:
            self.restart()
            return denoised
        last = self.kept[-1] if self.kept else None
        follows = (last is not None and number is not None and last.number is not None and number == last.number + 1
                   and last.denoised.shape == np.shape(denoised))
        if not follows:
            self.restart()
        self.kept.append(keep(number, denoised, noisy, vector, exposure, last if follows else None, albedo, normal,
                              self.blend.uses_guides))
        with torch.no_grad():
            out = replay(list(self.kept), self.blend.fn)[-1]
        return out.numpy().astype(np.asarray(denoised).dtype, copy=False)


def keep(number: int | None, denoised: np.ndarray, noisy: np.ndarray, vector: np.ndarray, exposure: float,
         previous: Kept | None, albedo: np.ndarray | None = None, normal: np.ndarray | None = None,
         with_guides: bool = False) -> Kept:
    """What frame ``number`` leaves for the frames after it, warped against ``previous`` (the
    frame before it in the run; None: it starts a run). The training cache
    (:mod:`mcdenoise.temporal.cache`) keeps frames through this too, so training sees the
    inference's numbers exactly (half-float vectors included)."""
    cur = torch.from_numpy(np.asarray(denoised, dtype=np.float32))
    vec = torch.from_numpy(np.asarray(vector, dtype=np.float32))
    points = valid = None
    if previous is not None:
        points, valid = warp.validity(vec, previous.vector.float())
    noise = stabilise.tolerance_noise(torch.from_numpy(np.asarray(noisy, dtype=np.float32)), cur, exposure)
    guides = guides_of(albedo, normal) if with_guides else None
    return Kept(number, cur, noise, vec.half(), float(exposure), points, valid, guides)


def fetch(previous: torch.Tensor, points: torch.Tensor, exposure: float) -> torch.Tensor:
    """The previous output (H, W, 3 radiance) fetched at ``points``: bicubic, which keeps the
    history sharp where bilinear would blur it once more at every frame it is carried, limited
    to the 2x2 pixels around each position (:func:`~mcdenoise.temporal.warp.sample_sharp`) and
    interpolated in the blend's log space. In radiance, bicubic's lobes ring around a highlight
    hundreds of times brighter than its surroundings (a dark halo, negative values clamped to
    black), and the blend then rejects the history exactly where a moving highlight needs it."""
    return stabilise.from_log(warp.sample_sharp(stabilise.to_log(previous, exposure), points), exposure)


def replay(frames: list[Kept], blend=stabilise.blend) -> list[torch.Tensor]:
    """The outputs of ``frames`` (consecutive, oldest first) blended up from the oldest: the
    last is the newest frame's temporal output. Training (:mod:`mcdenoise.temporal.train`)
    unrolls this very function, so what it learns is what runs."""
    out = frames[0].denoised
    count = torch.ones(out.shape[:2], device=out.device)
    outs = [out]
    for f in frames[1:]:
        history = fetch(out, f.points, f.exposure)
        prev_count = warp.sample(count[..., None], f.points)[..., 0]
        out, count = blend(f.denoised, f.noise, history, prev_count, f.valid, f.exposure, f.guides)
        outs.append(out)
    return outs


LogFn = Callable[[str, str], None]


class RunnerHook:
    """The batch runner's per-frame call (``run_batch(temporal=...)``): the single-frame result
    in, the temporal result out, frames in the runner's order. Says once when a frame has no
    Vector pass (that frame and the run after it start over, frame by frame until vectors
    return)."""

    def __init__(self, window: int = DEFAULT_WINDOW, log: LogFn | None = None, blend: Blend | None = None):
        self.history = TemporalHistory(window, blend)
        self.log = log or (lambda level, message: None)
        self.said_no_vector = False

    def __call__(self, job, prepared, denoised: np.ndarray) -> np.ndarray:
        frame = prepared.frame
        if frame.vector is None and not self.said_no_vector:
            self.said_no_vector = True
            self.log("info", f"{frame.path}: no Vector pass, denoising frame by frame until one has it "
                             "(render with the Vector pass and motion blur off for the temporal path)")
        return self.history.push(job.source.frame, denoised, frame.color, frame.vector, prepared.exposure,
                                 frame.albedo, frame.normal)
