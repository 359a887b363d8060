"""DnCNN faithfulness: the authors' weights in our module reproduce the paper's numbers.

The full BSD68 table (σ = 15/25/50) takes minutes on CI's two cores, so here Set12 σ=25 is run
in full (paper, Table III: DnCNN-S average 30.44 dB) and the CLI is exercised on two images.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mcdenoise.cli.eval_dncnn import evaluate


def test_set12_sigma25_matches_the_paper(shared_dncnn):
    images = sorted((shared_dncnn / "testsets" / "Set12").glob("*.png"))
    assert len(images) == 12
    psnr = evaluate(shared_dncnn / "weights" / "dncnn_s_sigma25.pth", images, sigma=25, seed=0, device="cpu")
    assert psnr == pytest.approx(30.44, abs=0.1)


def test_cli_prints_mean_psnr_last(shared_dncnn, tmp_path, cli):
    """A real process: the CLI's allocator setting (which pytest's process leaves off, see the
    ``cli`` fixture) makes DnCNN's full-size activations much cheaper than in-process."""
    args = ["eval-dncnn", "--weights", shared_dncnn / "weights" / "dncnn_s_sigma50.pth",
            "--images", shared_dncnn / "testsets" / "BSD68", "--sigma", "50", "--limit", "2", "--device", "cpu"]
    run = subprocess.run([sys.executable, "-m", "mcdenoise", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    value = float(re.fullmatch(r"mean PSNR: ([0-9.]+) dB", last).group(1))
    assert 24.0 < value < 29.0  # σ=50 on two BSD68 images: paper's mean is 26.23 dB

    missing = tmp_path / "none.pth"
    code, _, err = cli(*args[:2], missing, *args[3:])
    assert code == 2 and err.startswith(f"mcdenoise eval-dncnn: error: {missing}: weights file not found") and err.count("\n") == 1
