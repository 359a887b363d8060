"""Model structure: DnCNN is the paper's network and takes the authors' weights as they are;
the render U-Net is residual and its declared receptive radius covers the real one."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from mcdenoise.choices import TIERS, decoder_config, decoder_widths
from mcdenoise.models import WIDTHS, DnCNN, ResidualUNet, build_model
from mcdenoise.models.unet import add_demodulation, add_inputs, widen
from mcdenoise.models.loader import WEIGHTS_DIR, load_model, save_weights
from mcdenoise.errors import WeightsError


def test_dncnn_layer_sequence_matches_the_paper():
    net = DnCNN(depth=17)
    layers = list(net.dncnn)
    assert isinstance(layers[0], nn.Conv2d) and layers[0].bias is not None and isinstance(layers[1], nn.ReLU)
    middle = layers[2:-1]
    assert len(middle) == 3 * 15
    for conv, bn, relu in zip(middle[0::3], middle[1::3], middle[2::3]):
        assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.kernel_size == (3, 3) and conv.out_channels == 64
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert isinstance(layers[-1], nn.Conv2d) and layers[-1].out_channels == 1
    assert len(net.state_dict()) == 94  # the reference kit's count for D=17
    assert len(DnCNN(depth=20).state_dict()) == 112


def test_dncnn_is_residual():
    net = DnCNN(in_channels=9, out_channels=3).eval()
    nn.init.zeros_(net.dncnn[-1].weight)
    nn.init.zeros_(net.dncnn[-1].bias)
    x = torch.rand(1, 9, 20, 24)
    torch.testing.assert_close(net(x), x[:, :3])


@pytest.mark.parametrize("arch,kwargs", [("unet", {"widths": WIDTHS["fast"]}), ("dncnn", {"in_channels": 9, "out_channels": 3, "depth": 8})])
def test_receptive_radius_covers_the_network(arch, kwargs):
    torch.manual_seed(0)
    net = build_model(arch, **kwargs).eval()
    size, c = 256, 128
    x = torch.rand(1, 9, size, size)
    x2 = x.clone()
    x2[0, :, c, c] += 1.0
    with torch.no_grad():
        changed = (net(x) - net(x2)).abs().sum(1)[0] > 0
    ys, xs = torch.nonzero(changed, as_tuple=True)
    reach = int(max((ys - c).abs().max(), (xs - c).abs().max()))
    assert 0 < reach <= net.receptive_radius


def test_unet_shapes_and_alignment():
    """Any size on the declared alignment's grid keeps its shape; half a step off it cannot
    pass the pooling levels, which is why inference pads to ``alignment``."""
    net = ResidualUNet(in_channels=9, widths=WIDTHS["fast"]).eval()
    a = net.alignment
    with torch.no_grad():
        assert net(torch.rand(2, 9, 3 * a, 4 * a)).shape == (2, 3, 3 * a, 4 * a)
        with pytest.raises(RuntimeError):
            net(torch.rand(1, 9, 3 * a - a // 2, 4 * a))
    with pytest.raises(ValueError):
        ResidualUNet(widths=(8, 8))


def test_loads_the_authors_weights(shared_dncnn):
    for name, depth in (("dncnn_s_sigma25.pth", 17), ("dncnn3.pth", 20)):
        loaded = load_model(shared_dncnn / "weights" / name)
        assert loaded.inputs == "grey" and loaded.config["depth"] == depth
        reference = torch.load(shared_dncnn / "weights" / name, weights_only=True)
        ours = loaded.model.state_dict()
        assert set(ours) == set(reference)
        for key, value in reference.items():
            torch.testing.assert_close(ours[key], value)


def test_weights_file_roundtrip_and_errors(tmp_path):
    net = ResidualUNet(widths=(8, 8, 8, 8, 8))
    path = tmp_path / "w.pt"
    save_weights(path, net, "unet", {"widths": [8, 8, 8, 8, 8]}, "color+albedo+normal", {"steps": 3})
    loaded = load_model(path)
    assert loaded.meta["steps"] == 3 and not loaded.model.training
    x = torch.rand(1, 9, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net.eval()(x))
    # Each refusal names the file (the CLI prints it as it is: tests/test_cli_denoise.py).
    save_weights(path, net, "unet", {"widths": [16, 8, 8, 8, 8]}, "color+albedo+normal")
    with pytest.raises(WeightsError, match=f"^{re.escape(str(path))}: weights do not fit architecture 'unet'"):
        load_model(path)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match=f"^{re.escape(str(path))}: not a readable weights file"):
        load_model(path)
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match=f"^{re.escape(str(missing))}: weights file not found"):
        load_model(missing)


def test_widen_keeps_the_function_and_lets_added_channels_learn():
    """Growing a trained U-Net must start the wide one at the narrow one's output (or the run
    throws away the training it meant to keep), and the added channels must get gradient, or
    the extra width would stay dead."""
    torch.manual_seed(0)
    narrow = ResidualUNet(9, 3, WIDTHS["fast"]).eval()
    for p in narrow.parameters():  # not the default init: every weight matters to the output
        p.data.normal_(0, 0.1)
    wide = widen(narrow, WIDTHS["high"]).eval()
    assert [conv.out_channels for conv in (wide.enc1[1], wide.enc4[1], wide.mid[1], wide.dec1[1])] == [32, 80, 96, 32]
    x = torch.rand(2, 9, 48, 32)
    assert torch.allclose(wide(x), narrow(x), atol=1e-5)

    wide(x).square().mean().backward()
    # The decoder's input is [upsampled, skip]: added skip channels of enc4 sit at 96 + 48.. in dec4.0
    grad = wide.dec4[0].weight.grad
    assert grad[:, 96 + 48 :].abs().sum() > 0 and grad[:, 64:96].abs().sum() > 0
    assert torch.count_nonzero(wide.dec4[0].weight[:, 96 + 48 :]) == 0


def _random_weights(model: nn.Module, std: float = 0.1) -> nn.Module:
    torch.manual_seed(1)
    for p in model.parameters():  # not the default init: every weight matters to the output
        p.data.normal_(0, std)
    return model.eval()


@pytest.mark.parametrize("demodulate", [False, True])
def test_a_mirrored_unet_grows_the_wide_decoder_computing_what_it_computed(demodulate):
    """``train --decoder wide --init FILE``: the decoder's finest levels widen and the input
    skip is added at zero weight, so the run starts at the file's quality, and the skip's
    weights get gradient at once (else the new path would stay dead)."""
    # (smaller weights with demodulation: its exp/log of a random net's answers would overflow)
    narrow = _random_weights(ResidualUNet(9, 3, WIDTHS["balanced"], demodulate=demodulate), 0.05 if demodulate else 0.1)
    grown = widen(narrow, WIDTHS["balanced"], **decoder_config(WIDTHS["balanced"], "wide")).eval()
    assert grown.decoder == [64, 64, 48, 48, 64, 64, 64, 32] and grown.input_skip
    assert grown.arch_config() == {"in_channels": 9, "out_channels": 3, "widths": list(WIDTHS["balanced"]),
                                   **({"demodulate": True} if demodulate else {}),
                                   "decoder": [64, 64, 48, 48, 64, 64, 64, 32], "input_skip": True}
    x = torch.rand(2, 9, 48, 32) + 0.1
    torch.testing.assert_close(grown(x), narrow(x), rtol=0, atol=1e-5)
    grown(x).square().mean().backward()
    weight = grown.dec1[0].weight  # dec1 reads [upsampled dec2, enc1, the input]
    skip, skip_grad = weight[:, 64 + 24 :], weight.grad[:, 64 + 24 :]
    assert skip.shape[1] == 9 + (3 if demodulate else 0) and not skip.any() and skip_grad.abs().sum() > 0
    # grown further (wider encoder, the decoder as it is) and given an input plane, still the same function
    wider = add_inputs(widen(grown, WIDTHS["high"]), 2).eval()
    assert wider.decoder == grown.decoder and wider.widths == list(WIDTHS["high"])
    torch.testing.assert_close(wider(torch.cat([x, torch.rand(2, 2, 48, 32)], 1)), narrow(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="stay or grow"):  # dropping the skip is not growing
        widen(grown, WIDTHS["balanced"], input_skip=False)


def test_demodulation_added_to_a_wide_decoder_leaves_the_input_skips_irradiance_at_zero():
    plain = _random_weights(ResidualUNet(9, 3, WIDTHS["fast"], **decoder_config(WIDTHS["fast"], "wide")))
    demod = add_demodulation(plain)
    old, new = plain.dec1[0].weight, demod.dec1[0].weight
    at = 64 + 16  # [upsampled dec2, enc1, colour, irradiance (new), albedo + normal]
    assert torch.equal(new[:, : at + 3], old[:, : at + 3]) and torch.equal(new[:, at + 6 :], old[:, at + 3 :])
    assert not new[:, at + 3 : at + 6].any()


def test_a_wide_decoder_round_trips_through_a_weights_file_and_bad_sizes_are_refused(tmp_path):
    model = _random_weights(ResidualUNet(9, 3, WIDTHS["fast"], **decoder_config(WIDTHS["fast"], "wide")))
    save_weights(tmp_path / "w.pt", model, "unet", model.arch_config(), "color+albedo+normal")
    loaded = load_model(tmp_path / "w.pt")
    assert loaded.config["decoder"] == [48, 48, 32, 32, 64, 64, 64, 32] and loaded.config["input_skip"] is True
    x = torch.rand(1, 9, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    for bad, why in (({"input_skip": 1}, "must be true or false"), ({"decoder": [48, 48, 32, 32, 64, 64, 64, 0]}, "out of range"),
                     ({"decoder": [48, 48]}, "cannot build")):
        save_weights(tmp_path / "bad.pt", model, "unet", {**model.arch_config(), **bad}, "color+albedo+normal")
        with pytest.raises(WeightsError, match=why):
            load_model(tmp_path / "bad.pt")
    assert decoder_config(WIDTHS["fast"], "mirror") == {}  # plain files keep the config they always had
    with pytest.raises(ValueError, match="unknown decoder"):
        decoder_widths(WIDTHS["fast"], "oidn")


def test_widen_refuses_to_narrow():
    with pytest.raises(ValueError, match="stay or grow"):
        widen(ResidualUNet(9, 3, WIDTHS["balanced"]), WIDTHS["fast"])


def test_registry_builds_each_named_architecture():
    assert type(build_model("unet")) is ResidualUNet and type(build_model("dncnn")) is DnCNN
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")


def test_each_tier_names_the_network_its_shipped_file_holds():
    """Speed benchmarks and ``train --quality`` build networks from the tier table's width row;
    it must be what the shipped weights file of that tier really is."""
    for tier in TIERS.values():
        payload = torch.load(WEIGHTS_DIR / tier.weights, weights_only=True)
        assert payload["arch"] == "unet", tier.name
        assert {k: payload["config"][k] for k in ("widths", "decoder", "input_skip") if k in payload["config"]} == tier.config, tier.name


def test_the_registry_builds_only_architectures_that_declare_the_tiling_contract(monkeypatch):
    """Inference reads ``receptive_radius`` and ``alignment`` off every model without defaults,
    so the registry refuses a network that does not declare them as positive ints."""
    from mcdenoise import models

    assert (build_model("dncnn", depth=17).receptive_radius, DnCNN.alignment) == (17, 1)
    assert (ResidualUNet.receptive_radius, ResidualUNet.alignment) == (108, 16)

    class Undeclared(nn.Module):
        alignment = 1

    class Unaligned(Undeclared):
        receptive_radius, alignment = 4, 0

    for cls, name in ((Undeclared, "receptive_radius"), (Unaligned, "alignment")):
        monkeypatch.setitem(models.ARCHITECTURES, "broken", cls)
        with pytest.raises(TypeError, match=f"{cls.__name__} must declare {name} as a positive int"):
            build_model("broken")
