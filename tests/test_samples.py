"""The ``samples`` feature: the sample count Blender stamps in each EXR header reaches a model
that reads it, as two constant planes (level, known), through every way a frame comes in: a file
(CLI, batch, add-on), an array with ``samples=`` (the API), and nothing (unknown: zeros)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from exr_fixtures import noisy_scene
from mcdenoise import api, features
from mcdenoise.errors import McDenoiseError
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs, build_input
from mcdenoise.inference.frames import denoise_file
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_exr
from mcdenoise.models import build_model
from mcdenoise.models.loader import LoadedModel, save_weights
from mcdenoise.models.unet import add_inputs

RENDER = features.DEFAULT_INPUTS
SAMPLES = RENDER + "+samples"
TINY = {"in_channels": 11, "out_channels": 3, "widths": [8, 8, 8, 8, 8]}


def test_the_level_grows_with_log2_of_the_count_and_unknown_is_its_own_value():
    assert features.samples_planes(1) == (0.1, 1.0)
    assert features.samples_planes(16) == pytest.approx((0.5, 1.0))
    assert features.samples_planes(1024) == pytest.approx((1.1, 1.0))
    assert features.samples_planes(math.inf) == (features.SAMPLES_LEVEL_MAX, 1.0)  # training's noise-free crops
    assert features.samples_planes(1e9) == (features.SAMPLES_LEVEL_MAX, 1.0)
    for unknown in (None, 0, -3, float("nan")):
        assert features.samples_planes(unknown) == (0.0, 0.0), unknown
    assert features.channel_names(SAMPLES)[9:] == ["samples.LEVEL", "samples.KNOWN"]
    assert features.passes_to_read(SAMPLES) == features.passes_to_read(RENDER)  # a header value, never a pass


def _write(path: Path, stamps: dict[str, str], layer: str = "ViewLayer", seed: int = 0) -> dict[str, np.ndarray]:
    s = noisy_scene(24, 40, seed)
    prefix = f"{layer}." if layer else ""
    layers = {f"{prefix}Combined": s["color"], f"{prefix}Denoising Albedo": s["albedo"], f"{prefix}Denoising Normal": s["normal"]}
    write_exr(path, layers, header=dict(stamps), multipart=bool(layer))
    return s


@pytest.mark.parametrize(("stamps", "layer", "expected"), [
    ({"cycles.ViewLayer.samples": "16"}, "ViewLayer", 16),
    ({"cycles.ViewLayer.samples": "16"}, "", 16),  # Blender's plain OpenEXR: channels carry no layer name
    ({"cycles.Back.samples": "4", "cycles.Front.samples": "64"}, "Front", 64),  # the colour's own view layer
    ({"cycles.Back.samples": "4", "cycles.Front.samples": "64"}, "", None),  # two counts and no layer to choose by
    ({"cycles.Back.samples": "4"}, "Front", None),  # another layer's stamp says nothing about this one
    ({"cycles.ViewLayer.samples": "many"}, "ViewLayer", None),
    ({"cycles.ViewLayer.samples": "0"}, "ViewLayer", None),
    ({}, "ViewLayer", None),  # another renderer, or a file rewritten without its header
])
def test_the_count_is_read_from_the_colour_layers_stamp(tmp_path, stamps, layer, expected):
    path = tmp_path / "frame.exr"
    _write(path, stamps, layer)
    for low_memory in (False, True):
        assert read_frame(path, low_memory=low_memory).samples == expected


def test_a_real_blender_render_carries_its_count(repo_root):
    assert read_frame(repo_root / "examples" / "suzanne_4spp.exr").samples == 4


def test_the_planes_follow_the_other_channels_and_leave_them_as_they_were():
    s = noisy_scene(20, 36, 2)
    known = FrameInputs(s["color"], s["albedo"], s["normal"], samples=64)
    ys, xs = slice(3, 17), slice(1, 33)
    x = build_input(known, 0.8, SAMPLES, ys, xs)
    assert x.shape == (11, 14, 32)
    np.testing.assert_array_equal(x[:9], build_input(known, 0.8, RENDER, ys, xs))
    level, flag = features.samples_planes(64)
    assert np.all(x[9] == np.float32(level)) and np.all(x[10] == 1.0)
    unknown = build_input(FrameInputs(s["color"], s["albedo"], s["normal"]), 0.8, SAMPLES, ys, xs)
    assert not unknown[9:].any()


def _tiny_samples_model() -> LoadedModel:
    """A random U-Net reading the samples planes with weight enough to move the output."""
    torch.manual_seed(0)
    model = build_model("unet", **TINY).eval()
    with torch.no_grad():
        model.out.weight.mul_(20.0)
        model.enc1[0].weight[:, 9:].mul_(30.0)
    return LoadedModel(model, "unet", TINY, SAMPLES)


def test_a_files_stamp_reaches_the_model_and_decides_its_output(tmp_path):
    loaded = _tiny_samples_model()
    stamped, bare = tmp_path / "stamped.exr", tmp_path / "bare.exr"
    s = _write(stamped, {"cycles.ViewLayer.samples": "16"})
    _write(bare, {})
    outs = {}
    for name, path in (("stamped", stamped), ("bare", bare)):
        result = denoise_file(loaded, path, tmp_path / f"{name}_out.exr")
        outs[name] = read_frame(result.output, PassNames(color=("Denoised",), layer="ViewLayer")).color
    told = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"], samples=16), tile=None)
    untold = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"]), tile=None)
    np.testing.assert_allclose(outs["stamped"], told, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs["bare"], untold, rtol=1e-5, atol=1e-5)
    assert np.abs(told - untold).max() > 1e-2
    # Tiles see the frame's count, not a count of their own.
    np.testing.assert_allclose(denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"], samples=16), tile=16),
                               told, rtol=1e-4, atol=1e-5)


def test_the_api_takes_the_count_as_a_number_and_refuses_anything_else(tmp_path):
    loaded = _tiny_samples_model()
    weights = tmp_path / "tiny_samples.pt"
    save_weights(weights, loaded.model, "unet", TINY, SAMPLES)
    s = noisy_scene(24, 40, 5)
    told = api.denoise(s["color"], s["albedo"], s["normal"], samples=16, weights=weights, device="cpu")
    expected = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"], samples=16), tile=None)
    np.testing.assert_allclose(told, expected, rtol=1e-5, atol=1e-5)
    untold = api.denoise(s["color"], s["albedo"], s["normal"], weights=weights, device="cpu")
    assert np.abs(told - untold).max() > 1e-2
    np.testing.assert_array_equal(api.denoise(s["color"], s["albedo"], s["normal"], samples=np.int64(16), weights=weights,
                                              device="cpu"), told)
    for bad in (0, -4, float("nan"), "16", True):
        with pytest.raises(McDenoiseError, match="samples per pixel"):
            api.denoise(s["color"], samples=bad, weights=weights, device="cpu")


def test_a_model_without_the_feature_ignores_the_count():
    torch.manual_seed(1)
    model = build_model("unet", in_channels=9, out_channels=3, widths=[8, 8, 8, 8, 8]).eval()
    loaded = LoadedModel(model, "unet", {}, RENDER)
    s = noisy_scene(32, 32, 1)
    a = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"], samples=4), tile=None)
    b = denoise_frame(loaded, FrameInputs(s["color"], s["albedo"], s["normal"]), tile=None)
    np.testing.assert_array_equal(a, b)


def test_a_grown_model_computes_what_it_did_whatever_the_planes_hold():
    torch.manual_seed(2)
    for demodulate in (False, True):
        old = build_model("unet", in_channels=9, out_channels=3, widths=[8, 8, 8, 8, 8], demodulate=demodulate).eval()
        grown = add_inputs(old, 2).eval()
        x = torch.rand(1, 9, 32, 32)
        planes = torch.rand(1, 2, 32, 32) * 3
        with torch.no_grad():
            torch.testing.assert_close(grown(torch.cat([x, planes], 1)), old(x), rtol=0, atol=1e-6)
        assert grown.enc1[0].in_channels == old.enc1[0].in_channels + 2
