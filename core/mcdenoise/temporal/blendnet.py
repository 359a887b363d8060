"""The learned temporal blend: a small CNN that decides, per pixel, how much of the warped
history to keep, in place of the hand-made rule of :mod:`mcdenoise.temporal.stabilise`.

It is a drop-in for :func:`mcdenoise.temporal.stabilise.blend`: same arguments (plus the
frame's albedo and normal as optional ``guides``), same two outputs, so
:class:`mcdenoise.temporal.history.TemporalHistory` replays it over the kept frames exactly as
it replays the hand-made blend, and shards and resume stay exact (the network is a pure
function of its inputs).

What the network sees, per pixel, in the log space the hand-made blend measures in
(``log1p(exposure * x)``; differences are taken against the current frame so they read the
same on a lamp and in a dark corner):

* the current single-frame output;
* the warped history minus the current frame, and the history clamped into the current frame's
  box minus the current frame (:func:`~mcdenoise.temporal.stabilise.rectify`), so it can choose
  between trusting the history as it is and its clamped, ghost-free version;
* the noise tolerance (local noise of the noisy input around the denoised frame), the box's
  half-width and the hand-made acceptance (how far outside the box the history lies);
* the warped count as ``n / (n + 1)`` and the warp's validity;
* with ``guides``: the frame's albedo and normal (zeros when a frame has none).

It returns two sigmoids per pixel: ``a``, the history's weight (scaled by :data:`MAX_WEIGHT`
and zero where the warp is invalid, so a disocclusion always starts again from the current
frame), and ``b``, the share of the raw history against the clamped one. The blend is done in
radiance as the hand-made one is (a log-space average would darken), and the new count is
``1 / (1 - w)``: the number of frames a plain average giving the history that weight would have
accepted, which is what the next frame's ``n / (n + 1)`` input expects.

Per pixel, two hidden layers of 16 channels: about 600 multiply-adds a pixel
(:func:`macs_per_pixel`). Not 3x3 layers: the history runs the blend ``window`` times a frame,
and a few 3x3 layers of that width, replayed, cost more on a CPU than the single-frame network
itself (measured in docs/temporal.md); per pixel it costs about what the hand-made blend's box
filters do. Its view of the neighbourhood comes from the features: the 3x3 box and the 7x7 noise.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mcdenoise.temporal import DEFAULT_WINDOW, stabilise

BASE_CHANNELS = 14  # current 3, history - current 3, clamped - current 3, noise, tolerance, acceptance, count, validity: see features()
GUIDE_CHANNELS = 6  # albedo 3, normal 3
# The history's weight never reaches 1, so the count (1 / (1 - w)) stays finite: at most 20 frames.
MAX_WEIGHT = 0.95
DEFAULT_WIDTH = 16
DEFAULT_DEPTH = 2


class BlendNet(nn.Module):
    """A per-pixel network: ``depth`` hidden layers of ``width`` channels (linear, ReLU) and a
    linear output to the two blend logits; its view of the neighbourhood comes from the
    features (the 3x3 box, the 7x7 noise). ``guides``: whether albedo and normal are inputs.

    Input (..., C) features of :func:`features` (channels last: one matrix product a layer);
    output (..., 2) logits.
    """

    def __init__(self, width: int = DEFAULT_WIDTH, depth: int = DEFAULT_DEPTH, guides: bool = True):
        super().__init__()
        self.width, self.depth, self.guides = width, depth, guides
        layers: list[nn.Module] = []
        channels = BASE_CHANNELS + (GUIDE_CHANNELS if guides else 0)
        for _ in range(depth):
            layers += [nn.Linear(channels, width), nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 2)
        # Start where the hand-made blend roughly is: half weight on the history, mostly clamped.
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, -3.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "depth": self.depth, "guides": self.guides}


def macs_per_pixel(width: int = DEFAULT_WIDTH, depth: int = DEFAULT_DEPTH, guides: bool = True) -> int:
    """Multiply-adds per pixel of one blend's network (the features' box filters aside)."""
    c = BASE_CHANNELS + (GUIDE_CHANNELS if guides else 0)
    return c * width + width * width * (depth - 1) + 2 * width


def frame_part(current: torch.Tensor, noise: torch.Tensor, exposure: float) -> tuple:
    """What the features take from the current frame alone: (its log, its box). The history
    blends a frame into up to ``window`` replays, so the caller may keep this per frame."""
    cur = stabilise.to_log(current, exposure)
    return cur, stabilise.box(cur, noise)


def features(current: torch.Tensor, noise: torch.Tensor, history: torch.Tensor, count: torch.Tensor,
             valid: torch.Tensor, exposure: float, guides: torch.Tensor | None, with_guides: bool,
             frame: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's input (H, W, C) and the clamped history (H, W, 3, log space).
    ``frame``: :func:`frame_part` of this frame when the caller keeps it."""
    cur, frame_box = frame if frame is not None else frame_part(current, noise, exposure)
    hist = stabilise.to_log(history, exposure)
    clamped, tol, accept = stabilise.rectify(cur, hist, noise, frame_box)
    v = valid.to(cur.dtype)[..., None]
    parts = [cur, hist - cur, clamped - cur, noise, tol.mean(dim=-1, keepdim=True), accept[..., None],
             (count / (count + 1.0))[..., None] * v, v]
    if with_guides:
        parts.append(guides.to(cur.dtype) if guides is not None else torch.zeros((*cur.shape[:2], GUIDE_CHANNELS),
                                                                                   dtype=cur.dtype, device=cur.device))
    return torch.cat(parts, dim=-1), clamped


def guides_of(albedo, normal) -> torch.Tensor | None:
    """(H, W, 6) half: albedo clipped to [0, 1] and normal clipped to [-1, 1] (non-finite → 0),
    or None when either pass is missing. Kept in half by the history and the training cache alike."""
    if albedo is None or normal is None:
        return None
    a = torch.from_numpy(np.asarray(albedo, dtype=np.float32)).nan_to_num(0.0, 0.0, 0.0).clamp(0.0, 1.0)
    n = torch.from_numpy(np.asarray(normal, dtype=np.float32)).nan_to_num(0.0, 0.0, 0.0).clamp(-1.0, 1.0)
    return torch.cat([a, n], dim=-1).half()


def learned_blend(net: BlendNet, current: torch.Tensor, noise: torch.Tensor, history: torch.Tensor, count: torch.Tensor,
                  valid: torch.Tensor, exposure: float, guides: torch.Tensor | None = None, frame: tuple | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One temporal step through ``net``: (output (H, W, 3) radiance, count (H, W)), the
    signature of :func:`mcdenoise.temporal.stabilise.blend` (``frame``: this frame's
    :func:`frame_part`, if kept). Differentiable (training unrolls it); runs on ``current``'s
    device, where ``net`` must be."""
    x, clamped = features(current, noise, history, count, valid, exposure, guides, net.guides, frame)
    logits = net(x)
    w = (torch.sigmoid(logits[..., 0]) * MAX_WEIGHT * valid.to(logits.dtype))[..., None]
    b = torch.sigmoid(logits[..., 1:2])
    cur = current.float()
    target = b * history.float() + (1.0 - b) * stabilise.from_log(clamped, exposure)
    out = cur + w * (target - cur)
    return out, 1.0 / (1.0 - w[..., 0])


# -- which blend runs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Blend:
    """A blend :class:`~mcdenoise.temporal.history.TemporalHistory` runs: ``fn`` has
    :func:`~mcdenoise.temporal.stabilise.blend`'s signature; ``label`` says which it is (``-v``,
    the bench); ``uses_guides``: the history keeps each frame's albedo and normal for it."""

    fn: Any
    label: str
    uses_guides: bool = False


HAND_MADE = Blend(stabilise.blend, "hand-made blend")


class _OnDevice:
    """A loaded net as a blend function: moved to the frame's device on first use there,
    evaluated without autograd, and each frame's :func:`frame_part` kept for the next replays
    (the history blends a frame into up to ``window`` of them; the box filters are most of a
    blend's cost). Entries are keyed by the frame's tensors and hold them, so a key cannot be
    reused by another frame while it is kept."""

    # Frames' parts kept: one default window's (a longer window, or several histories at once,
    # recompute some). Each costs 36 bytes a pixel (0.07 GB at 1080p).
    KEEP = DEFAULT_WINDOW + 1

    def __init__(self, net: BlendNet):
        self.nets = {torch.device("cpu"): net.eval()}
        self.parts: OrderedDict[tuple, tuple] = OrderedDict()

    def _part(self, current, noise, exposure) -> tuple:
        key = (id(current), id(noise), float(exposure))
        hit = self.parts.get(key)
        if hit is not None and hit[0] is current and hit[1] is noise:
            self.parts.move_to_end(key)
            return hit[2]
        part = frame_part(current, noise, exposure)
        self.parts[key] = (current, noise, part)
        while len(self.parts) > self.KEEP:
            self.parts.popitem(last=False)
        return part

    def __call__(self, current, noise, history, count, valid, exposure, guides=None):
        net = self.nets.get(current.device)
        if net is None:
            import copy

            net = self.nets[current.device] = copy.deepcopy(self.nets[torch.device("cpu")]).to(current.device)
        with torch.no_grad():
            return learned_blend(net, current, noise, history, count, valid, exposure, guides,
                                 self._part(current, noise, exposure))


def learned(path: str | Path) -> Blend:
    """The blend of a temporal weights file (:func:`mcdenoise.models.loader.load_blend_weights`)."""
    from mcdenoise.models.loader import load_blend_weights

    loaded = load_blend_weights(path)
    return Blend(_OnDevice(loaded.model), f"learned blend ({loaded.path.name})", loaded.model.guides)


_SHIPPED: dict[Path, Blend] = {}


def choose_blend(weights: str | Path | None = None) -> Blend:
    """The one place that decides which blend runs: ``weights`` (``--temporal-weights``) when
    given, else the shipped ``weights/temporal.pt`` when there is one, else the hand-made blend."""
    from mcdenoise.models.loader import TEMPORAL_WEIGHTS

    if weights is not None:
        return learned(weights)
    if not TEMPORAL_WEIGHTS.is_file():
        return HAND_MADE
    if TEMPORAL_WEIGHTS not in _SHIPPED:  # loaded once per process: the add-on makes a history per view layer
        _SHIPPED[TEMPORAL_WEIGHTS] = learned(TEMPORAL_WEIGHTS)
    return _SHIPPED[TEMPORAL_WEIGHTS]


__all__ = [
    "HAND_MADE",
    "MAX_WEIGHT",
    "Blend",
    "BlendNet",
    "choose_blend",
    "features",
    "guides_of",
    "learned",
    "learned_blend",
    "macs_per_pixel",
]
