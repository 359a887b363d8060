"""`mcdenoise compare` on real EXR files: the numbers are bench's, better images score better, the
pass to score can be named, and every bad input is one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mcdenoise import compare, hdr
from mcdenoise.cli import main
from mcdenoise.io.write import write_exr
from mcdenoise.metrics import psnr_tonemapped, rel_mse, ssim_tonemapped

H, W = 40, 56


def scene(noise: float, seed: int = 0) -> np.ndarray:
    """A smooth HDR image (a bright corner up to ~8) with multiplicative speckle of ``noise``."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    clean = np.stack([0.5 + 0.4 * np.sin(xx / 7), 0.4 + 0.3 * np.cos(yy / 5), 0.3 + 0.2 * np.sin((xx + yy) / 9)], -1)
    clean[:8, :8] *= 16.0
    speckle = np.random.default_rng(seed).normal(1.0, noise, clean.shape) if noise else 1.0
    return np.maximum(clean * speckle, 0).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    paths = {"ref": tmp_path / "ref.exr", "low": tmp_path / "low_noise.exr", "high": tmp_path / "high_noise.exr"}
    write_exr(paths["ref"], {"": scene(0)})
    write_exr(paths["low"], {"": scene(0.05, seed=1)})
    write_exr(paths["high"], {"": np.dstack([scene(0.4, seed=2), np.ones((H, W), np.float32)])})  # RGBA
    return paths


def run(args: list, capsys) -> tuple[int, str, str]:
    rc = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_identical_image_is_perfect(files, tmp_path, capsys):
    report = tmp_path / "scores.json"
    rc, out, _ = run([files["ref"], "--ref", files["ref"], "--json", report], capsys)
    assert rc == 0
    row = json.loads(report.read_text())["files"][0]
    assert row["psnr"] is None  # infinite: JSON has no infinity
    assert row["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert row["rel_mse"] == 0.0 and row["flip"] == 0.0
    assert " inf " in out.splitlines()[2]


def test_numbers_are_benchs_and_noisier_scores_worse(files, tmp_path, capsys):
    report = tmp_path / "scores.json"
    rc, out, _ = run([files["low"], files["high"], "--ref", files["ref"], "--json", report], capsys)
    assert rc == 0
    result = json.loads(report.read_text())
    low, high = result["files"]
    # bench's definitions at bench's exposure (the reference's autoexposure), not re-derived ones
    ref = hdr.sanitize(scene(0))
    exposure = hdr.autoexposure(ref)
    x = compare.read_pass(files["low"])[0]
    assert result["reference"]["exposure"] == exposure
    assert low["psnr"] == psnr_tonemapped(x, ref, exposure)
    assert low["ssim"] == ssim_tonemapped(x, ref, exposure)
    assert low["rel_mse"] == rel_mse(x, ref)
    assert low["psnr"] > high["psnr"] + 5 and low["ssim"] > high["ssim"]
    assert low["rel_mse"] < high["rel_mse"] and low["flip"] < high["flip"]
    assert result["mean"]["psnr"] == pytest.approx((low["psnr"] + high["psnr"]) / 2)
    table = out.splitlines()
    assert len(table) == 5 and table[4].startswith("mean") and f"{result['mean']['psnr']:.2f}" in table[4]
    assert str(files["low"]) in table[2] and str(files["high"]) in table[3]


def test_pass_option_scores_the_denoised_pass_of_a_multilayer_file(files, tmp_path, capsys):
    layered = tmp_path / "render.exr"
    write_exr(layered, {"ViewLayer.Combined": scene(0.4, seed=2), "ViewLayer.Denoising Albedo": np.full((H, W, 3), 0.5),
                        "ViewLayer.Denoised": scene(0.05, seed=1)}, multipart=True)
    report = tmp_path / "scores.json"
    for args in ([], ["--pass", "Denoised"], ["--pass", "ViewLayer.Denoised"]):
        assert run([layered, "--ref", files["ref"], "--json", report, *args], capsys)[0] == 0
        row = json.loads(report.read_text())["files"][0]
        plain = compare.score(files["high" if not args else "low"], compare.load_reference(files["ref"]))
        assert row["pass"] == ("ViewLayer.Combined" if not args else "ViewLayer.Denoised")
        assert row["psnr"] == plain.psnr and row["flip"] == plain.flip
    # --ref-pass: the reference may be a pass of a multilayer file too
    assert run([files["low"], "--ref", layered, "--ref-pass", "Denoised", "--json", report], capsys)[0] == 0
    assert json.loads(report.read_text())["files"][0]["psnr"] is None


def test_images_and_no_flip(files, tmp_path, capsys, monkeypatch):
    images = tmp_path / "cmp" / "nested"
    rc, out, _ = run([files["low"], "--ref", files["ref"], "--out", images], capsys)
    assert rc == 0
    side, diff, flip = (Image.open(images / f"low_noise_{k}.png") for k in ("vs_ref", "diff", "flip"))
    assert side.size == (2 * W + 4, H) and diff.size == flip.size == (W, H)
    assert np.asarray(diff).max() > 0
    rc, out, err = run([files["low"], "--ref", files["ref"], "--no-flip"], capsys)
    assert rc == 0 and out.splitlines()[2].rstrip().endswith(" -") and not err
    monkeypatch.setattr(compare, "flip_installed", lambda: False)
    rc, out, err = run([files["low"], "--ref", files["ref"]], capsys)
    assert rc == 0 and "mcdenoise[compare]" in err and out.splitlines()[2].rstrip().endswith(" -")


def test_bad_inputs_are_one_line_and_exit_2(files, tmp_path, capsys):
    notexr = tmp_path / "render.exr"
    notexr.write_text("<html>404</html>")
    small = tmp_path / "small.exr"
    write_exr(small, {"": scene(0)[:20, :30]})
    cases = [
        ([tmp_path / "missing.exr", "--ref", files["ref"]], ["missing.exr", "no such file"]),
        ([files["low"], "--ref", tmp_path / "missing.exr"], ["missing.exr", "no such file"]),
        ([notexr, "--ref", files["ref"]], [str(notexr), "not an OpenEXR file"]),
        ([small, "--ref", files["ref"]], [str(small), "30x20", str(files["ref"]), f"{W}x{H}"]),
        ([files["low"], "--ref", files["ref"], "--pass", "Denoised"], [str(files["low"]), "'Denoised'", "(plain RGB)", "--pass"]),
        ([files["low"], "--ref", files["ref"], "--ref-pass", "Beauty"], [str(files["ref"]), "'Beauty'", "(plain RGB)", "--ref-pass"]),
        ([files["low"], "--ref", files["ref"], "--json", tmp_path / "no" / "s.json"], ["does not exist"]),
    ]
    for args, needles in cases:
        rc, _, err = run(args, capsys)
        assert rc == 2, args
        assert err.count("\n") == 1 and err.startswith("mcdenoise compare: error: "), err
        assert all(n in err for n in needles), (needles, err)


def test_error_through_the_real_entry_point(files):
    """The process boundary: the installed entry point exits 2 with no traceback."""
    run = subprocess.run([sys.executable, "-m", "mcdenoise", "compare", str(files["low"]), "--ref", str(files["ref"]), "--pass", "Denoised"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1 and "(plain RGB)" in run.stderr
