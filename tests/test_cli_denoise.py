"""`mcdenoise denoise` as a user runs it: the shipped model on the shipped example, and what
any error ends a run with. Runs call the CLI's ``main`` in this process (the ``cli`` fixture);
the real entry point's exit status and stderr are checked once, in tests/test_bad_inputs.py."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from batch_fixtures import make_tiny_weights
from exr_fixtures import write_blender_like
from mcdenoise.io.exr import read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_exr


def high_freq_energy(img: np.ndarray) -> float:
    lum = img.mean(-1)
    return float(np.mean((lum[1:-1, 1:-1] * 4 - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]) ** 2))


def test_denoise_example_with_shipped_model_in_fp32_and_bf16(repo_root, tmp_path, cli):
    """The default model keeps every part of the file and the picture's brightness and removes
    most pixel-scale noise; ``--precision bf16`` on CPU reaches the network (the result moves a
    little, not a lot)."""
    src = repo_root / "examples" / "suzanne_4spp.exr"
    out, preview = tmp_path / "out.exr", tmp_path / "side.png"
    code, _, err = cli("denoise", src, "-o", out, "--preview", preview, "--device", "cpu")
    assert code == 0, err
    parts_in = [p.name() for p in OpenEXR.File(str(src), separate_channels=True).parts]
    parts_out = [p.name() for p in OpenEXR.File(str(out), separate_channels=True).parts]
    assert parts_out == parts_in + ["ViewLayer.Denoised"]
    noisy = read_frame(src).color
    denoised = read_frame(out, PassNames(color=("Denoised",))).color
    assert np.all(np.isfinite(denoised)) and denoised.min() >= 0
    # same picture (mean brightness kept), much less pixel-scale noise
    assert abs(denoised.mean() / noisy.mean() - 1) < 0.1
    assert high_freq_energy(denoised) < 0.25 * high_freq_energy(noisy)
    png = Image.open(preview)
    assert png.size[1] == 240 and png.size[0] > 2 * 320

    bf16_out = tmp_path / "bf16.exr"
    code, _, err = cli("denoise", src, "-o", bf16_out, "--device", "cpu", "--quality", "balanced", "--precision", "bf16")
    assert code == 0, err
    bf16 = read_frame(bf16_out, PassNames(color=("Denoised",))).color
    assert 0 < np.abs(bf16 - denoised).max() < 0.1 * denoised.max()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("bad")
    weights = make_tiny_weights(d / "tiny.pt")
    good = d / "good.exr"
    write_blender_like(good)
    not_exr = d / "render.exr"
    not_exr.write_text("<html>404</html>")
    no_color = d / "depth_only.exr"
    write_exr(no_color, {"ViewLayer.Depth": np.ones((8, 8), np.float32)}, multipart=True)
    no_aux = d / "noaux.exr"
    write_blender_like(no_aux, aux=False)
    corrupted = d / "corrupted.pt"
    corrupted.write_bytes(weights.read_bytes()[:5000])
    return {"weights": weights, "good": good, "not_exr": not_exr, "no_color": no_color, "no_aux": no_aux, "corrupted": corrupted}


def test_errors_end_the_run_with_one_line_exit_2_and_no_output(bad_inputs, tmp_path, cli):
    """Whatever stops a run (a bad frame, a flag the frame cannot satisfy, a bad weights file,
    options that cannot go together) ends it with exit 2 and one stderr line that names the
    file and the fix in the CLI's flags, before any output is written. What each error says
    about its file is tested where it is raised (tests/test_exr.py, tests/test_models.py,
    tests/test_speed.py::test_quality_weights)."""
    b = bad_inputs
    tiny = ("--weights", b["weights"])
    cases = [
        ((tmp_path / "missing.exr", *tiny), [f"{tmp_path / 'missing.exr'}: no such file"]),
        ((b["not_exr"], *tiny), [f"{b['not_exr']}: not an OpenEXR file"]),
        ((b["no_color"], *tiny), [f"{b['no_color']}: no colour pass found", "--color-pass"]),
        ((b["no_aux"], *tiny, "--require-aux"), [f"{b['no_aux']}: no albedo and normal pass", "Denoising Data", "--require-aux"]),
        ((b["good"], "--weights", b["corrupted"]), [f"{b['corrupted']}: not a readable weights file"]),
        ((b["good"], *tiny, "--quality", "fast"), ["give --weights or --quality, not both"]),
        ((b["good"], *tiny, "--compile"), ["--compile is for CUDA only"]),
    ]
    out = tmp_path / "out.exr"
    for args, needles in cases:
        code, _, err = cli("denoise", *args, "-o", out, "--device", "cpu")
        assert code == 2, (args, err)
        assert err.startswith("mcdenoise denoise: error: ") and err.count("\n") == 1, (args, err)
        assert all(n in err for n in needles), (needles, err)
        assert list(tmp_path.iterdir()) == [], args
