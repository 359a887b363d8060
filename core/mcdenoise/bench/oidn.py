"""Intel OIDN as our benchmarks run it: the ways a Blender user gets it, all at quality High on
HDR colour, through ``pyoidn`` in this process.

* :func:`accurate` ("OIDN-Accurate"): Blender's *Accurate* prefilter. OIDN first denoises the
  albedo pass on its own, then the normal pass, then the colour with those prefiltered passes
  and ``clean_aux``. This is Blender's default and the baseline the project steers by.
* :func:`plain` ("OIDN plain"): colour with the noisy albedo and normal as rendered, no
  prefilter and no ``clean_aux`` (OIDN's own model for noisy aux; Blender's *Fast* prefilter).
* :func:`colour_only`: colour alone, no auxiliary passes.

Aux passes are brought to OIDN's ranges first (``hdr.prepare_albedo``/``prepare_normal``: albedo
in [0, 1], normals in [-1, 1]), as for our own networks.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np

from mcdenoise import hdr
from mcdenoise.errors import McDenoiseError
from mcdenoise.inference.encode import FrameInputs

PLAIN, ACCURATE, COLOUR_ONLY = "OIDN plain", "OIDN-Accurate", "OIDN colour-only"


def require() -> ModuleType:
    """``pyoidn``, or an error that says how to get it (or to skip OIDN)."""
    try:
        import pyoidn
    except ImportError as exc:
        raise McDenoiseError("pyoidn is not installed; pip install pyoidn, or pass --no-oidn") from exc
    return pyoidn


@functools.cache
def _prefilters() -> dict[str, Any]:
    """One OIDN device and one filter per aux slot, alive for the process: committing a filter
    once and reusing it is how an application runs OIDN frame after frame."""
    pyoidn = require()
    device = pyoidn.Device()
    device.commit()
    return {"device": device, **{slot: pyoidn.Filter(device, "RT") for slot in ("albedo", "normal")}}


def prefilter(slot: str, image: np.ndarray) -> np.ndarray:
    """OIDN denoising an aux pass (``slot`` "albedo" or "normal") on its own, as Blender's
    "Accurate" prefilter does."""
    pyoidn = require()
    image = np.ascontiguousarray(image, np.float32)
    out = np.empty_like(image)
    flt = _prefilters()[slot]
    flt.set_image(slot, image, pyoidn.OIDN_FORMAT_FLOAT3)
    flt.set_image("output", out, pyoidn.OIDN_FORMAT_FLOAT3)
    flt.set_quality(pyoidn.OIDN_QUALITY_HIGH)
    flt.commit()
    flt.execute()
    return out


def _colour(f: FrameInputs) -> np.ndarray:
    return np.ascontiguousarray(hdr.sanitize(f.color), np.float32)


def accurate(f: FrameInputs) -> np.ndarray:
    """OIDN-Accurate: prefiltered albedo, then normal, then colour with ``clean_aux``."""
    albedo = prefilter("albedo", hdr.prepare_albedo(f.albedo))
    normal = prefilter("normal", hdr.prepare_normal(f.normal))
    return require().denoise(_colour(f), albedo, normal, hdr=True, clean_aux=True, quality="high")


def plain(f: FrameInputs) -> np.ndarray:
    """OIDN plain: colour with the noisy albedo and normal as rendered."""
    albedo = np.ascontiguousarray(hdr.prepare_albedo(f.albedo), np.float32)
    normal = np.ascontiguousarray(hdr.prepare_normal(f.normal), np.float32)
    return require().denoise(_colour(f), albedo, normal, hdr=True, clean_aux=False, quality="high")


def colour_only(f: FrameInputs) -> np.ndarray:
    return require().denoise(_colour(f), hdr=True, quality="high")
