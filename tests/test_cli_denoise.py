"""`mcdenoise denoise` as a user runs it: the shipped model on the shipped example, and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import OpenEXR
from PIL import Image

from exr_fixtures import write_blender_like
from mcdenoise.io.exr import read_frame, write_exr
from mcdenoise.io.passes import PassNames


def run_cli(*args: str):
    return subprocess.run([sys.executable, "-m", "mcdenoise", *args], capture_output=True, text=True, timeout=600)


def high_freq_energy(img: np.ndarray) -> float:
    lum = img.mean(-1)
    return float(np.mean((lum[1:-1, 1:-1] * 4 - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]) ** 2))


def test_denoise_example_with_shipped_model(repo_root, tmp_path):
    src = repo_root / "examples" / "suzanne_4spp.exr"
    out, preview = tmp_path / "out.exr", tmp_path / "side.png"
    run = run_cli("denoise", str(src), "-o", str(out), "--preview", str(preview), "--device", "cpu")
    assert run.returncode == 0, run.stderr
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


def test_bad_input_messages_without_traceback(tmp_path):
    cases = []
    cases.append((tmp_path / "missing.exr", "no such file"))
    notexr = tmp_path / "render.exr"
    notexr.write_text("<html>404</html>")
    cases.append((notexr, "not an OpenEXR file"))
    nocolor = tmp_path / "depth_only.exr"
    write_exr(nocolor, {"ViewLayer.Depth": np.ones((8, 8), np.float32)}, multipart=True)
    cases.append((nocolor, "no colour pass found"))
    for path, message in cases:
        run = run_cli("denoise", str(path), "-o", str(tmp_path / "out.exr"), "--device", "cpu")
        assert run.returncode != 0, path
        assert message in run.stderr and str(path) in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.exr").exists()


def test_missing_aux_falls_back_or_fails_on_request(tmp_path):
    src = tmp_path / "noaux.exr"
    write_blender_like(src, aux=False)
    out = tmp_path / "out.exr"
    run = run_cli("denoise", str(src), "-o", str(out), "--device", "cpu")
    assert run.returncode == 0 and "colour only" in run.stderr
    assert np.all(np.isfinite(read_frame(out, PassNames(color=("Denoised",))).color))
    out.unlink()
    run = run_cli("denoise", str(src), "-o", str(out), "--device", "cpu", "--require-aux")
    assert run.returncode != 0 and "no albedo and normal pass" in run.stderr and not out.exists()


def test_precision_and_compile_options(repo_root, tmp_path):
    """bf16 on CPU reaches the network (the result moves a little, not a lot); --compile on a
    CPU is refused before any frame is touched."""
    src = repo_root / "examples" / "suzanne_4spp.exr"
    outs = {}
    for precision in ("fp32", "bf16"):
        outs[precision] = tmp_path / f"{precision}.exr"
        run = run_cli("denoise", str(src), "-o", str(outs[precision]), "--device", "cpu", "--quality", "balanced", "--precision", precision)
        assert run.returncode == 0, run.stderr
    a, b = (read_frame(outs[p], PassNames(color=("Denoised",))).color for p in ("fp32", "bf16"))
    diff = np.abs(a - b).max()
    assert 0 < diff < 0.1 * a.max()
    run = run_cli("denoise", str(src), "-o", str(tmp_path / "c.exr"), "--device", "cpu", "--compile")
    assert run.returncode == 2 and "--compile is for CUDA only" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "c.exr").exists()
