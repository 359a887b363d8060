"""The learned temporal blend (issue 20): training on real EXR sequences in render-dataset's
layout lowers its loss and resumes exactly; through ``TemporalHistory`` it keeps shards and
resume exact; without weights the hand-made blend runs; weights load with
``weights_only=True`` and bad files are refused by name. Frames are 32x32 so the file stays
fast on two cores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch
from batch_fixtures import denoised_pass, make_tiny_weights
from exr_fixtures import box
from mcdenoise.dataset import layout
from mcdenoise.errors import WeightsError
from mcdenoise.models import loader
from mcdenoise.temporal import blendnet, stabilise
from mcdenoise.temporal.blendnet import HAND_MADE, BlendNet, choose_blend
from mcdenoise.temporal.history import TemporalHistory

H = W = 32


def _write_exr(path: Path, passes: dict[str, np.ndarray]) -> None:
    names = {"Combined": "RGB", "Denoising Albedo": "RGB", "Denoising Normal": "XYZ", "Vector": "XYZW"}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "dataWindow": box(0, 0, W - 1, H - 1),
              "displayWindow": box(0, 0, W - 1, H - 1)}
    parts = [OpenEXR.Part(dict(header, name=f"ViewLayer.{p}"),
                          {f"ViewLayer.{p}.{c}": np.ascontiguousarray(px[..., i]) for i, c in enumerate(names[p])},
                          f"ViewLayer.{p}") for p, px in passes.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    OpenEXR.File(parts).write(str(path))


def _frame(t: int, speed: float, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Frame ``t`` of a texture sliding ``speed`` px right per frame: (noisy passes with the
    Vector pass that says so, the clean picture as reference). Noise is Monte-Carlo-like
    (exponential per pixel), new every frame."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    x = xx - speed * t
    clean = np.stack([0.5 + 0.4 * np.sin(x / 3), 0.4 + 0.3 * np.cos(yy / 4 + x / 7), 0.3 + 0.2 * np.sin((x + yy) / 5)], -1)
    rng = np.random.default_rng(seed * 1000 + t)
    vector = np.zeros((H, W, 4), np.float32)
    vector[..., 0], vector[..., 2] = -speed, -speed  # came from the left; goes right (stored negated)
    normal = np.zeros((H, W, 3), np.float32)
    normal[..., 2] = 1.0
    passes = {"Combined": (clean * rng.exponential(1.0, clean.shape)).astype(np.float32),
              "Denoising Albedo": np.clip(clean * 0.8, 0, 1).astype(np.float16), "Denoising Normal": normal,
              "Vector": vector}
    return passes, clean.astype(np.float32)


def write_sequences(root: Path, scenes: int = 3, frames: int = 6, spp: int = 4) -> Path:
    """Finished training sequences in render-dataset --frames' layout (written without Blender)."""
    for idx in range(scenes):
        for t in range(1, frames + 1):
            passes, clean = _frame(t, speed=0.5 + idx, seed=idx)
            _write_exr(layout.scene_noisy_frame_path(root, idx, spp, t), passes)
            _write_exr(layout.scene_ref_frame_path(root, idx, t), {"Combined": clean})
        layout.desc_path(root, idx).write_text(json.dumps({"frames": frames}) + "\n")
    return root


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Path:
    return write_sequences(tmp_path_factory.mktemp("seq"))


@pytest.fixture(scope="module")
def single_frame(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _blend_weights(path: Path, seed: int = 1) -> Path:
    """A blend with random (non-zero) weights: far from the hand-made rule, so its use shows."""
    torch.manual_seed(seed)
    net = BlendNet(8, 2, True)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    loader.save_blend_weights(path, net, {"note": "test"})
    return path


# --- training -------------------------------------------------------------------------------------

def test_a_tiny_temporal_training_run_lowers_its_loss_and_resumes_exactly(tmp_path: Path, cli, sequences: Path) -> None:
    from mcdenoise.temporal import cache, train

    run = tmp_path / "run"
    args = ("train-temporal", "--data", sequences, "--out", run, "--steps", "24", "--batch", "2", "--window", "2",
            "--lr", "0.03", "--channels", "8", "--layers", "1", "-q", "--log-every", "8")
    code, out, err = cli(*args)
    assert code == 0, err
    assert "step 24/24" in out and "steps/s" in out and "ETA" in out
    assert "held out, learned: PSNR" in out and "held out, hand-made: PSNR" in out
    assert (run / "temporal.pt").is_file() and (run / "config.json").is_file()
    assert len(list((run / "cache").glob("scene_*_0004spp.pt"))) == 3  # the single-frame model ran once per frame

    # The loss over every training window, before and after: lower.
    cfg = train.resolve(run, {})
    seqs, _ = train.split(cache.build(cfg.data, run, cfg.model), cfg.val_fraction)
    windows = [train.crop_window(s, b, 3, 0, 0, H, W, torch.device("cpu")) for s in seqs for b in range(len(s.frames) - 2)]
    torch.manual_seed(cfg.seed)
    before = BlendNet(cfg.width, cfg.depth, cfg.guides)
    after = loader.load_blend_weights(run / "temporal.pt").model
    with torch.no_grad():
        loss_before = np.mean([float(train.window_loss(before, f, r, cfg.temporal_weight)) for f, r in windows])
        loss_after = np.mean([float(train.window_loss(after, f, r, cfg.temporal_weight)) for f, r in windows])
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)

    # Stopped after 10 steps and run again: the same weights as one run (checkpoints hold every state).
    split_run = tmp_path / "split"
    resumed = [a if a != run else split_run for a in args]
    assert cli(*resumed, "--stop-after", "10")[0] == 0
    code, out, err = cli(*resumed)
    assert code == 0, err
    assert "resuming" in out
    one = torch.load(run / "temporal.pt", weights_only=True)["state_dict"]
    two = torch.load(split_run / "temporal.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(one[k], two[k]) for k in one)


# --- inference: shards, resume, which blend runs -----------------------------------------------------

def _write_shot(folder: Path, frames) -> str:
    for t in frames:
        passes, _ = _frame(t, speed=1.5, seed=7)
        _write_exr(folder / f"shot_{t:04d}.exr", passes)
    return str(folder / "shot_####.exr")


def _outputs(folder: Path, frames) -> dict[int, np.ndarray]:
    return {n: denoised_pass(folder / f"shot_{n:04d}.exr") for n in frames}


def test_the_learned_blend_keeps_shards_and_resume_exact(tmp_path: Path, cli, single_frame: Path) -> None:
    pattern = _write_shot(tmp_path / "shot", range(1, 9))
    blend = _blend_weights(tmp_path / "blend.pt")
    common = ("--weights", single_frame, "--temporal-weights", blend)
    whole = tmp_path / "whole"
    code, out, err = cli("denoise", pattern, "--out", whole, *common, "-v")
    assert code == 0, err
    assert "temporal: on" in out and "learned blend (blend.pt)" in out
    one_run = _outputs(whole, range(1, 9))
    hand = tmp_path / "hand"
    code, out, err = cli("denoise", pattern, "--out", hand, "--weights", single_frame, "-v")
    assert code == 0, err
    assert "hand-made blend" in out
    hand_made = _outputs(hand, range(1, 9))
    assert np.array_equal(hand_made[1], one_run[1])  # the first frame has no history either way
    assert all(not np.array_equal(hand_made[n], one_run[n]) for n in range(2, 9))  # the learned blend ran
    sharded = tmp_path / "sharded"
    for i in range(3):
        assert cli("denoise", pattern, "--out", sharded, *common, "--shard", f"{i}/3", "-q")[0] == 0
    assert all(np.array_equal(d, one_run[n]) for n, d in _outputs(sharded, range(1, 9)).items())
    for n in (4, 6, 7, 8):  # killed after frame 5, one output lost before it
        (sharded / f"shot_{n:04d}.exr").unlink()
    code, out, err = cli("denoise", pattern, "--out", sharded, *common)
    assert code == 0, err
    assert "done 4 / skipped 4 / failed 0 of 8" in out
    assert all(np.array_equal(d, one_run[n]) for n, d in _outputs(sharded, range(1, 9)).items())


def test_without_learned_weights_the_hand_made_blend_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loader, "TEMPORAL_WEIGHTS", tmp_path / "temporal.pt")  # nothing shipped
    assert choose_blend() is HAND_MADE and TemporalHistory().blend is HAND_MADE
    _blend_weights(tmp_path / "temporal.pt")  # shipped: it is the default, loaded once
    shipped = choose_blend()
    assert shipped.label == "learned blend (temporal.pt)" and shipped.uses_guides and choose_blend() is shipped
    assert TemporalHistory().blend is shipped
    # The same frames through both: the hand-made history is stabilise.blend's, the learned one is not.
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0.2, 0.8, (H, W, 3)).astype(np.float32) for _ in range(3)]
    still = np.zeros((H, W, 4), np.float32)
    albedo, normal = np.full((H, W, 3), 0.5, np.float32), np.zeros((H, W, 3), np.float32)
    outs = {}
    for blend in (HAND_MADE, shipped):
        history = TemporalHistory(4, blend)
        outs[blend.label] = [history.push(n, f, f * 1.3, still, 1.0, albedo, normal) for n, f in enumerate(frames, 1)]
    expected, _ = stabilise.blend(torch.from_numpy(frames[1]), stabilise.tolerance_noise(torch.from_numpy(frames[1] * 1.3),
                                  torch.from_numpy(frames[1]), 1.0), torch.from_numpy(frames[0]), torch.ones(H, W),
                                  torch.ones(H, W, dtype=torch.bool), 1.0)
    assert np.allclose(outs[HAND_MADE.label][1], expected.numpy(), atol=1e-6)
    assert not np.allclose(outs[shipped.label][1], outs[HAND_MADE.label][1], atol=1e-4)


# --- the weights file -------------------------------------------------------------------------------

def test_blend_weights_load_with_weights_only_and_give_the_same_pixels(tmp_path: Path) -> None:
    path = _blend_weights(tmp_path / "blend.pt")
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and dicts: no code runs
    assert payload["format"] == loader.TEMPORAL_FORMAT and payload["config"] == {"width": 8, "depth": 2, "guides": True}
    assert payload["meta"] == {"note": "test"}
    loaded = loader.load_blend_weights(path)
    torch.manual_seed(1)
    x = torch.rand(12, 12, blendnet.BASE_CHANNELS + blendnet.GUIDE_CHANNELS)
    reference = BlendNet(8, 2, True)
    reference.load_state_dict(payload["state_dict"])
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))
    assert blendnet.macs_per_pixel() <= 10_000  # the default blend: within issue 20's cost budget


def test_a_bad_blend_weights_file_is_refused_with_a_clear_error(tmp_path: Path, cli, single_frame: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    wide = tmp_path / "wide.pt"
    torch.save({"format": loader.TEMPORAL_FORMAT, "arch": "blendnet", "config": {"width": 100000, "depth": 2, "guides": True},
                "state_dict": {"w": torch.zeros(1)}, "meta": {}}, wide)
    cases = {garbage: "not a readable weights file", single_frame: "it is a denoiser's weights file",
             wide: "is not width (1-64)", tmp_path / "missing.pt": "temporal weights file not found"}
    for path, words in cases.items():
        with pytest.raises(WeightsError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
            loader.load_blend_weights(path)
        assert info.value.fix == "temporal_weights"
    pattern = _write_shot(tmp_path / "shot", range(1, 3))
    code, _, err = cli("denoise", pattern, "--out", tmp_path / "out", "--weights", single_frame, "--temporal-weights", garbage)
    assert code == 2 and "not a readable weights file" in err and "--temporal-weights" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.exr"))


def test_bench_sequence_scores_the_learned_and_the_hand_made_blend_in_one_run(tmp_path: Path, cli, single_frame: Path) -> None:
    root = tmp_path / "shots"
    for t in range(1, 5):
        passes, clean = _frame(t, speed=1.0, seed=3)
        _write_exr(layout.sequence_noisy_path(root, "slide", 4, t), passes)
        _write_exr(layout.sequence_ref_path(root, "slide", t), {"Combined": clean})
    layout.suite_desc_path(root, "slide").write_text("{}\n")
    blend = _blend_weights(tmp_path / "blend.pt")
    report = tmp_path / "report"
    code, out, err = cli("bench", "--sequence", root, "--models", single_frame, "--temporal-weights", blend, "--no-oidn",
                         "--out", report)
    assert code == 0, err
    result = json.loads((report / "temporal.json").read_text())
    assert result["temporal_blend"] == "learned blend (blend.pt)"
    numbers = result["shots"][0]["numbers"]
    learned, hand = numbers["ours temporal"], numbers["ours temporal, hand-made blend"]
    assert len(learned["psnr"]) == len(hand["psnr"]) == 4 and learned["psnr"][0] == hand["psnr"][0]
    assert learned["psnr"][1:] != hand["psnr"][1:]
    assert "ours temporal, hand-made blend" in out
