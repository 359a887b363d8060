"""The network's input features: the one table every channel count, slice and augmentation rule
is derived from, as OIDN's training code derives its channel lists from ``get_channels``.

A *feature* is one pass a network can read (colour, albedo, normal, motion vectors), or one
value per frame it reads as constant planes (the sample count the frame was rendered with); a *layout*
is the ordered list of features one network reads, named by joining them with ``+``
(``"color+albedo+normal"``). Weights files store that name as their ``inputs``; the channels of
the network input are the layout's features' components, in order. The encoder, the model's
``in_channels``, the flips/rotations of augmentation and self-ensembling, aux dropout and the
colour-permutation augmentation all read this table, so adding a feature is adding a row.

This module stays free of torch at import time (the CLI reads pass presets before it decides to
load a model); the preparation functions import :mod:`mcdenoise.hdr` when first called.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

RGB = ("R", "G", "B")
XYZ = ("X", "Y", "Z")
XYZW = ("X", "Y", "Z", "W")

# Motion vectors are clipped to this many pixels. A guide's preparation must be idempotent
# (training caches prepared guides in half floats and the encoder prepares them again), so a
# clip rather than a rescale; motion longer than the network's view says "fast" and no more.
VECTOR_LIMIT = 64.0


def _prepare_color(x: torch.Tensor, exposure: float) -> torch.Tensor:
    from mcdenoise import hdr

    return hdr.forward_(x, exposure)


def _prepare_albedo(x: torch.Tensor, exposure: float) -> torch.Tensor:
    from mcdenoise import hdr

    return hdr.prepare_albedo_(x)


def _prepare_normal(x: torch.Tensor, exposure: float) -> torch.Tensor:
    from mcdenoise import hdr

    return hdr.prepare_normal_(x)


def _prepare_vector(x: torch.Tensor, exposure: float) -> torch.Tensor:
    """Pixels of motion as they are (non-finite -> 0), clipped to +-VECTOR_LIMIT: clipping keeps
    a wild vector from dominating and commutes with the flips/rotations, which only swap and
    negate the components."""
    from mcdenoise import hdr

    return hdr.sanitize_(x, -VECTOR_LIMIT, VECTOR_LIMIT)


def _as_is(x: torch.Tensor, exposure: float) -> torch.Tensor:
    return x


# A sample count's level: (1 + log2 spp) / 10, so 1 spp is 0.1 and 1024 spp 1.1, capped here
# (16384 spp and anything cleaner, such as training's noise-free crops).
SAMPLES_LEVEL_MAX = 1.5


def samples_planes(spp: float | None) -> tuple[float, float]:
    """The ``samples`` feature's two planes for a frame rendered with ``spp`` samples per pixel:
    (level, known). An unknown count (None: an array from the API, a file without Blender's
    stamp) is (0, 0), which training's samples dropout teaches to mean "judge the noise from
    the picture", the only thing a network without this feature can do. A flag rather than a
    reserved level, because the first layer is linear: an "unknown" level would read as an
    extrapolation of the nearest known ones."""
    if spp is None or not spp > 0:  # also NaN
        return 0.0, 0.0
    return min((1.0 + math.log2(max(float(spp), 1.0))) / 10.0, SAMPLES_LEVEL_MAX), 1.0


@dataclass(frozen=True)
class Feature:
    """One input feature.

    ``components``: the component names a renderer may give the pass, first preferred; their
    length is the feature's channel count. ``prepare(x, exposure)`` maps the raw pass to
    network space in place on the model's device (only colour uses the exposure); for a guide
    (not ``image``) it must be idempotent. ``vectors``: pairs of component indices that are 2-D
    vectors in the picture plane (X right, Y up), which rotate and mirror with the picture.
    ``permute_with_color``:
    the training augmentation that shuffles R, G, B shuffles this feature's channels the same
    way. ``aux``: one of the denoising-data passes that are present or missing together; aux
    dropout zeroes them together, a frame missing any of them gets zeros for all, and every
    frame read looks for them. ``image``: the picture being denoised, which a layout starts
    with; the other features guide it. ``planes``: a per-frame value rather than a pass (never
    read from a pass, untouched by flips and colour shuffles): its channels are the constants
    ``planes(value)`` gives over the whole frame, the value being None where it is unknown.
    """

    name: str
    components: tuple[tuple[str, ...], ...]
    prepare: Callable[[torch.Tensor, float], torch.Tensor]
    vectors: tuple[tuple[int, int], ...] = ()
    permute_with_color: bool = False
    aux: bool = False
    image: bool = False
    planes: Callable[[float | None], tuple[float, ...]] | None = None

    @property
    def channels(self) -> int:
        return len(self.components[0])

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}.{c}" for c in self.components[0])


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        # Linear radiance: exposure-normalised and log-compressed (hdr.forward_).
        Feature("color", (RGB, XYZ), _prepare_color, image=True),
        # Reflectance in [0, 1]; a colour shuffle of the picture shuffles its albedo too.
        Feature("albedo", (RGB, XYZ), _prepare_albedo, permute_with_color=True, aux=True),
        # Camera-space unit normal in [-1, 1]; X and Y turn with the picture, its colour does not.
        Feature("normal", (XYZ, RGB), _prepare_normal, vectors=((0, 1),), aux=True),
        # Blender's Vector pass: screen-space motion in pixels to the previous frame (X, Y) and
        # to the next one (Z, W); Y points up as in Blender's pixel space. Not aux: it is its
        # own pass (written when motion blur is off) and zero motion is a real value, so a frame
        # without it reads as zeros. No shipped model reads it.
        Feature("vector", (XYZW,), _prepare_vector, vectors=((0, 1), (2, 3))),
        # Samples per pixel the frame was rendered with (Blender stamps cycles.<ViewLayer>.samples
        # in every EXR it writes): the noise level, which a blind network can only guess from the
        # picture, and guesses wrong where texture looks like noise. With adaptive sampling the
        # stamp is the maximum, and every pixel is at least as clean as the noise threshold.
        Feature("samples", (("LEVEL", "KNOWN"),), _as_is, planes=samples_planes),
        # The DnCNN paper's greyscale photos (eval-dncnn feeds [0, 1] intensities directly).
        Feature("grey", (("Y",),), _as_is, image=True),
    )
}
COLOR = FEATURES["color"]
AUX_FEATURES: tuple[str, ...] = tuple(name for name, f in FEATURES.items() if f.aux)
# The base layout of a render model, colour and the aux passes: train's default, dncnn.pt.
DEFAULT_INPUTS = "color+albedo+normal"
# The layout of the shipped U-Nets (fast, balanced, high): the base and the render's sample count.
SHIPPED_INPUTS = DEFAULT_INPUTS + "+samples"


def layout_features(inputs: str) -> tuple[Feature, ...]:
    """The features of a layout name, in channel order; ValueError for an unknown one."""
    names = inputs.split("+") if isinstance(inputs, str) else []
    known = names and len(set(names)) == len(names) and all(n in FEATURES for n in names)
    if not known or not FEATURES[names[0]].image or any(FEATURES[n].image for n in names[1:]):
        raise ValueError(
            f"unknown input layout {inputs!r}; a layout is an image feature ({', '.join(n for n, f in FEATURES.items() if f.image)}) "
            f"followed by guides ({', '.join(n for n, f in FEATURES.items() if not f.image)}), joined with '+'"
        )
    return tuple(FEATURES[n] for n in names)


def is_layout(inputs: object) -> bool:
    try:
        layout_features(inputs)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def channel_count(inputs: str) -> int:
    """The network's input width (``in_channels``) for a layout."""
    return sum(f.channels for f in layout_features(inputs))


def channel_slices(inputs: str) -> dict[str, slice]:
    """Feature name -> its channels in the network input."""
    out, start = {}, 0
    for f in layout_features(inputs):
        out[f.name] = slice(start, start + f.channels)
        start += f.channels
    return out


def channel_names(inputs: str) -> list[str]:
    """Every input channel as ``feature.component`` (what weights files record)."""
    return [name for f in layout_features(inputs) for name in f.channel_names]


def vector_pairs(inputs: str) -> tuple[tuple[int, int], ...]:
    """(x, y) channel index pairs of the input that rotate and mirror with the picture."""
    slices = channel_slices(inputs)
    return tuple((slices[f.name].start + i, slices[f.name].start + j) for f in layout_features(inputs) for i, j in f.vectors)


def aux_channels(inputs: str) -> list[int]:
    """Channel indices of the layout's aux features (zeroed together by aux dropout)."""
    slices = channel_slices(inputs)
    return [c for f in layout_features(inputs) if f.aux for c in range(slices[f.name].start, slices[f.name].stop)]


def uses_aux(inputs: str) -> bool:
    return any(f.aux for f in layout_features(inputs))


def passes_to_read(inputs: str) -> tuple[str, ...]:
    """The non-colour features a frame is read with for a model of ``inputs``: the aux features
    always (the missing-aux warning and fallback talk about them), the layout's others only when
    it reads them, so a render that carries a Vector pass costs today's models nothing. Per-frame
    values (``planes``) are not passes and come from the header."""
    return tuple(dict.fromkeys((*AUX_FEATURES, *(f.name for f in layout_features(inputs)[1:] if f.planes is None))))


def reads_samples(inputs: str) -> bool:
    """Whether a model of ``inputs`` is told the frame's sample count."""
    return "samples" in (f.name for f in layout_features(inputs))
