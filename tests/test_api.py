"""The Python API (``mcdenoise.denoise``, ``mcdenoise.denoise_exr``): what it accepts, what it
refuses and how, that it matches the CLI's result, and that docs/api.md's examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import mcdenoise
from batch_fixtures import denoised_pass, make_tiny_weights
from exr_fixtures import write_blender_like
from mcdenoise.errors import McDenoiseError, MissingPassError, PassShapeError, WeightsError
from mcdenoise.inference.frames import AuxMissingWarning, denoise_file
from mcdenoise.io.exr import read_frame
from mcdenoise.models.loader import load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _scene(h: int = 40, w: int = 56):
    rng = np.random.default_rng(1)
    color = rng.exponential(0.5, (h, w, 3)).astype(np.float32)
    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 2] = 1
    return color, np.full((h, w, 3), 0.5, np.float32), normal


def test_importing_mcdenoise_does_not_import_torch():
    code = "import sys, mcdenoise; mcdenoise.__all__; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ}, check=False).returncode == 0


def test_the_array_api_gives_the_cli_result_for_the_same_frame(weights, tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    frame = read_frame(src)
    denoise_file(load_model(weights), src, tmp_path / "out.exr")
    result = mcdenoise.denoise(frame.color, frame.albedo, frame.normal, weights=weights, device="cpu")
    assert result.shape == frame.color.shape and result.dtype == np.float32
    written = denoised_pass(tmp_path / "out.exr")[..., ::-1]  # channels sorted B, G, R
    np.testing.assert_allclose(result, written, rtol=1e-3, atol=1e-3)


def test_float16_and_float64_give_the_float32_result_and_nonfinite_values_are_sanitised(weights):
    color, albedo, normal = _scene()
    reference = mcdenoise.denoise(color, albedo, normal, weights=weights, device="cpu")
    as64 = mcdenoise.denoise(color.astype(np.float64), albedo.astype(np.float64), normal, weights=weights, device="cpu")
    np.testing.assert_array_equal(as64, reference)
    as16 = mcdenoise.denoise(color.astype(np.float16), albedo, normal, weights=weights, device="cpu")
    assert as16.dtype == np.float32 and np.abs(as16 - reference).max() < 0.05
    color[3, 4], color[5, 6], color[7, 8] = np.nan, np.inf, -np.inf
    assert np.isfinite(mcdenoise.denoise(color, albedo, normal, weights=weights, device="cpu")).all()


def test_the_model_is_loaded_once_per_weights_and_device(weights, monkeypatch):
    color, albedo, normal = _scene()
    mcdenoise.denoise(color, albedo, normal, weights=weights, device="cpu")
    monkeypatch.setattr("mcdenoise.models.loader.load_model", lambda *a, **k: pytest.fail("loaded again"))
    mcdenoise.denoise(color, albedo, normal, weights=weights, device="cpu")


@pytest.mark.parametrize(("change", "error", "words"), [
    (lambda c, a, n: (c.tolist(), a, n), PassShapeError, "NumPy array"),
    (lambda c, a, n: (c[..., 0], a, n), PassShapeError, "(H, W, 3)"),
    (lambda c, a, n: (np.moveaxis(c, -1, 0), a, n), PassShapeError, "channels-first"),
    (lambda c, a, n: (np.dstack([c, c[..., :1]]), a, n), PassShapeError, "RGBA"),
    (lambda c, a, n: ((c * 50).astype(np.uint8), a, n), PassShapeError, "uint8"),
    (lambda c, a, n: (c.astype(np.complex64), a, n), PassShapeError, "complex"),
    (lambda c, a, n: (c, a[:-2], n), PassShapeError, "colour's size"),
    (lambda c, a, n: (c, np.pad(a, ((0, 8), (0, 0), (0, 0))), n), PassShapeError, "colour's size"),
    (lambda c, a, n: (c, a, None), MissingPassError, "without normal"),
    (lambda c, a, n: (c, a.astype(np.int32), n), PassShapeError, "int32"),
])
def test_bad_arrays_are_refused_saying_what_to_pass(weights, change, error, words):
    with pytest.raises(error) as caught:
        mcdenoise.denoise(*change(*_scene()), weights=weights, device="cpu")
    assert words in str(caught.value)


def test_a_weights_file_and_another_quality_are_refused(weights):
    with pytest.raises(WeightsError, match="both a weights file and a quality"):
        mcdenoise.denoise(_scene()[0], weights=weights, quality="fast")


def test_denoise_exr_writes_the_pass_and_warns_without_aux(weights, tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src, aux=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = mcdenoise.denoise_exr(src, tmp_path / "out.exr", weights=weights, device="cpu")
    assert written == tmp_path / "out.exr" and denoised_pass(written).shape == (40, 56, 3)
    assert any(issubclass(w.category, AuxMissingWarning) for w in caught)
    with pytest.raises(McDenoiseError, match="no albedo and normal pass"):
        mcdenoise.denoise_exr(src, tmp_path / "out2.exr", weights=weights, device="cpu", require_aux=True)


def test_the_examples_in_docs_api_md_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3
    write_blender_like(tmp_path / "render.exr")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), {})  # noqa: S102 - the doc's own examples
    assert denoised_pass(tmp_path / "render_denoised.exr").shape == (40, 56, 3)
