"""Score renders against a reference with the numbers ``mcdenoise bench`` reports, so a user can
check the denoiser on their own frames and read the result in the same units as our tables.

PSNR and SSIM come from :mod:`mcdenoise.metrics` on images tonemapped at the reference's
exposure (``hdr.autoexposure`` of the reference, as ``bench`` does), relMSE on linear radiance.
FLIP is LDR-FLIP (NVIDIA's ``flip-evaluator``) on those same tonemapped images, so all three image
metrics judge the picture the PNGs show; HDR-FLIP would average over exposures and a tonemapper
of its own and score a different picture. FLIP needs the ``compare`` extra and is None without it.

The pass scored in each file is chosen as ``denoise`` chooses its colour pass (a pass preset's
candidates, ``Combined`` for Blender), unless a pass is named ("Denoised", "ViewLayer.Denoised").
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from mcdenoise import hdr
from mcdenoise.errors import MissingPassError, PassShapeError
from mcdenoise.io.exr import available_passes, open_exr, read_frame
from mcdenoise.io.passes import DEFAULT_PRESET, PRESETS, PassNames, join_channel_name
from mcdenoise.metrics import psnr_tonemapped, rel_mse, ssim_tonemapped
from mcdenoise.preview import save_png, side_by_side, tonemap

DIFF_GAIN = 4.0  # the difference PNG shows 4x the tonemapped error, so 0.05 errors are visible
PLAIN = "(plain RGBA)"  # how io.exr.available_passes names unlayered R,G,B channels


@dataclass(frozen=True)
class Reference:
    """The reference image (linear, sanitised) and the exposure every metric tonemaps at."""

    path: Path
    pass_label: str
    rgb: np.ndarray
    exposure: float


@dataclass(frozen=True)
class Score:
    """One file's numbers. ``psnr`` is inf when the tonemapped images are identical; ``flip`` is
    the mean LDR-FLIP error (0 = identical), None when FLIP was skipped or is not installed."""

    path: Path
    pass_label: str
    psnr: float
    ssim: float
    rel_mse: float
    flip: float | None


METRICS = ("psnr", "ssim", "rel_mse", "flip")


def flip_installed() -> bool:
    return importlib.util.find_spec("flip_evaluator") is not None


def pass_names(pass_name: str | None, preset: str = DEFAULT_PRESET) -> PassNames:
    """Candidates for the scored pass: the preset's colour names, or the one named pass.
    "ViewLayer.Denoised" names a layer too: the first dot ends the layer, as in channel names."""
    # Only the one pass is read: no other feature's pass can slow the read or fail it.
    base = replace(PRESETS[preset], **{f.name: () for f in fields(PassNames) if f.name not in ("color", "layer", "view")})
    if pass_name is None:
        return base
    layer, dot, name = pass_name.partition(".")
    return replace(base, color=(name,), layer=layer) if dot else replace(base, color=(pass_name,))


def read_pass(path: str | os.PathLike, pass_name: str | None = None, preset: str = DEFAULT_PRESET) -> tuple[np.ndarray, str]:
    """The (H, W, 3) linear image of one pass and its label ("ViewLayer.Combined").

    Raises :class:`MissingPassError` naming the passes the file has when the pass is absent.
    """
    path = Path(path)
    names = pass_names(pass_name, preset)
    try:
        frame = read_frame(path, names)
    except MissingPassError:
        looked = f"pass {pass_name!r}" if pass_name is not None else (
            "colour pass (looked for " + ", ".join(repr(c) for c in names.color) + ")")
        has = ", ".join(available_passes(open_exr(path, header_only=True))) or "no channels"
        raise MissingPassError(f"{path}: no {looked}; the file has: {has}") from None
    return frame.color, _label(path, frame.layer, names)


def _label(path: Path, layer: str, names: PassNames) -> str:
    """The file's own spelling of the pass read_frame picked: the first candidate it has in ``layer``."""
    present = {p.lower(): p for p in available_passes(open_exr(path, header_only=True))}
    for candidate in names.color:
        key = join_channel_name(layer, candidate, "").lower() or PLAIN.lower()
        if key in present:
            return present[key]
    return join_channel_name(layer, names.color[0], "") or PLAIN


def load_reference(path: str | os.PathLike, pass_name: str | None = None, preset: str = DEFAULT_PRESET) -> Reference:
    rgb, label = read_pass(path, pass_name, preset)
    ref = hdr.sanitize(rgb)
    return Reference(Path(path), label, ref, hdr.autoexposure(ref))


def score(path: str | os.PathLike, ref: Reference, pass_name: str | None = None, preset: str = DEFAULT_PRESET,
          flip: bool = True, images: str | os.PathLike | None = None, image_name: str | None = None) -> Score:
    """Score one file's pass against ``ref``. With ``images``, also write into that folder
    ``<name>_vs_ref.png`` (file | reference), ``<name>_diff.png`` (|tonemapped difference| x4) and,
    with FLIP, ``<name>_flip.png`` (FLIP's error map, magma colours); ``<name>`` is the file's stem."""
    path = Path(path)
    rgb, label = read_pass(path, pass_name, preset)
    if rgb.shape != ref.rgb.shape:
        (h, w), (rh, rw) = rgb.shape[:2], ref.rgb.shape[:2]
        raise PassShapeError(f"{path} is {w}x{h} but the reference {ref.path} is {rw}x{rh}; compare renders of the same size")
    flip_value, flip_map = _flip(rgb, ref) if flip and flip_installed() else (None, None)
    result = Score(path, label, psnr_tonemapped(rgb, ref.rgb, ref.exposure), ssim_tonemapped(rgb, ref.rgb, ref.exposure),
                   rel_mse(rgb, ref.rgb), flip_value)
    if images is not None:
        write_images(Path(images), image_name or path.stem, rgb, ref, flip_map)
    return result


def _flip(rgb: np.ndarray, ref: Reference) -> tuple[float, np.ndarray]:
    """Mean LDR-FLIP and its magma error map, on the sRGB-encoded tonemapped images."""
    import flip_evaluator

    def ldr(im: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.clip(tonemap(im, ref.exposure), 0.0, 1.0))

    error_map, mean, _ = flip_evaluator.evaluate(ldr(ref.rgb), ldr(rgb), "LDR", inputsRGB=True, applyMagma=True)
    return float(mean), error_map


def write_images(folder: Path, name: str, rgb: np.ndarray, ref: Reference, flip_map: np.ndarray | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{name}_vs_ref.png", folder / f"{name}_diff.png"]
    save_png(written[0], side_by_side([rgb, ref.rgb], exposure=ref.exposure))
    diff = np.abs(tonemap(rgb, ref.exposure) - tonemap(ref.rgb, ref.exposure)) * DIFF_GAIN
    save_png(written[1], (np.clip(diff, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    if flip_map is not None:
        written.append(folder / f"{name}_flip.png")
        save_png(written[-1], (np.clip(flip_map, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    return written


def mean(scores: list[Score]) -> dict[str, float | None]:
    """Mean of each metric over files (PSNR in dB, as ``bench`` averages it); FLIP None unless
    every file has it."""
    out: dict[str, float | None] = {}
    for key in METRICS:
        values = [getattr(s, key) for s in scores]
        out[key] = None if not values or any(v is None for v in values) else float(np.mean(values))
    return out
