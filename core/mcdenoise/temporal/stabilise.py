"""The temporal blend: the current single-frame denoised frame, pulled towards the previous
*output* warped into place, only where that history still describes this frame.

This is TAA's history rectification (Karis 2014, Salvi's variance clipping) run on denoised
frames instead of raw samples, in the log space of :mod:`mcdenoise.hdr` (``log1p(exposure *
x)``), where a tolerance means the same visible step in a dark corner and on a lamp:

* the box: per channel, the current frame's 3x3 mean ± a tolerance. The tolerance has two
  parts: ``GAMMA`` times the 3x3 standard deviation (edges and texture widen the box, as in
  TAA), and ``KAPPA`` times the local noise of this frame's *noisy* input around the denoised
  one (7x7 RMS of noisy − denoised), because a single-frame denoiser's frame-to-frame wobble,
  the flicker being removed, grows with the noise it was given; flat, clean areas get a tight
  box and noisy ones a wide one;
* the history is clamped into the box, and its weight falls linearly to 0 as the unclamped
  history lies up to one more tolerance outside it: a moving highlight, a shadow that moved or a
  surface the Vector pass does not describe (reflections, refraction) is not blended in, so it
  does not ghost;
* the weight is ``n / (n + 1)`` for ``n`` frames of accepted history at that pixel (warped
  with the picture, cut to 0 where the warp is invalid: disocclusion, out of frame), so a
  pixel's output is the plain average of the frames it has accepted, new pixels start from the
  current frame alone, and the history is never worth more than its frames.

The blend is one function of (current, noisy, warped history, history count, validity), so a
learned temporal model can replace exactly this function: it gets the same inputs (plus any
guides) and returns the same two outputs; :mod:`mcdenoise.temporal.history` does the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Box half-width: GAMMA standard deviations of the current 3x3 neighbourhood ...
GAMMA = 1.0
# ... plus KAPPA times the local RMS of (noisy - denoised), both in log space ...
KAPPA = 0.15
# ... plus a floor (log units: ~1 % of the value), so a perfectly flat area still accepts history.
FLOOR = 0.01
NOISE_WINDOW = 7


def to_log(x: torch.Tensor, exposure: float) -> torch.Tensor:
    """Radiance -> the log space the blend measures in (``hdr.forward`` on a copy)."""
    return (x.nan_to_num(0.0, 0.0, 0.0).clamp(min=0.0) * exposure).log1p()


def from_log(y: torch.Tensor, exposure: float) -> torch.Tensor:
    return y.clamp(min=0.0).expm1() / exposure


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window of an (H, W, C) tensor, edges replicated. Summed as
    shifted slices, one axis at a time: on the CPU several times faster than ``avg_pool2d``
    with stride 1, and the blend runs it on every kept frame of every frame."""
    r = size // 2
    t = F.pad(x.permute(2, 0, 1)[None], (r, r, r, r), mode="replicate")[0].permute(1, 2, 0)
    h, w = x.shape[:2]
    rows = t[0:h]
    for i in range(1, size):
        rows = rows + t[i:i + h]
    out = rows[:, 0:w]
    for j in range(1, size):
        out = out + rows[:, j:j + w]
    return out * (1.0 / (size * size))


def tolerance_noise(noisy: torch.Tensor, current: torch.Tensor, exposure: float) -> torch.Tensor:
    """(H, W, 1): the local RMS of the noisy input around the denoised frame, in log space, the
    noise-aware part of the tolerance (kept per frame by the history, so computed once)."""
    residual = to_log(noisy, exposure) - to_log(current, exposure)
    return _box_mean((residual * residual).mean(dim=-1, keepdim=True), NOISE_WINDOW).sqrt()


def box(cur: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The current frame's box, in log space: (3x3 mean, half-width ``tol``), both (H, W, 3)."""
    mean = _box_mean(cur, 3)
    std = (_box_mean(cur * cur, 3) - mean * mean).clamp(min=0.0).sqrt()
    return mean, GAMMA * std + KAPPA * noise + FLOOR


def rectify(cur: torch.Tensor, hist: torch.Tensor, noise: torch.Tensor,
            frame_box: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The box test, in log space: (history clamped into the current frame's box, the box's
    half-width ``tol``, the hand-made acceptance (H, W): 1 inside the box falling to 0 one more
    half-width outside). Shared with the learned blend (:mod:`mcdenoise.temporal.blendnet`),
    which reads these as inputs and passes the frame's :func:`box` when it has it already."""
    mean, tol = frame_box if frame_box is not None else box(cur, noise)
    clamped = torch.maximum(torch.minimum(hist, mean + tol), mean - tol)
    excess = ((hist - clamped).abs() / tol).amax(dim=-1)
    return clamped, tol, (1.0 - excess).clamp(0.0, 1.0)


def blend(current: torch.Tensor, noise: torch.Tensor, history: torch.Tensor, count: torch.Tensor,
          valid: torch.Tensor, exposure: float, guides: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One temporal step: (output (H, W, 3) radiance, accepted-history count (H, W)).

    ``current``: this frame denoised alone; ``noise``: :func:`tolerance_noise` of this frame;
    ``history``: the previous output warped here; ``count``: the previous count warped here;
    ``valid``: the warp's validity (:func:`mcdenoise.temporal.warp.validity`); ``guides``: the
    frame's albedo and normal, which the hand-made blend does not read (the learned one may).
    """
    clamped, _, accept = rectify(to_log(current, exposure), to_log(history, exposure), noise)
    n = count * valid.float() * accept
    w = (n / (n + 1.0))[..., None]
    out = current.float() + w * (from_log(clamped, exposure) - current.float())
    return out, n + 1.0
