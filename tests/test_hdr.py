"""The HDR transform: invertible, exposure-invariant, robust to NaN/Inf/negative radiance."""

from __future__ import annotations

import numpy as np
import pytest

from mcdenoise import hdr


def test_forward_inverse_roundtrip_over_many_decades():
    x = np.logspace(-4, 4, 4000, dtype=np.float32).reshape(40, 100, 1).repeat(3, -1)
    for exposure in (1e-3, 0.37, 1.0, 55.0):
        back = hdr.inverse(hdr.forward(x, exposure), exposure)
        np.testing.assert_allclose(back, x, rtol=2e-5, atol=1e-7)


def test_autoexposure_cancels_scale_so_dim_and_bright_frames_look_alike():
    rng = np.random.default_rng(0)
    base = rng.random((64, 64, 3)).astype(np.float32) + 0.01
    dim, bright = base * 0.01, base * 100.0
    e_dim, e_bright = hdr.autoexposure(dim), hdr.autoexposure(bright)
    assert e_dim / e_bright == pytest.approx(1e4, rel=1e-4)
    np.testing.assert_allclose(hdr.forward(dim, e_dim), hdr.forward(bright, e_bright), rtol=1e-4, atol=1e-6)
    # the network sees a mid-grey-centred range whatever the radiance units were
    assert 0.05 < float(np.median(hdr.forward(dim, e_dim))) < 0.6


def test_autoexposure_ignores_fireflies_and_black_frames():
    img = np.full((256, 256, 3), 0.5, np.float32)
    spiky = img.copy()
    spiky[10, 10] = 1e5
    assert hdr.autoexposure(spiky) == pytest.approx(hdr.autoexposure(img), rel=0.05)
    assert hdr.autoexposure(np.zeros((8, 8, 3), np.float32)) == 1.0


def test_sanitize_nan_inf_negative():
    x = np.array([[[np.nan, np.inf, -np.inf], [-2.0, 0.5, 3.0]]], np.float32)
    y = hdr.forward(x, 1.0)
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    assert np.all(np.isfinite(hdr.autoexposure(x)))
    np.testing.assert_array_equal(hdr.prepare_albedo(np.array([1.7, -0.1, np.nan], np.float32)), [1.0, 0.0, 0.0])
    assert np.all(hdr.inverse(np.array([-1.0, 0.0], np.float32), 2.0) == 0)


def test_numpy_functions_leave_their_input_alone_and_match_the_in_place_tensor_ops():
    """Inference transforms in place on the device, training through the NumPy functions:
    both must give the network the same numbers."""
    import torch

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((16, 20, 3)) * 4).astype(np.float32)
    x[0, 0, 0] = np.nan
    before = x.copy()
    y = hdr.forward(x, 0.3)
    np.testing.assert_array_equal(x, before)
    t = torch.from_numpy(x.copy())
    assert hdr.forward_(t, 0.3) is t  # in place, no new frame-sized tensor
    np.testing.assert_array_equal(t.numpy(), y)
    np.testing.assert_array_equal(hdr.inverse_(t, 0.3).numpy(), hdr.inverse(y, 0.3))
