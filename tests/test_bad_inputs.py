"""The bad-input corpus: every broken frame or folder a farm meets gets a message naming the
file and what to do, and leaves no partial output behind.

The corpus run is the one test of the real entry point (``python -m mcdenoise``) meeting bad
input: exit status, stderr holding one line per problem and nothing else. The other runs call
the CLI's ``main`` in this process (the ``cli`` fixture); what each error says about its file is
checked where it is raised (tests/test_exr.py, tests/test_models.py), and that any error ends a
single-frame run with one line and exit 2 in tests/test_cli_denoise.py.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from batch_fixtures import denoised_pass, leftovers, make_tiny_weights, run_cli, write_sequence
from exr_fixtures import box, write_blender_like
from mcdenoise.io.write import write_exr


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def blender_passes(h: int, w: int, color: np.ndarray | None = None, albedo_hw: tuple[int, int] | None = None) -> dict:
    rng = np.random.default_rng(1)
    color = rng.exponential(0.5, (h, w, 3)).astype(np.float32) if color is None else color
    ah, aw = albedo_hw or (h, w)
    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 2] = 1
    return {
        "ViewLayer.Combined": np.dstack([color, np.ones((h, w), np.float32)]),
        "ViewLayer.Denoising Albedo": np.full((ah, aw, 3), 0.5, np.float16),
        "ViewLayer.Denoising Normal": normal,
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good frames mixed with every kind of bad one, as a farm folder would hold them."""
    d = tmp_path_factory.mktemp("corpus")
    good = write_sequence(d, [1, 2])
    truncated = d / "truncated.exr"
    write_blender_like(truncated, h=64, w=64)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    not_exr = d / "not_an_exr.exr"
    not_exr.write_text("<html>502 Bad Gateway</html>")
    mismatch = d / "aux_mismatch.exr"
    # The albedo part's data window is half the colour's (a shared display window keeps it a legal file).
    write_exr(mismatch, blender_passes(40, 56, albedo_hw=(20, 28)), header={"displayWindow": box(0, 0, 55, 39)}, multipart=True)
    color = np.full((40, 56, 3), 0.3, np.float32)
    color[3, 4], color[10, 11], color[20, 30], color[30] = np.nan, np.inf, -np.inf, -5.0
    nonfinite = d / "nan_inf_negative.exr"
    write_exr(nonfinite, blender_passes(40, 56, color=color), multipart=True)
    offset = d / "data_window_offset.exr"
    write_blender_like(offset, h=33, w=47, data_window=(-7, 12))
    no_aux = d / "no_aux.exr"
    write_blender_like(no_aux, aux=False)
    no_color = d / "depth_only.exr"
    write_exr(no_color, {"ViewLayer.Depth": np.ones((8, 8), np.float32)}, multipart=True)
    return {"dir": d, "good": good, "truncated": truncated, "not_exr": not_exr, "mismatch": mismatch,
            "nonfinite": nonfinite, "offset": offset, "no_aux": no_aux, "no_color": no_color}


def test_bad_frames_fail_alone_with_keep_going(corpus, weights, tmp_path):
    """Through the real entry point: each bad frame fails alone with exactly one stderr line
    naming it, frames without aux passes are denoised colour-only with a warning, the odd but
    legal frames (NaN/Inf/negative colour, an offset data window) give finite outputs, and the
    job exits 1."""
    out = tmp_path / "out"
    run = run_cli("denoise", corpus["dir"], "--out", out, "--weights", weights, "--keep-going", "-q")
    assert run.returncode == 1, run.stderr
    assert "done 5 / skipped 0 / failed 4 of 9" in run.stdout
    expected = {
        "truncated": "error: {}: file is incomplete or corrupted",
        "not_exr": "error: {}: not an OpenEXR file",
        "mismatch": "error: {}: albedo pass is 28x20",
        "no_color": "error: {}: no colour pass found",
        "no_aux": "warning: {}: no albedo and normal pass, denoising from colour only",
    }
    lines = run.stderr.splitlines()
    assert len(lines) == len(expected), run.stderr  # one line per problem, no traceback, nothing else
    for key, start in expected.items():
        line = next((x for x in lines if str(corpus[key]) in x), "")
        assert line.startswith("mcdenoise denoise: " + start.format(corpus[key])), (key, run.stderr)
    assert "re-render so all passes share one data window" in next(x for x in lines if str(corpus["mismatch"]) in x)
    for key in ("truncated", "not_exr", "mismatch", "no_color"):
        assert not (out / corpus[key].name).exists()
    assert leftovers(out) == []
    nonfinite = denoised_pass(out / "nan_inf_negative.exr")
    assert np.all(np.isfinite(nonfinite)) and nonfinite.min() >= 0
    offset = denoised_pass(out / "data_window_offset.exr")
    assert offset.shape == (33, 47, 3) and np.all(np.isfinite(offset))
    assert np.all(np.isfinite(denoised_pass(out / "no_aux.exr")))


def test_first_bad_frame_stops_the_job_without_keep_going(corpus, weights, tmp_path, cli):
    out = tmp_path / "out"
    code, stdout, stderr = cli("denoise", corpus["good"][0], corpus["not_exr"], corpus["good"][1], "--out", out, "--weights", weights)
    assert code == 2
    assert f"{corpus['not_exr']}: not an OpenEXR file" in stderr
    assert "failed 1" in stdout
    assert not (out / corpus["good"][1].name).exists() and leftovers(out) == []


def test_unwritable_output_folder_fails_before_any_work(corpus, weights, tmp_path, cli):
    # An --out under a plain file can never be created, root or not.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = cli("denoise", corpus["good"][0], "--out", blocker / "out", "--weights", weights)
    assert code == 2 and f"{blocker / 'out'}: cannot create output folder" in stderr

    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:  # root ignores permission bits; an immutable folder stops it too
        immutable = subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("running as root without chattr: a read-only folder cannot be made")
    try:
        code, _, stderr = cli("denoise", *corpus["good"], "--out", ro, "--weights", weights)
        assert code == 2
        assert f"{ro}: output folder is not writable" in stderr and "choose another --out" in stderr
        assert list(ro.iterdir()) == []
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(ro)], check=True)
        ro.chmod(0o755)
