"""The input-feature table (``mcdenoise.features``): today's layouts keep their exact channels,
a layout with the Vector pass is built, tiled and augmented from the table alone, and Blender's
``Noisy Image`` is the colour source when Cycles' own denoiser has replaced ``Combined``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenEXR
import torch

from exr_fixtures import box, noisy_scene
from mcdenoise import features, hdr
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs, build_input
from mcdenoise.inference.frames import denoise_file, prepare_frame
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PRESETS, PassNames
from mcdenoise.models import build_model
from mcdenoise.models.ensemble import SelfEnsemble, transform
from mcdenoise.models.loader import WEIGHTS_DIR, LoadedModel, load_model, save_weights

RENDER = features.DEFAULT_INPUTS  # colour + albedo + normal, every shipped render model
WITH_VECTOR = RENDER + "+vector"


def test_todays_layouts_keep_their_channels():
    assert features.channel_names("color") == ["color.R", "color.G", "color.B"]
    assert features.channel_names(RENDER) == [
        "color.R", "color.G", "color.B", "albedo.R", "albedo.G", "albedo.B", "normal.X", "normal.Y", "normal.Z"]
    assert [features.channel_count(n) for n in ("color", RENDER, "grey")] == [3, 9, 1]
    assert features.vector_pairs(RENDER) == ((6, 7),) and features.vector_pairs("color") == ()
    assert features.aux_channels(RENDER) == list(range(3, 9)) and features.aux_channels("color") == []
    assert features.uses_aux(RENDER) and not features.uses_aux("color") and not features.uses_aux("grey")
    for bad in ("", "color+color", "albedo+color", "color+grey", "color+depth", None):
        assert not features.is_layout(bad), bad
    # Every shipped weights file names a layout whose width is its first conv's input width.
    for path in sorted(WEIGHTS_DIR.glob("*.pt")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        first = next(v for k, v in payload["state_dict"].items() if k.endswith("weight") and v.ndim == 4)
        assert features.channel_count(payload["inputs"]) == first.shape[1], path.name


def test_guide_preparations_are_finite_and_idempotent():
    """Training caches the guides prepared (in half floats) and the encoder prepares them again."""
    x = torch.tensor([-1e6, -70.0, -0.5, 0.0, 0.3, 0.9, 1.5, 70.0, 1e6, float("nan"), float("inf"), -float("inf")])
    guides = [f for f in features.FEATURES.values() if not f.image and f.planes is None]
    assert {f.name for f in guides} == {"albedo", "normal", "vector"}
    for f in guides:
        once = f.prepare(x.clone(), 0.7)
        assert torch.isfinite(once).all() and once.abs().max() < 65504, f.name
        assert torch.equal(f.prepare(once.clone(), 0.7), once), f.name


def test_render_input_is_the_formula_it_always_was(repo_root):
    """The network input of every existing model, bit for bit, on a real Cycles frame: colour
    through hdr.forward at the frame's exposure, then albedo and normal prepared, in that order."""
    frame = read_frame(repo_root / "examples" / "suzanne_4spp.exr")
    inputs = FrameInputs(frame.color, frame.albedo, frame.normal)
    e = hdr.autoexposure(frame.color)
    ys, xs = slice(17, 203), slice(5, 290)
    x = build_input(inputs, e, RENDER, ys, xs)
    assert x.shape == (9, 186, 285)
    np.testing.assert_array_equal(x[0:3], hdr.forward(frame.color[ys, xs], e).transpose(2, 0, 1))
    np.testing.assert_array_equal(x[3:6], hdr.prepare_albedo(frame.albedo[ys, xs]).transpose(2, 0, 1))
    np.testing.assert_array_equal(x[6:9], hdr.prepare_normal(frame.normal[ys, xs]).transpose(2, 0, 1))
    np.testing.assert_array_equal(build_input(inputs, e, "color", ys, xs), x[0:3])
    assert not build_input(FrameInputs(frame.color), e, RENDER, ys, xs)[3:].any()  # no aux: zeros


def _vector_frame(h: int, w: int, seed: int = 3) -> FrameInputs:
    s = noisy_scene(h, w, seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vector = np.dstack([np.sin(xx / 9) * 20, np.cos(yy / 7) * 15, -xx / 4, yy / 5 - 80]).astype(np.float32)
    vector[3, 4, 1] = np.nan
    return FrameInputs(s["color"] * 3.0, s["albedo"], s["normal"], vector)


def test_vector_layout_appends_four_channels_in_table_order():
    frame = _vector_frame(24, 40)
    ys, xs = slice(2, 22), slice(5, 37)
    x = build_input(frame, 0.6, WITH_VECTOR, ys, xs)
    assert x.shape == (13, 20, 32) and features.channel_slices(WITH_VECTOR)["vector"] == slice(9, 13)
    np.testing.assert_array_equal(x[:9], build_input(frame, 0.6, RENDER, ys, xs))  # today's channels untouched
    expected = np.clip(np.nan_to_num(frame.vector[ys, xs], nan=0.0), -features.VECTOR_LIMIT, features.VECTOR_LIMIT)
    np.testing.assert_array_equal(x[9:], expected.transpose(2, 0, 1))
    assert x[9:].min() == -features.VECTOR_LIMIT  # the last component reaches -80 px: clipped
    no_vector = FrameInputs(frame.color, frame.albedo, frame.normal)
    assert not build_input(no_vector, 0.6, WITH_VECTOR, ys, xs)[9:].any()


def _tiny_loaded(inputs: str, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    model = build_model("unet", in_channels=features.channel_count(inputs), out_channels=3, widths=[8, 8, 8, 8, 8]).eval()
    with torch.no_grad():
        model.out.weight.mul_(20.0)  # make the residual branch matter
    return LoadedModel(model, "unet", {}, inputs)


def test_vector_unet_denoises_tiled_as_untiled_and_reads_the_vectors():
    loaded = _tiny_loaded(WITH_VECTOR)
    frame = _vector_frame(72, 88)
    whole = denoise_frame(loaded, frame, tile=None)
    np.testing.assert_allclose(denoise_frame(loaded, frame, tile=32), whole, rtol=1e-4, atol=1e-5)
    still = FrameInputs(frame.color, frame.albedo, frame.normal)
    assert np.abs(denoise_frame(loaded, still, tile=None) - whole).max() > 1e-3  # the vectors reach the output


def test_flips_and_rotations_turn_the_vectors_with_the_picture():
    """Radial motion fields (a zoom in, and a faster zoom out) and a bowl's normals look the same
    after any of the 8 flips/rotations when their components turn with the picture; moving
    only the pixels would not keep them."""
    c = 16
    yy, xx = np.mgrid[0:c, 0:c].astype(np.float32) - (c - 1) / 2
    up = -yy  # image rows grow downwards, vectors point up
    n = np.stack([xx, up, np.full_like(xx, 4.0)])
    n /= np.linalg.norm(n, axis=0, keepdims=True)
    x = np.zeros((13, c, c), np.float32)
    x[0] = xx  # a colour plane with a left/right asymmetry, to see the pixels move
    x[6:9] = n
    x[9:13] = [xx, up, -2 * xx, -2 * up]
    x = torch.from_numpy(x)
    vectors = features.vector_pairs(WITH_VECTOR)
    assert vectors == ((6, 7), (9, 10), (11, 12))
    for op in range(8):
        y = transform(x, op, vectors)
        torch.testing.assert_close(y[6:], x[6:], atol=1e-6, rtol=0, msg=f"op {op}")
    assert len({transform(x, op, vectors)[0].numpy().tobytes() for op in range(8)}) == 4
    assert not torch.allclose(transform(x, 1, ((6, 7),))[9:], x[9:])  # vectors left out: they do not match
    model = _tiny_loaded(WITH_VECTOR).model
    assert SelfEnsemble(model, 8, inputs=WITH_VECTOR).vectors == vectors


# -- Blender files: the Vector pass and Noisy Image ----------------------------------------------

def _write_cycles_denoised(path: Path, h: int = 40, w: int = 56, vector: bool = False) -> dict[str, np.ndarray]:
    """A multi-part file as Blender writes it with Cycles' denoiser on: ``Combined`` holds the
    denoised picture, ``Noisy Image`` the raw render (different pixels), plus the aux passes."""
    s = noisy_scene(h, w, seed=7)
    s["combined"] = s["clean"] * 1.1
    passes = {
        "Combined": dict(zip("RGBA", [*s["combined"].transpose(2, 0, 1), np.ones((h, w), np.float32)])),
        "Noisy Image": dict(zip("RGBA", [*s["color"].transpose(2, 0, 1), np.ones((h, w), np.float32)])),
        "Denoising Albedo": dict(zip("RGB", s["albedo"].transpose(2, 0, 1))),
        "Denoising Normal": dict(zip("XYZ", s["normal"].transpose(2, 0, 1))),
    }
    if vector:
        s["vector"] = np.random.default_rng(1).normal(0, 5, (h, w, 4)).astype(np.float32)
        passes["Vector"] = dict(zip("XYZW", s["vector"].transpose(2, 0, 1)))
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "dataWindow": box(0, 0, w - 1, h - 1), "displayWindow": box(0, 0, w - 1, h - 1)}
    parts = []
    for name, chans in passes.items():
        full = f"ViewLayer.{name}"
        parts.append(OpenEXR.Part(dict(header, name=full), {f"{full}.{c}": np.ascontiguousarray(px) for c, px in chans.items()}, full))
    OpenEXR.File(parts).write(str(path))
    return s


def test_vector_pass_is_read_only_when_asked_and_carried_to_the_model(tmp_path):
    path = tmp_path / "moving.exr"
    s = _write_cycles_denoised(path, vector=True)
    assert read_frame(path).vector is None  # today's reads never decode it
    for low_memory in (False, True):
        frame = read_frame(path, features=features.passes_to_read(WITH_VECTOR), low_memory=low_memory)
        np.testing.assert_array_equal(frame.vector, s["vector"])
        np.testing.assert_array_equal(frame.albedo, s["albedo"])
    prepared = prepare_frame(_tiny_loaded(WITH_VECTOR), path)
    np.testing.assert_array_equal(prepared.inputs.vector, s["vector"])
    assert prepare_frame(_tiny_loaded(RENDER), path).inputs.vector is None
    _write_cycles_denoised(path)  # without the pass: optional, never required
    assert prepare_frame(_tiny_loaded(WITH_VECTOR), path).inputs.vector is None


def test_noisy_image_is_the_colour_when_cycles_denoised_combined(tmp_path):
    path = tmp_path / "cycles_denoised.exr"
    s = _write_cycles_denoised(path)
    loaded = _tiny_loaded(RENDER)
    prepared = prepare_frame(loaded, path)
    np.testing.assert_array_equal(prepared.inputs.color, s["color"])
    x = build_input(prepared.inputs, prepared.exposure, RENDER, slice(None), slice(None))
    np.testing.assert_array_equal(x[:3], hdr.forward(s["color"], hdr.autoexposure(s["color"])).transpose(2, 0, 1))

    out = tmp_path / "out.exr"
    result = denoise_file(loaded, path, out)
    assert result.frame.layer == "ViewLayer"
    parts = [p.name() for p in OpenEXR.File(str(out), separate_channels=True).parts]
    assert parts[-1] == "ViewLayer.Denoised" and "ViewLayer.Noisy Image" in parts
    written = read_frame(out, PassNames(color=("Denoised",), layer="ViewLayer")).color
    from_noisy = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"]), tile=None)
    from_combined = denoise_frame(loaded, FrameInputs(s["combined"], s["albedo"], s["normal"]), tile=None)
    np.testing.assert_allclose(written, from_noisy, rtol=1e-6, atol=1e-6)
    assert np.abs(written - from_combined).max() > 1e-2
    # Denoising the output again still starts from the raw render.
    np.testing.assert_array_equal(read_frame(out).color, s["color"])


def test_explicit_color_pass_wins_over_noisy_image(tmp_path):
    path = tmp_path / "cycles_denoised.exr"
    s = _write_cycles_denoised(path)
    names = PRESETS["blender"].with_overrides(color="Combined")
    np.testing.assert_array_equal(read_frame(path, names).color, s["combined"])
    weights = tmp_path / "tiny.pt"
    loaded = _tiny_loaded(RENDER)
    save_weights(weights, loaded.model, "unet", {"in_channels": 9, "out_channels": 3, "widths": [8, 8, 8, 8, 8]}, RENDER)
    payload = torch.load(weights, weights_only=True)
    assert payload["inputs"] == RENDER and payload["channels"] == features.channel_names(RENDER)
    out = tmp_path / "out.exr"
    run = subprocess.run([sys.executable, "-m", "mcdenoise", "denoise", str(path), "-o", str(out), "--weights", str(weights),
                          "--device", "cpu", "--color-pass", "Combined"], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = denoise_frame(load_model(weights), FrameInputs(s["combined"], s["albedo"], s["normal"]), tile=None)
    np.testing.assert_allclose(read_frame(out, PassNames(color=("Denoised",))).color, expected, rtol=1e-5, atol=1e-5)
