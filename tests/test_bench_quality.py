"""``mcdenoise bench --data``: report files and numbers on a tiny dataset rendered with real
Cycles, checked against metrics computed here independently of the benchmark code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcdenoise import hdr
from mcdenoise.io.exr import read_frame
from mcdenoise.preview import tonemap
from mcdenoise.training.config import TrainConfig
from mcdenoise.training.loop import export, train

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the render extra (bpy)")
HAS_OIDN = importlib.util.find_spec("pyoidn") is not None


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    subprocess.run(
        [sys.executable, "-m", "mcdenoise", "render-dataset", "--out", str(data), "--scenes", "2",
         "--res", "32", "--spp", "1,4", "--ref-spp", "16", "--quiet", "--threads", "1"],
        check=True, capture_output=True, timeout=300,
    )
    cfg = TrainConfig(data=str(data), run_dir=str(root / "run"), widths="fast", steps=2, batch=2, crop=32,
                      val_fraction=0.5, val_every=0, threads=1, device="cpu", progress=False)
    train(cfg)
    export(cfg.run_dir, root / "tiny.pt")
    report = root / "report"
    cmd = [sys.executable, "-m", "mcdenoise", "bench", "--data", str(data), "--out", str(report),
           "--models", str(root / "tiny.pt"), "high", "--crop", "16"] + ([] if HAS_OIDN else ["--no-oidn"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return data, report, json.loads((report / "results.json").read_text())


def test_writes_report_plot_and_crops(bench_run):
    _, report, result = bench_run
    text = (report / "report.md").read_text()
    assert "| spp |" in text and "ours: tiny (unet)" in text and "ours: --quality high" in text
    for name in ("psnr_vs_spp.png", "crops_1spp.png", "crops_4spp.png"):
        assert (report / name).stat().st_size > 1000
    expected = {"noisy", "ours: tiny (unet)", "ours: --quality high"} | ({"OIDN albedo+normal", "OIDN colour-only"} if HAS_OIDN else set())
    assert set(result["methods"]) == expected
    assert len(result["frames"]) == 2 * 2 * len(expected)  # scenes x sample counts x methods
    for f in result["frames"]:
        assert np.isfinite([f["psnr"], f["ssim"], f["relmse"], f["ms_per_mp"]]).all()
        assert -1 <= f["ssim"] <= 1 and f["relmse"] >= 0
        assert (f["ms_per_mp"] > 0) == (f["method"] != "noisy")


def test_noisy_row_matches_independent_metrics(bench_run):
    data, _, result = bench_run
    for f in (f for f in result["frames"] if f["method"] == "noisy"):
        scene = data / f["scene"]
        ref = read_frame(scene / f"{f['scene']}_ref.exr").color.astype(np.float64)
        noisy = read_frame(scene / f"{f['scene']}_{f['spp']:04d}spp.exr").color.astype(np.float64)
        e = hdr.autoexposure(ref)
        mse = np.mean((tonemap(noisy, e).astype(np.float64) - tonemap(ref, e)) ** 2)
        assert f["psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-3)
        assert f["relmse"] == pytest.approx(np.mean((noisy - ref) ** 2 / (ref**2 + 0.01)), rel=1e-3)


def test_more_samples_score_higher_for_the_noisy_input(bench_run):
    _, _, result = bench_run
    s = result["summary"]
    assert s["4"]["noisy"]["psnr"] > s["1"]["noisy"]["psnr"]
    if HAS_OIDN:
        assert s["1"]["OIDN albedo+normal"]["psnr"] > s["1"]["noisy"]["psnr"]


def test_model_precision_is_measured_as_its_own_row(bench_run, tmp_path):
    data, _, result = bench_run
    report = tmp_path / "bf16"
    weights = next(data.parent.glob("tiny.pt"))
    proc = subprocess.run([sys.executable, "-m", "mcdenoise", "bench", "--data", str(data), "--out", str(report), "--no-oidn",
                           "--models", str(weights), "--precision", "bf16", "--crop", "16"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bf16 = json.loads((report / "results.json").read_text())["summary"]
    for spp, rows in bf16.items():
        assert rows["ours: tiny (unet) [bf16]"]["psnr"] == pytest.approx(result["summary"][spp]["ours: tiny (unet)"]["psnr"], abs=0.5)
