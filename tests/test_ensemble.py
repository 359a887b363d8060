"""Self-ensembling over the 8 flips/rotations (the ``high`` quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exr_fixtures import noisy_scene
from mcdenoise.features import DEFAULT_INPUTS, vector_pairs
from mcdenoise.models import tiers as quality
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.models.loader import LoadedModel
from mcdenoise.models import ensemble
from mcdenoise.models.ensemble import SelfEnsemble


def test_inverse_undoes_every_transform_on_non_square_planes():
    x = torch.arange(3 * 5 * 7, dtype=torch.float32).reshape(1, 3, 5, 7)
    outs = set()
    for op in ensemble.OPS:
        y = ensemble.transform(x, op)
        assert y.shape[-2:] == ((5, 7) if op % 2 == 0 else (7, 5))
        outs.add(y.numpy().tobytes())
        assert torch.equal(ensemble.inverse(y, op), x)
    assert len(outs) == 8


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = quality.model_for_quality("fast", DEFAULT_INPUTS)
    with torch.no_grad():
        model.out.weight.mul_(20.0)  # make the residual branch matter
    return model.eval()


def test_self_ensemble_is_the_mean_of_transformed_answers_and_differs_from_one_pass():
    model = _model()
    x = torch.randn(1, 9, 32, 48)
    with torch.inference_mode():
        vectors = vector_pairs(DEFAULT_INPUTS)
        expected = sum(ensemble.inverse(model(ensemble.transform(x, op, vectors)), op) for op in ensemble.OPS) / 8
        got = SelfEnsemble(model, 8, inputs=DEFAULT_INPUTS)(x)
        single = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got - single).abs().max() > 1e-3
    torch.testing.assert_close(SelfEnsemble(model, 1, inputs=DEFAULT_INPUTS)(x), single)
    with pytest.raises(ValueError):
        SelfEnsemble(model, 9, inputs=DEFAULT_INPUTS)


def test_self_ensemble_tiled_equals_untiled():
    """Tiles are multiples of the alignment on both sides, so quarter turns keep the U-Net's
    pooling grid and the tiler's exactness holds for the ensemble too. The network and the
    ensemble both change the answer, so a tiling that lost either would show."""
    s = noisy_scene(72, 88, seed=5)
    frame = FrameInputs(s["color"] * 2.0, s["albedo"], s["normal"])
    model = _model(1)
    loaded = LoadedModel(SelfEnsemble(model, 8, inputs=DEFAULT_INPUTS), "unet", {}, DEFAULT_INPUTS)
    whole = denoise_frame(loaded, frame, tile=None)
    single = denoise_frame(LoadedModel(model, "unet", {}, DEFAULT_INPUTS), frame, tile=None)
    assert np.abs(whole - frame.color).max() > 1 and np.abs(whole - single).max() > 1
    tiled = denoise_frame(loaded, frame, tile=32)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-5)


def test_a_weights_file_runs_with_the_self_ensemble_it_was_saved_with(tmp_path):
    """A shot fine-tune is checked (and kept) as it will run, rotations included; the file
    carries that count so that ``--weights`` (CLI, API, add-on, bench) runs it the same way."""
    from mcdenoise import api
    from mcdenoise.models.loader import load_model, save_weights

    model = _model(2)
    config = {"in_channels": 9, "out_channels": 3, "widths": list(quality.WIDTHS["fast"])}
    plain, four = tmp_path / "plain.pt", tmp_path / "four.pt"
    save_weights(plain, model, "unet", config, DEFAULT_INPUTS, {"note": "x"})
    save_weights(four, SelfEnsemble(model, 4, inputs=DEFAULT_INPUTS), "unet", config, DEFAULT_INPUTS, {"note": "x"})
    raw = load_model(four)  # the network itself, for training from it
    assert not isinstance(raw.model, SelfEnsemble) and raw.meta == {"note": "x", "self_ensemble": 4}
    run = quality.load_for_cli(four, None, device="cpu")
    assert isinstance(run.model, SelfEnsemble) and run.model.n == 4
    assert not isinstance(quality.load_named(plain).model, SelfEnsemble)

    s = noisy_scene(48, 64, seed=3)
    frame = FrameInputs(s["color"] * 2.0, s["albedo"], s["normal"])
    expected = denoise_frame(LoadedModel(SelfEnsemble(model, 4, inputs=DEFAULT_INPUTS), "unet", {}, DEFAULT_INPUTS),
                             frame, tile=None)
    single = denoise_frame(LoadedModel(model, "unet", {}, DEFAULT_INPUTS), frame, tile=None)
    got = api.denoise(s["color"] * 2.0, albedo=s["albedo"], normal=s["normal"], weights=four, device="cpu")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(got - single).max() > 1e-2


@pytest.mark.parametrize("bad", [0, 9, 2.5, True, "4"])
def test_a_bad_self_ensemble_count_in_a_file_is_refused_by_name(tmp_path, bad):
    from mcdenoise.errors import WeightsError
    from mcdenoise.models.loader import load_model, save_weights

    path = tmp_path / "bad.pt"
    save_weights(path, _model(), "unet", {"in_channels": 9, "out_channels": 3, "widths": list(quality.WIDTHS["fast"])},
                 DEFAULT_INPUTS, {"self_ensemble": bad})
    with pytest.raises(WeightsError, match="self_ensemble"):
        load_model(path)
