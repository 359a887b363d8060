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
