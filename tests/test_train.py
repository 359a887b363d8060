"""Training: augmentation geometry, config precedence, exact resume, export -> load -> denoise,
on a tiny dataset rendered with real Cycles through ``mcdenoise render-dataset``."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mcdenoise import features, hdr
from mcdenoise.choices import UNET_WIDTHS, decoder_widths
from mcdenoise.dataset.layout import list_scenes
from mcdenoise.errors import McDenoiseError
from mcdenoise.features import vector_pairs
from mcdenoise.io.exr import read_frame
from mcdenoise.io.write import write_exr
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.models.loader import DEFAULT_WEIGHTS, load_model
from mcdenoise.models import build_model
from mcdenoise.inference.frames import denoise_file
from mcdenoise.io.passes import PassNames
from mcdenoise.preview import tonemap
from mcdenoise.training import config as config_mod
from mcdenoise.training.checkpoint import latest_checkpoint, load_checkpoint
from mcdenoise.training.config import TrainConfig
from mcdenoise.training.data import CropSampler, load_scene, transform_planes
from mcdenoise.training.loop import export, train
from mcdenoise.training.losses import denoise_loss, to_display

needs_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs the render extra (bpy)")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_dataset")
    subprocess.run(
        [sys.executable, "-m", "mcdenoise", "render-dataset", "--out", str(out), "--scenes", "3",
         "--res", "32", "--spp", "1,2", "--ref-spp", "8", "--quiet", "--threads", "1"],
        check=True, capture_output=True, timeout=300,
    )
    return out


def tiny_config(data: Path, run_dir: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), run_dir=str(run_dir), arch="unet", widths="fast", steps=4, batch=2, crop=32,
                warmup=2, val_every=0, log_every=1, threads=1, device="cpu", progress=False, seed=3)
    return TrainConfig(**{**base, **kw})


def test_transforms_keep_normals_consistent_with_geometry():
    """A bowl's normal field n = (x, -y, 1) / |.| (camera space, image rows grow downwards)
    is symmetric under all 8 flips/rotations, so any correctly transformed crop of it must
    equal the original; a transform that moved pixels but not vector components would not."""
    c = 16
    yy, xx = np.mgrid[0:c, 0:c].astype(np.float32) - (c - 1) / 2
    n = np.stack([xx, -yy, np.full_like(xx, 4.0)])
    n /= np.linalg.norm(n, axis=0, keepdims=True)
    x = np.zeros((9, c, c), np.float32)
    x[6:] = n
    x[0] = xx  # a non-symmetric colour plane, to see pixels really move
    vectors = vector_pairs("color+albedo+normal")
    for op in range(8):
        y = transform_planes(x, op, vectors)
        np.testing.assert_allclose(y[6:], n, atol=1e-6, err_msg=f"op {op}")
    assert len({transform_planes(x, op, vectors)[0].tobytes() for op in range(8)}) == 4  # xx has a mirror symmetry in y


def test_config_precedence_defaults_file_flags(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"lr": 0.5, "batch": 3}))
    cfg = config_mod.resolve(cfg_file, {"batch": 5, "crop": None})
    assert (cfg.lr, cfg.batch, cfg.crop) == (0.5, 5, TrainConfig().crop)
    cfg_file.write_text(json.dumps({"not_a_field": 1}))
    with pytest.raises(Exception, match="not_a_field"):
        config_mod.resolve(cfg_file, {})


def test_the_display_loss_space_is_the_benchmarks_tonemap_and_weighs_shadows_more(tmp_path):
    """``loss_space = "display"`` compares in exactly the space PSNR is scored in (``tonemap`` at
    the frame's exposure), still gives negative outputs a gradient back up, and so weighs the
    same network-space error more in the shadows than at mid grey; "log" weighs both alike."""
    rng = np.random.default_rng(0)
    x = rng.lognormal(-2.0, 2.5, (48, 48, 3)).astype(np.float32)
    x[0, :4] = np.array([0.0, 1e-6, 1e4, 1e30])[:, None]  # black, almost black, a firefly, near float32's limit
    exposure = 1.7
    y = torch.from_numpy(hdr.forward(x, exposure))
    np.testing.assert_allclose(to_display(y).numpy(), tonemap(x, exposure), atol=2e-6)

    below = torch.tensor([-0.3, -1e-4], requires_grad=True)
    to_display(below).sum().backward()
    assert torch.all(to_display(below) < 0) and torch.allclose(below.grad, torch.full((2,), 12.92))

    def error_in(level: float, space: str) -> float:
        target = torch.full((1, 3, 32, 32), math.log1p(level))
        return float(denoise_loss(target + 0.01, target, 0.0, space))
    assert error_in(0.02, "log") == pytest.approx(error_in(0.18, "log"))
    assert error_in(0.02, "display") > 3 * error_in(0.18, "display")

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"loss_space": "linear"}))
    with pytest.raises(McDenoiseError, match="loss_space 'linear'.*log or display"):
        config_mod.resolve(cfg_file, {})


@needs_bpy
def test_sampler_crops_are_in_network_space(tiny_dataset):
    s = CropSampler(tiny_dataset, 0.34, 32, aux_dropout=1.0, seed=0)
    assert [e.index for e in s.val] == [0] and [e.index for e in s.train] == [1, 2]
    x, y = s.batch(3)
    assert x.shape == (3, 9, 32, 32) and y.shape == (3, 3, 32, 32)
    assert np.all(x[:, 3:] == 0)  # aux dropout 1.0: every crop is colour-only
    assert np.all(x[:, :3] >= 0) and np.all(y >= 0) and np.isfinite(y).all()


@needs_bpy
def test_converged_crops_lie_between_the_reference_and_the_noisiest_file_they_stand_for(tiny_dataset):
    """``converged``: that share of crops is the reference plus a fraction of the highest sample
    count's noise (its guides alongside); a fraction 0 is the reference itself, which is what
    teaches the network to leave a converged frame alone. Without the option the crop sequence
    is the one runs drew before it existed."""
    # converged 0: the draws of the order runs used before the option, nothing drawn besides.
    base = CropSampler(tiny_dataset, 0.34, 16, aux_dropout=0.3, seed=4)
    rng = np.random.Generator(np.random.PCG64(4))
    for _ in range(8):
        s, spp, y, x, c, op, perm, exposure, drop, noise, samples = base.draw()
        assert s is base.scene(base.train[int(rng.integers(len(base.train)))])
        assert spp == int(rng.choice(np.array(sorted(s.noisy))))
        assert (y, x) == (int(rng.integers(s.shape[0] - c + 1)), int(rng.integers(s.shape[1] - c + 1)))
        assert op == int(rng.integers(8)) and list(perm) == list(rng.permutation(3))
        assert exposure == s.exposure[spp] * float(2.0 ** rng.uniform(-1.0, 1.0))
        assert drop == bool(rng.random() < 0.3) and noise == 1.0 and samples is None  # a layout without samples
    assert base.state() == rng.bit_generator.state

    s = CropSampler(tiny_dataset, 0.34, 16, aux_dropout=0.0, seed=4, converged=1.0)
    choices = [s.draw() for _ in range(6)]
    assert all(c[1] == 2 and 0.0 <= c[9] < 1.0 for c in choices)  # the highest spp of the dataset (1,2)
    assert len({c[9] for c in choices}) == 6
    choice = choices[0]
    x_ref, target = s.build(choice[:9] + (0.0, None))
    np.testing.assert_allclose(x_ref[:3], target, rtol=1e-6, atol=1e-6)  # noise 0: input colour = reference
    x_noisy, _ = s.build(choice[:9] + (1.0, None))
    assert np.abs(x_noisy[:3] - target).mean() > 1e-3  # the file's own noise
    x_half, _ = s.build(choice[:9] + (0.5, None))
    np.testing.assert_array_equal(x_half[3:], x_noisy[3:])  # guides from that file
    dist = lambda a: float(np.abs(a[:3] - target).mean())  # noqa: E731
    assert 0 < dist(x_half) < dist(x_noisy)


@needs_bpy
def test_scene_cache_clips_albedo_beyond_half_range(tiny_dataset, tmp_path):
    """Cycles albedo can exceed fp16's range; the cache stores what the network sees, finite."""
    shutil.copytree(tiny_dataset / "scene_00001", tmp_path / "scene_00001")
    entry = list_scenes(tmp_path)[0]
    f = read_frame(entry.noisy(1))
    rgba = np.concatenate([f.color, np.ones_like(f.color[..., :1])], axis=-1)
    write_exr(entry.noisy(1), {"ViewLayer.Combined": rgba, "ViewLayer.Denoising Albedo": f.albedo * 1e6 + 1e5,
                               "ViewLayer.Denoising Normal": f.normal}, multipart=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = load_scene(entry)
    albedo = scene.noisy[1].albedo
    assert albedo.dtype == np.float16 and np.isfinite(albedo).all() and albedo.max() == 1.0
    np.testing.assert_allclose(scene.noisy[1].normal, f.normal, atol=1e-3)


@needs_bpy
def test_resume_is_bit_identical(tiny_dataset, tmp_path):
    whole = train(tiny_config(tiny_dataset, tmp_path / "whole"))
    assert whole["step"] == 4
    first = train(tiny_config(tiny_dataset, tmp_path / "split"), stop_after=2)
    assert first["step"] == 2 and latest_checkpoint(tmp_path / "split").name == "checkpoint_2.pth"
    second = train(tiny_config(tiny_dataset, tmp_path / "split"))
    assert second["step"] == 4
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "split"))
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["sampler"] == b["sampler"]
    # ... and training actually changed the weights.
    fresh = tiny_config(tiny_dataset, tmp_path / "x")
    from mcdenoise.models import build_model

    torch.manual_seed(fresh.seed)
    init = build_model("unet", **fresh.model_kwargs()).state_dict()
    assert any(not torch.equal(init[k], a["model"][k]) for k in init)
    assert (tmp_path / "whole" / "config.json").is_file() and (tmp_path / "whole" / "log" / "train.jsonl").is_file()


@needs_bpy
def test_on_step_checkpoints_stops_and_moves_the_schedule_as_asked(tiny_dataset, tmp_path):
    """The hook the fine-tune steers its one run of the loop with: told every step, it asks for
    a checkpoint (taken before the next step), a longer schedule inside the warm-up, and the end
    of the call; the run then resumes to exactly the run configured with that length."""
    from mcdenoise.training.loop import Ask

    whole = train(tiny_config(tiny_dataset, tmp_path / "whole", steps=6))
    assert whole["step"] == 6 and whole["stopped"] is None
    told = []

    def on_step(done):
        told.append((done.step, done.steps))
        return {1: Ask(checkpoint=True, steps=6), 3: Ask(stop=True)}.get(done.step)

    first = train(tiny_config(tiny_dataset, tmp_path / "steered", steps=4), on_step=on_step)
    assert told == [(1, 4), (2, 6), (3, 6)] and first["step"] == 3 and first["steps"] == 6
    assert first["stopped"] == "asked"
    kept = sorted(p.name for p in (tmp_path / "steered" / "checkpoints").glob("checkpoint_*.pth"))
    assert kept == ["checkpoint_1.pth", "checkpoint_3.pth"]
    assert load_checkpoint(latest_checkpoint(tmp_path / "steered"))["config"]["steps"] == 6
    second = train(tiny_config(tiny_dataset, tmp_path / "steered", steps=6), stop_after=2)
    assert second["step"] == 5 and second["stopped"] == "stop_after"
    assert train(tiny_config(tiny_dataset, tmp_path / "steered", steps=6))["step"] == 6
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "steered"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]


@needs_bpy
def test_crop_workers_and_prefetch_train_the_same_weights_and_resume_exactly(tiny_dataset, tmp_path):
    """Threads build the crops and batch n+1 is prefetched during step n (the GPU path); the
    weights must not depend on that, and a checkpoint taken mid-run must resume to the same
    place, i.e. it stores the sampler state from before the prefetched batch."""
    serial = train(tiny_config(tiny_dataset, tmp_path / "serial", workers=0))
    first = train(tiny_config(tiny_dataset, tmp_path / "threads", workers=2), stop_after=2)
    assert first["step"] == 2
    train(tiny_config(tiny_dataset, tmp_path / "threads", workers=2))
    a = load_checkpoint(latest_checkpoint(tmp_path / "serial"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "threads"))
    assert serial["step"] == 4 and b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["sampler"] == b["sampler"]


@needs_bpy
def test_init_starts_a_new_run_from_a_weights_file(tiny_dataset, tmp_path):
    train(tiny_config(tiny_dataset, tmp_path / "base", steps=2))
    export(tmp_path / "base", tmp_path / "base.pt", validate_now=False)
    base = load_model(tmp_path / "base.pt").model.state_dict()
    # One step at zero learning rate leaves the weights as the run started: exactly the file's.
    train(tiny_config(tiny_dataset, tmp_path / "tuned", steps=1, lr=0.0, init=str(tmp_path / "base.pt")))
    tuned = load_checkpoint(latest_checkpoint(tmp_path / "tuned"))["model"]
    for k in base:
        assert torch.equal(base[k], tuned[k]), k
    # A wider --quality grows the file's U-Net: the run starts computing what the file computes.
    train(tiny_config(tiny_dataset, tmp_path / "wide", widths="balanced", steps=1, lr=0.0, init=str(tmp_path / "base.pt")))
    wide = load_checkpoint(latest_checkpoint(tmp_path / "wide"))
    assert wide["model"]["mid.1.weight"].shape[0] == 80
    grown = build_model("unet", **wide["model_kwargs"])
    grown.load_state_dict(wide["model"])
    x = torch.rand(1, 9, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grown(x), load_model(tmp_path / "base.pt").model(x), atol=1e-5)
    # --decoder wide grows the file's decoder (and adds the input skip) the same way
    train(tiny_config(tiny_dataset, tmp_path / "widedec", decoder="wide", steps=1, lr=0.0, init=str(tmp_path / "base.pt")))
    ck = load_checkpoint(latest_checkpoint(tmp_path / "widedec"))
    assert ck["model_kwargs"]["decoder"] == decoder_widths(UNET_WIDTHS["fast"], "wide") and ck["model_kwargs"]["input_skip"]
    grown = build_model("unet", **ck["model_kwargs"])
    grown.load_state_dict(ck["model"])
    with torch.no_grad():
        assert torch.allclose(grown(x), load_model(tmp_path / "base.pt").model(x), atol=1e-5)
    export(tmp_path / "widedec", tmp_path / "widedec.pt", validate_now=False)
    assert load_model(tmp_path / "widedec.pt").config["input_skip"] is True
    with pytest.raises(McDenoiseError, match="stay or grow"):  # and back to the mirrored decoder is not growing
        train(tiny_config(tiny_dataset, tmp_path / "mirror", init=str(tmp_path / "widedec.pt")))
    with pytest.raises(McDenoiseError, match="the run trains dncnn") as wrong_arch:
        train(tiny_config(tiny_dataset, tmp_path / "wrong", arch="dncnn", init=str(tmp_path / "base.pt")))
    assert wrong_arch.value.fix == "train_arch"  # worded by each front end: another --init, in the CLI
    export(tmp_path / "wide", tmp_path / "wide.pt", validate_now=False)
    with pytest.raises(McDenoiseError, match="stay or grow") as narrowed:  # narrowing is not growing
        train(tiny_config(tiny_dataset, tmp_path / "narrow", init=str(tmp_path / "wide.pt")))
    assert narrowed.value.fix == "train_widths"


@needs_bpy
def test_export_loads_weights_only_and_denoises_files(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset, run, steps=2, val_every=2))
    rc = subprocess.run([sys.executable, "-m", "mcdenoise", "train", "--out", str(run), "--no-train",
                         "--export", str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=120)
    assert rc.returncode == 0, rc.stderr
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["meta"]["steps"] == 2 and np.isfinite(payload["meta"]["val_psnr"])
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.arch == "unet" and loaded.inputs == "color+albedo+normal"

    noisy = tiny_dataset / "scene_00000" / "scene_00000_0001spp.exr"
    result = denoise_file(loaded, noisy, tmp_path / "out.exr", PassNames(), "Denoised")
    assert (tmp_path / "out.exr").is_file() and result is not None
    frame = read_frame(noisy)
    with_aux = denoise_frame(loaded, FrameInputs(frame.color.astype(np.float32), frame.albedo, frame.normal), tile=None)
    colour_only = denoise_frame(loaded, FrameInputs(frame.color.astype(np.float32)), tile=None)
    assert np.isfinite(with_aux).all() and np.isfinite(colour_only).all()
    assert not np.allclose(with_aux, colour_only)  # aux channels are used, and their absence is handled


def _high_frequency_energy(rgb: np.ndarray) -> float:
    t = tonemap(rgb, hdr.autoexposure(rgb)).mean(axis=-1)
    lap = 4 * t[1:-1, 1:-1] - t[:-2, 1:-1] - t[2:, 1:-1] - t[1:-1, :-2] - t[1:-1, 2:]
    return float(np.mean(lap**2))


def test_shipped_default_model_denoises_the_example(repo_root):
    torch.load(DEFAULT_WEIGHTS, weights_only=True)  # no pickled code in the shipped file
    assert DEFAULT_WEIGHTS.stat().st_size < 5 * 2**20
    loaded = load_model()
    assert loaded.inputs == features.SHIPPED_INPUTS and loaded.meta.get("steps", 0) > 0
    frame = read_frame(repo_root / "examples" / "suzanne_4spp.exr")
    color = frame.color.astype(np.float32)
    out = denoise_frame(loaded, FrameInputs(color, frame.albedo, frame.normal, samples=frame.samples))
    assert out.shape == color.shape and np.isfinite(out).all()
    assert _high_frequency_energy(out) < 0.5 * _high_frequency_energy(color)


SAMPLES = "color+albedo+normal+samples"


@needs_bpy
def test_a_samples_layout_is_told_each_crops_count_or_that_it_is_unknown(tiny_dataset):
    """A crop's count is its file's, or for a converging crop of fraction f the highest count
    / f² (infinite at f = 0: the target itself); a tenth of crops are told "unknown", as
    files without Blender's stamp are. The other channels are those of a layout without it."""
    s = CropSampler(tiny_dataset, 0.34, 16, aux_dropout=0.0, seed=6, inputs=SAMPLES, converged=0.5)
    plain = CropSampler(tiny_dataset, 0.34, 16, aux_dropout=0.0, seed=6, converged=0.5)
    told, kinds = [], set()
    for _ in range(300):
        choice = s.draw()
        spp, noise, samples = choice[1], choice[9], choice[10]
        told.append(samples is not None)
        if samples is not None:
            assert samples == (spp if noise == 1.0 else spp / noise**2 if noise > 0 else math.inf)
            kinds.add(noise == 1.0)
    assert kinds == {True, False}  # file counts and converging crops both drawn
    assert 0.84 < np.mean(told) < 0.96  # UNKNOWN_SAMPLES = 0.1
    x, target = s.build(choice[:10] + (4.0,))
    assert x.shape == (11, 16, 16)
    level, _ = features.samples_planes(4)
    assert np.all(x[9] == np.float32(level)) and np.all(x[10] == 1.0)
    unknown, same_target = s.build(choice[:10] + (None,))
    assert not unknown[9:].any()
    np.testing.assert_array_equal(unknown[:9], x[:9])
    np.testing.assert_array_equal(same_target, target)
    np.testing.assert_array_equal(plain.build(choice[:10] + (None,))[0], x[:9])


@needs_bpy
def test_a_model_grows_into_the_samples_layout_computing_what_it_computed(tiny_dataset, tmp_path):
    """``--init`` with a layout that appends ``samples``: the new planes start at zero weight,
    so the run starts at the file's quality whatever count it is told; other changes at once
    are refused."""
    train(tiny_config(tiny_dataset, tmp_path / "base", steps=1))
    export(tmp_path / "base", tmp_path / "base.pt", validate_now=False)
    train(tiny_config(tiny_dataset, tmp_path / "grown", steps=1, lr=0.0, inputs=SAMPLES, init=str(tmp_path / "base.pt")))
    ck = load_checkpoint(latest_checkpoint(tmp_path / "grown"))
    grown = build_model("unet", **ck["model_kwargs"]).eval()
    grown.load_state_dict(ck["model"])
    x, planes = torch.rand(1, 9, 32, 32), torch.rand(1, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grown(torch.cat([x, planes], 1)), load_model(tmp_path / "base.pt").model(x), rtol=0, atol=1e-6)
    export(tmp_path / "grown", tmp_path / "grown.pt", validate_now=False)
    assert load_model(tmp_path / "grown.pt").inputs == SAMPLES
    with pytest.raises(McDenoiseError, match="gain inputs after its own") as dropped:  # losing an input is not growing
        train(tiny_config(tiny_dataset, tmp_path / "back", init=str(tmp_path / "grown.pt")))
    assert dropped.value.fix == "train_arch"
    # Growing composes with demodulation (a demodulating run may start from a colour model).
    train(tiny_config(tiny_dataset, tmp_path / "demod", steps=1, lr=0.0, inputs=SAMPLES, demodulate=True,
                      init=str(tmp_path / "base.pt")))
    ck = load_checkpoint(latest_checkpoint(tmp_path / "demod"))
    demod = build_model("unet", **ck["model_kwargs"]).eval()
    demod.load_state_dict(ck["model"])
    assert demod.demodulate
    first, old_first = ck["model"]["enc1.0.weight"], load_model(tmp_path / "base.pt").model.state_dict()["enc1.0.weight"]
    assert first.shape[1] == 3 + 3 + 6 + 2  # colour, irradiance, albedo + normal, the planes
    assert torch.equal(first[:, :3], old_first[:, :3]) and torch.equal(first[:, 6:12], old_first[:, 3:9])
    assert not first[:, 3:6].any() and not first[:, 12:].any()  # irradiance and the planes start at zero weight


@needs_bpy
def test_resident_batches_are_the_host_batches_and_train_the_same_run(tiny_dataset, tmp_path):
    """``--resident`` cuts crops on the training device and encodes and augments a whole batch
    at once, from the same draws as the host sampler, which builds them one by one: the same
    batches (to float rounding; with and without the sample count and converging crops, several
    flips/rotations in a batch) and a run that resumes."""
    from mcdenoise.training.resident import ResidentBatches

    for inputs, converged in (("color+albedo+normal", 0.0), (SAMPLES, 0.5)):
        host = CropSampler(tiny_dataset, 0.34, 24, aux_dropout=0.3, seed=5, inputs=inputs, converged=converged)
        device = CropSampler(tiny_dataset, 0.34, 24, aux_dropout=0.3, seed=5, inputs=inputs, converged=converged)
        resident = ResidentBatches(device, 6, torch.device("cpu"))
        drops, ops, fractions = [], set(), set()
        for _ in range(4):
            state = host.state()
            ops |= {c[5] for c in [host.draw() for _ in range(6)]}
            host.set_state(state)
            xh, yh = host.batch(6)
            xd, yd = resident.next()
            np.testing.assert_allclose(xd.numpy(), xh, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(yd.numpy(), yh, rtol=1e-6, atol=1e-6)
            drops.append((xh[:, 3:9] == 0).all(axis=(1, 2, 3)).any())
            fractions |= set(np.round(xh[:, 9:10].max(axis=(1, 2, 3)), 3)) if inputs == SAMPLES else set()
        assert host.state() == resident.sampler_state() and resident.resident_bytes() > 0
        assert any(drops) and len(ops) > 1  # the draws included aux dropout and several flips/rotations
        if converged:
            assert len(fractions) > 2  # sample-count levels of files and of converging crops
    whole = train(tiny_config(tiny_dataset, tmp_path / "host", steps=3))
    train(tiny_config(tiny_dataset, tmp_path / "res", steps=3, resident=True), stop_after=1)
    split = train(tiny_config(tiny_dataset, tmp_path / "res", steps=3, resident=True))
    assert whole["step"] == split["step"] == 3
    a = load_checkpoint(latest_checkpoint(tmp_path / "host"))["model"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "res"))["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@needs_bpy
def test_gpu_session_script_rehearses_on_the_cpu_at_toy_size(tiny_dataset, tmp_path, repo_root):
    """``tools/gpu_session.sh train`` is what a lent GPU runs, with no time to debug there: the
    same script, with the device and sizes swapped for a CPU rehearsal, fine-tunes and exports the
    three shipped U-Nets from their shipped files, and balanced grown into the wide decoder,
    with the recipes' last stage (sample count, loss in display space), data resident; ``load``
    needs no output folder."""
    env = {**os.environ, "DEVICE": "cpu", "PY": sys.executable, "DATA": str(tmp_path / "data"), "BATCH": "2", "CROP": "32",
           "RUNS": str(tmp_path / "runs"), "PACKS": str(tmp_path / "packs")}
    script = str(repo_root / "tools" / "gpu_session.sh")
    scenes = list_scenes(tiny_dataset)
    for name, part in (("a", scenes[:2]), ("b", scenes[2:])):  # two uploads, merged by two calls
        for entry in part:
            shutil.copytree(entry.dir, tmp_path / "packs" / name / entry.dir.name)
        loaded = subprocess.run(["bash", script, "load"], env=env, capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        shutil.rmtree(tmp_path / "packs" / name)  # the next call carries only the next pack
    assert f"data: {len(scenes)} scenes" in loaded.stdout and len(list_scenes(tmp_path / "data")) == len(scenes)
    out = tmp_path / "out"
    done = subprocess.run(["bash", script, "train", str(out), "1", "2", "2", "2", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name, shipped in (("balanced", "default.pt"), ("fast", "fast.pt"), ("high", "high.pt"), ("wide", "default.pt")):
        model = load_model(out / f"{name}.pt")
        assert model.meta["steps"] == 2 and model.meta["init"].endswith(shipped)
        row = "balanced" if name == "wide" else name
        assert model.config["widths"] == list(UNET_WIDTHS[row]) and not model.config.get("demodulate", False)
        assert model.config.get("decoder") == (decoder_widths(UNET_WIDTHS[row], "wide") if name == "wide" else None)
        assert model.inputs == "color+albedo+normal+samples" and "display space" in model.meta["loss"]
        assert "step 2/2" in (out / f"train_{name}.log").read_text()


@needs_bpy
def test_torchrun_two_processes_train_the_one_process_weights_and_resume(tiny_dataset, tmp_path):
    """``torchrun --nproc-per-node 2`` (gloo on CPU): each rank builds half of the global batch
    and gradients are averaged, so two ranks train the weights one process trains with the same
    --batch (to float rounding); stopped after a step and run again, they resume to the same."""
    # fp32 on every CPU: what is compared is the batch split, and bf16 autocast rounds two half
    # batches differently from one whole batch by far more than float rounding.
    one = train(tiny_config(tiny_dataset, tmp_path / "one", steps=3, batch=4, precision="fp32"))
    flags = ["--data", str(tiny_dataset), "--arch", "unet", "--quality", "fast", "--steps", "3", "--batch", "4", "--crop", "32",
             "--warmup", "2", "--val-every", "0", "--log-every", "1", "--threads", "1", "--device", "cpu", "--seed", "3",
             "--precision", "fp32"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mcdenoise", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for run, extra in (("two", []), ("split", ["--stop-after", "1"]), ("split", [])):
        done = subprocess.run([*torchrun, *flags, "--out", str(tmp_path / run), *extra], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("train: step 3/3") == 1  # rank 0 alone reports
    a = load_checkpoint(latest_checkpoint(tmp_path / "one"))
    for run in ("two", "split"):
        b = load_checkpoint(latest_checkpoint(tmp_path / run))
        assert b["step"] == one["step"] == 3 and a["sampler"] == b["sampler"]
        for k in a["model"]:
            torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5)
    with pytest.raises(McDenoiseError, match="does not split over 2 processes") as odd:
        from mcdenoise.training import distributed
        distributed.setup(distributed.Ranks(0, 2, 0), torch.device("cpu"), 3)
    assert odd.value.fix == "train_batch"


def test_training_precision_is_bf16_only_where_bf16_is_native_and_a_bf16_run_computes_in_bf16(tiny_dataset, tmp_path):
    """``auto`` trains under bf16 autocast on CUDA and on a CPU with native bf16 (where it is
    2.5x as fast), fp32 where bf16 would be emulated; a bf16 run's convolutions really run in
    bf16, in channels-last, while its weights and loss stay fp32; an unknown name is an error."""
    from mcdenoise.training.loop import start_run, train_dtype, train_step

    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert train_dtype("auto", cpu, native_cpu_bf16=True) is torch.bfloat16
    assert train_dtype("auto", cpu, native_cpu_bf16=False) is None
    assert train_dtype("auto", cuda) is torch.bfloat16 and train_dtype("auto", mps) is None
    assert train_dtype("fp32", cuda) is None and train_dtype("bf16", cpu, native_cpu_bf16=False) is torch.bfloat16
    with pytest.raises(McDenoiseError, match="unknown training precision 'fp16'"):
        train_dtype("fp16", cpu)

    seen = []
    for precision in ("bf16", "fp32"):
        run = start_run(tiny_config(tiny_dataset, tmp_path / precision, precision=precision))
        first = run.model.enc1[0]
        hook = first.register_forward_hook(lambda m, i, o: seen.append((precision, i[0].is_contiguous(memory_format=torch.channels_last), o.dtype)))
        x, y = run.sampler.batch(2)
        loss = train_step(run, x, y)
        hook.remove()
        assert np.isfinite(loss) and first.weight.dtype is torch.float32 and run.step == 1
    assert seen == [("bf16", True, torch.bfloat16), ("fp32", True, torch.float32)]
