"""The demodulating U-Net (``models.unet``, ``demodulate=True``): beside colour it denoises
colour / albedo and multiplies it back, mixing the two per pixel. Albedo texture can reach the
output exactly, the irradiance branch's "change nothing" passes a converged input through, tiles
still equal the whole frame, and a shipped colour model grows the branch without changing what
it computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcdenoise import features, hdr
from mcdenoise.errors import WeightsError
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs, build_input
from mcdenoise.models import build_model
from mcdenoise.models.loader import LoadedModel, load_model, save_weights
from mcdenoise.models.unet import DEMODULATION_EPSILON, add_demodulation

from exr_fixtures import noisy_scene

RENDER = features.DEFAULT_INPUTS
WIDTHS = [8, 8, 8, 8, 8]


def _net(demodulate: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("unet", in_channels=9, out_channels=3, widths=WIDTHS, demodulate=demodulate).eval()


def _textured_frame(h: int = 64, w: int = 80) -> FrameInputs:
    """A fine checker albedo (2-px squares, 0.05 vs 0.8) under smooth light."""
    s = noisy_scene(h, w, 5)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where((yy // 2 + xx // 2) % 2, 0.8, 0.05).astype(np.float32)
    albedo = np.dstack([checker, checker * 0.9, checker * 0.7])
    light = (1.0 + 0.5 * np.sin(xx / 11.0) * np.cos(yy / 13.0))[..., None].astype(np.float32)
    return FrameInputs((albedo * light * 2.0).astype(np.float32), albedo, s["normal"])


def _encoded(frame: FrameInputs) -> torch.Tensor:
    return torch.from_numpy(build_input(frame, hdr.autoexposure(frame.color), RENDER, slice(None), slice(None)))[None]


def test_a_network_whose_residuals_are_zero_returns_the_input_exactly():
    """Both branches' "change nothing" (zero residuals), whatever the mix: the colour comes back,
    HDR range included; dividing by albedo and multiplying back loses nothing."""
    net = _net(True)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
        net.out.bias[6] = 3.0  # mostly the irradiance branch
    frame = _textured_frame()
    frame.color[3, 4] = 5e4  # a firefly
    x = _encoded(frame)
    with torch.no_grad():
        torch.testing.assert_close(net(x), x[:, :3], rtol=1e-5, atol=1e-5)


class _Flatten(torch.nn.Module):
    """A demodulating U-Net whose body answers one constant (log) value for both branches, with
    the mix fully on one of them: the extreme smoother."""

    def __init__(self, net: torch.nn.Module, mix_logit: float):
        super().__init__()
        self.net = net
        self.alignment, self.receptive_radius = net.alignment, net.receptive_radius

        def body(x: torch.Tensor) -> torch.Tensor:  # residual = input - 1: both branches answer 1
            return torch.cat([x[:, 0:3] - 1.0, x[:, 3:6] - 1.0, torch.full_like(x[:, :1], mix_logit)], 1)

        net._body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_albedo_texture_reaches_the_output_through_the_irradiance_branch():
    """A network that flattens everything still returns the checker through the irradiance
    branch (albedo x one constant, pixel for pixel); through the colour branch the picture is
    flat: the texture loss demodulation exists to prevent."""
    frame = _textured_frame()
    lit = denoise_frame(LoadedModel(_Flatten(_net(True), 50.0), "unet", {}, RENDER), frame, tile=None)
    flat = denoise_frame(LoadedModel(_Flatten(_net(True), -50.0), "unet", {}, RENDER), frame, tile=None)
    ratio = lit / (frame.albedo + DEMODULATION_EPSILON)
    assert np.ptp(ratio) < 1e-3 * ratio.mean()
    assert lit[..., 0].max() / lit[..., 0].min() == pytest.approx((0.8 + DEMODULATION_EPSILON) / (0.05 + DEMODULATION_EPSILON), rel=1e-3)
    assert np.ptp(flat) < 1e-3 * flat.mean()


def test_tiles_equal_the_whole_frame():
    net = _net(True)
    with torch.no_grad():
        net.out.weight.mul_(20.0)  # make the residuals and the mix matter
    loaded = LoadedModel(net, "unet", {}, RENDER)
    frame = _textured_frame(72, 88)
    whole = denoise_frame(loaded, frame, tile=None)
    np.testing.assert_allclose(denoise_frame(loaded, frame, tile=32), whole, rtol=1e-4, atol=1e-5)
    colour_only = FrameInputs(frame.color)  # no aux: every pixel's modulation is 1
    np.testing.assert_allclose(denoise_frame(loaded, colour_only, tile=32), denoise_frame(loaded, colour_only, tile=None), rtol=1e-4, atol=1e-5)


def test_a_colour_model_gains_demodulation_starting_where_it_was():
    """``add_demodulation``: the colour branch is the colour model exactly (the irradiance input
    channels have zero weight), the irradiance branch subtracts the same residual, and the mix
    starts at one half, so the grown model is close to the colour model from its first step (the
    branches differ only where log1p is far from log: the darkest pixels)."""
    plain = _net(False, seed=4)
    with torch.no_grad():
        plain.out.weight.mul_(20.0)
    grown = add_demodulation(plain).eval()
    assert grown.demodulate and grown.enc1[0].in_channels == 12 and grown.out.out_channels == 7
    x = _encoded(_textured_frame())
    with torch.no_grad():
        irradiance = torch.log1p(torch.expm1(x[:, :3]) / grown._modulation(x))
        o = grown._body(torch.cat([x[:, :3], irradiance, x[:, 3:]], 1))
        torch.testing.assert_close(x[:, :3] - o[:, :3], plain(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(o[:, 3:6], o[:, :3])
        assert torch.all(o[:, 6] == 0)
    assert add_demodulation(grown) is grown


def test_the_switch_round_trips_through_a_weights_file_and_is_checked(tmp_path):
    net = _net(True)
    config = {"in_channels": 9, "out_channels": 3, "widths": WIDTHS, "demodulate": True}
    save_weights(tmp_path / "d.pt", net, "unet", config, RENDER)
    loaded = load_model(tmp_path / "d.pt")
    assert loaded.model.demodulate and loaded.config["demodulate"] is True
    x = torch.rand(1, 9, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(x))
    save_weights(tmp_path / "bad.pt", net, "unet", {**config, "demodulate": 1}, RENDER)
    with pytest.raises(WeightsError, match="demodulate = 1 must be true or false"):
        load_model(tmp_path / "bad.pt")
    # A demodulating model's weights under a colour model's config do not fit: refused by name.
    torch.save({**torch.load(tmp_path / "d.pt", weights_only=True), "config": {**config, "demodulate": False}}, tmp_path / "mismatch.pt")
    with pytest.raises(WeightsError, match="do not fit"):
        load_model(tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="colour\\+albedo"):
        build_model("unet", in_channels=3, out_channels=3, widths=WIDTHS, demodulate=True)

