"""The aux prefilter: stored beside a colour model, run before it on every path that denoises,
and trained on noisy aux against the references' aux (``mcdenoise train-prefilter``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcdenoise.dataset.layout import desc_path, noisy_path, ref_path
from mcdenoise.errors import InputFileError, McDenoiseError, WeightsError
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.prefilter import clean_aux
from mcdenoise.inference.runtime import Runtime
from mcdenoise.io.write import write_exr
from mcdenoise.models import build_model
from mcdenoise.models.loader import PREFILTER_KEY, build_prefilter, load_model, save_weights
from mcdenoise.training import prefilter as training
from mcdenoise.training.checkpoint import latest_checkpoint, load_checkpoint

SMALL = (4, 4, 4, 4, 4)
CPU = Runtime(torch.device("cpu"), precision="fp32")


def _colour_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("unet", in_channels=9, out_channels=3, widths=SMALL).eval()


def _prefilter(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_prefilter(SMALL)
    with torch.no_grad():  # an untrained U-Net's output is nearly its input; make it visibly change things
        net.out.bias.copy_(torch.tensor([0.2, -0.1, 0.1, 0.3, -0.2, 0.1]))
    return net.eval()


def _frame(h: int = 48, w: int = 40, seed: int = 0) -> FrameInputs:
    rng = np.random.default_rng(seed)
    normal = rng.normal(0, 0.3, (h, w, 3)).astype(np.float32)
    normal[..., 2] = 1
    return FrameInputs(rng.exponential(0.5, (h, w, 3)).astype(np.float32),
                       rng.uniform(0, 1, (h, w, 3)).astype(np.float16), normal / np.linalg.norm(normal, axis=-1, keepdims=True))


def test_weights_carry_the_prefilter_and_every_path_runs_it(tmp_path):
    """A weights file with a prefilter loads it (weights_only), and denoising with that file is
    denoising the frame whose aux the prefilter cleaned: the same pixels as the colour model
    alone fed the cleaned aux, different from it fed the aux as read; tiles equal the whole."""
    colour, pre = _colour_model(), _prefilter()
    path = tmp_path / "accurate.pt"
    save_weights(path, colour, "unet", {"widths": list(SMALL)}, "color+albedo+normal", {"note": "x"}, prefilter=pre)
    assert PREFILTER_KEY in torch.load(path, weights_only=True)
    loaded = load_model(path)
    plain = load_model(_saved(tmp_path / "plain.pt", colour))
    assert loaded.prefilter is not None and plain.prefilter is None
    frame = _frame()
    cleaned = clean_aux(loaded.prefilter, frame, None, CPU)
    assert cleaned.albedo.dtype == np.float16 and cleaned.albedo.shape == frame.albedo.shape
    assert np.abs(cleaned.albedo.astype(np.float32) - frame.albedo).mean() > 0.05  # it did something
    assert cleaned.albedo.min() >= 0 and cleaned.albedo.max() <= 1 and np.abs(cleaned.normal).max() <= 1
    ours = denoise_frame(loaded, frame, runtime=CPU)
    np.testing.assert_allclose(ours, denoise_frame(plain, cleaned, runtime=CPU), rtol=1e-5, atol=1e-6)
    assert np.abs(ours - denoise_frame(plain, frame, runtime=CPU)).max() > 1e-3
    np.testing.assert_allclose(denoise_frame(loaded, frame, tile=16, runtime=CPU), ours, rtol=1e-4, atol=1e-5)
    # A frame without aux passes is denoised from colour alone, the prefilter skipped.
    bare = FrameInputs(frame.color)
    assert clean_aux(loaded.prefilter, bare, None, CPU) is bare
    np.testing.assert_allclose(denoise_frame(loaded, bare, runtime=CPU), denoise_frame(plain, bare, runtime=CPU))


def _saved(path, colour):
    save_weights(path, colour, "unet", {"widths": list(SMALL)}, "color+albedo+normal")
    return path


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(config={**e["config"], "in_channels": 5}), "map the 6 aux channels"),
    (lambda e: e.update(config={**e["config"], "demodulate": True}), "map the 6 aux channels"),
    (lambda e: e.update(arch="dncnn"), "not a U-Net"),
    (lambda e: e["state_dict"].pop(next(iter(e["state_dict"]))), "prefilter's weights do not fit"),
    (lambda e: e.update(state_dict=[]), r"the aux prefilter's weights \(state dict\) are a list"),
])
def test_a_broken_prefilter_entry_is_refused_by_name(tmp_path, change, message):
    path = tmp_path / "w.pt"
    save_weights(path, _colour_model(), "unet", {"widths": list(SMALL)}, "color+albedo+normal", prefilter=_prefilter())
    payload = torch.load(path, weights_only=True)
    change(payload[PREFILTER_KEY])
    torch.save(payload, path)
    with pytest.raises(WeightsError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_a_model_without_aux_inputs_cannot_carry_a_prefilter(tmp_path):
    colour = build_model("unet", in_channels=3, out_channels=3, widths=SMALL)
    with pytest.raises(ValueError, match="nothing to prefilter"):
        save_weights(tmp_path / "w.pt", colour, "unet", {"widths": list(SMALL)}, "color", prefilter=_prefilter())


def _aux_dataset(root, scenes: int = 6, size: int = 48, spps=(1, 4)) -> None:
    """Scenes in render-dataset's layout whose aux passes are smooth fields (the references') plus
    noise that shrinks with the sample count (the noisy files'): what the prefilter must undo."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(scenes):
        f = rng.uniform(1, 3, 3)
        albedo = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f[c] * xx + yy * c)) for c in range(3)], -1).astype(np.float32)
        normal = np.stack([0.5 * np.sin(np.pi * f[0] * yy), 0.5 * np.cos(np.pi * f[1] * xx), np.ones_like(xx)], -1)
        normal = (normal / np.linalg.norm(normal, axis=-1, keepdims=True)).astype(np.float32)

        def write(path, noise: float) -> None:
            a = np.clip(albedo + rng.normal(0, noise, albedo.shape), 0, 1).astype(np.float16)
            n = np.clip(normal + rng.normal(0, noise, normal.shape), -1, 1).astype(np.float32)
            colour = np.dstack([albedo * 0.8, np.ones((size, size), np.float32)])
            path.parent.mkdir(parents=True, exist_ok=True)
            write_exr(path, {"ViewLayer.Combined": colour, "ViewLayer.Denoising Albedo": a, "ViewLayer.Denoising Normal": n},
                      multipart=True)

        for spp in spps:
            write(noisy_path(root, i, spp), 0.25 / np.sqrt(spp))
        write(ref_path(root, i), 0.0)
        desc_path(root, i).write_text(json.dumps({"index": i}))


@pytest.mark.parametrize("samples", [True, False])
def test_training_cleans_held_out_aux_resumes_exactly_and_exports(tmp_path, samples):
    """A few hundred steps on noisy fields, with and without the sample count: the held-out aux
    come out cleaner than read (through the inference path), a run stopped and resumed ends where
    an uninterrupted one does, and the export is the base model plus the prefilter, which
    denoising then runs."""
    data = tmp_path / "data"
    _aux_dataset(data)
    base = _saved(tmp_path / "base.pt", _colour_model())
    cfg = dict(data=str(data), widths=(16, 16, 16, 16, 16), steps=150, batch=4, crop=32, lr=3e-3, val_fraction=0.2, converged=0.0,
               samples=samples, progress=False, log_every=50, threads=1)
    whole = training.train(training.PrefilterConfig(run_dir=str(tmp_path / "whole"), **cfg), log=lambda m: None)
    v = whole["val"]
    assert whole["step"] == 150 and whole["val_scenes"] == 2 and whole["train_scenes"] == 4
    assert v["albedo_clean"] > v["albedo_noisy"] + 1.0 and v["normal_clean"] > v["normal_noisy"] + 2.5, v
    if not samples:
        return

    split_cfg = training.PrefilterConfig(run_dir=str(tmp_path / "split"), **cfg)
    assert training.train(split_cfg, stop_after=60, log=lambda m: None)["step"] == 60
    resumed = training.resolve(tmp_path / "split", {})  # the saved config, as a re-run of the command reads it
    assert resumed == split_cfg
    assert training.train(resumed, log=lambda m: None)["step"] == 150
    a = load_checkpoint(latest_checkpoint(tmp_path / "whole"))["model"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "split"))["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)

    out = tmp_path / "accurate.pt"
    info = training.export(tmp_path / "whole", base, out)
    loaded = load_model(out)
    assert loaded.prefilter is not None and loaded.meta["aux_prefilter"]["steps"] == 150 == info["steps"]
    assert loaded.prefilter.enc1[0].in_channels == 8 and info["samples"] is True
    torch.testing.assert_close(loaded.model.state_dict(), load_model(base).model.state_dict())


def test_converging_crops_lie_between_the_noisy_aux_and_the_references(tmp_path):
    """With ``converged`` = 1 every crop's input is the reference plus a fraction of the noise
    (what a render nearer convergence holds); with 0 it is the noisy file as read."""
    data = tmp_path / "data"
    _aux_dataset(data, scenes=1, spps=(1,))
    scenes, _ = training.load_scenes(data, 0.0)
    for converged in (0.0, 1.0):
        cfg = training.PrefilterConfig(batch=32, crop=48, converged=converged, samples=False)
        x, y = training.draw_batch(scenes, cfg, torch.Generator().manual_seed(0))
        ratio = (x - y).abs().sum((1, 2, 3)) / (torch.from_numpy(scenes[0].noisy[1].astype(np.float32))
                                                 - torch.from_numpy(scenes[0].ref.astype(np.float32))).abs().sum()
        if converged:
            assert ratio.max() < 1.0 and ratio.min() < 0.5 and ratio.max() > 0.5, ratio
        else:
            torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=1e-3, atol=1e-3)


def test_a_dataset_without_aux_passes_is_refused_naming_the_file(tmp_path):
    data = tmp_path / "data"
    _aux_dataset(data, scenes=2, spps=(1,))
    bad = noisy_path(data, 1, 1)
    write_exr(bad, {"ViewLayer.Combined": np.ones((8, 8, 4), np.float32)}, multipart=True)
    with pytest.raises(InputFileError, match="no albedo/normal pass") as err:
        training.load_scenes(data, 0.0)
    assert str(bad) in str(err.value)


def test_a_colour_model_trains_behind_its_inits_prefilter_and_carries_it(tmp_path):
    """``train --init`` from weights with a prefilter: the crops' aux are what the prefilter
    returns for the file's aux (as inference will feed them), and the export carries the same
    prefilter; ``--prefilter`` naming weights without one is refused by name."""
    from mcdenoise.io.exr import read_frame
    from mcdenoise.training.config import TrainConfig
    from mcdenoise.training.data import CropSampler
    from mcdenoise.training.loop import export, train

    data = tmp_path / "data"
    _aux_dataset(data, scenes=3, spps=(1,))
    torch.manual_seed(0)
    colour = build_model("unet", in_channels=9, out_channels=3, widths=(16, 24, 32, 48, 64)).eval()
    pre = _prefilter()
    init = tmp_path / "init.pt"
    save_weights(init, colour, "unet", {"in_channels": 9, "out_channels": 3, "widths": [16, 24, 32, 48, 64]}, "color+albedo+normal",
                 {"aux_prefilter": {"steps": 7}}, prefilter=pre)

    sampler = CropSampler(data, 0.0, 32, 0.0, 0, "color+albedo+normal", prefilter=load_model(init).prefilter)
    entry = sampler.train[0]
    f = read_frame(entry.noisy(1))
    expected = clean_aux(pre, FrameInputs(f.color, f.albedo, f.normal), None, CPU)
    got = sampler.scene(entry).noisy[1]
    np.testing.assert_allclose(got.albedo.astype(np.float32), expected.albedo.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(got.normal.astype(np.float32), expected.normal.astype(np.float32), atol=2e-3)
    assert np.abs(got.albedo.astype(np.float32) - np.clip(f.albedo, 0, 1)).mean() > 0.05

    cfg = TrainConfig(data=str(data), run_dir=str(tmp_path / "run"), widths="fast", steps=2, batch=2, crop=32, warmup=1,
                      val_every=0, val_fraction=0.0, log_every=1, threads=1, device="cpu", progress=False, init=str(init))
    assert train(cfg)["step"] == 2
    out = tmp_path / "tuned.pt"
    meta = export(cfg.run_dir, out, validate_now=False)
    tuned = load_model(out)
    assert tuned.prefilter is not None and meta["aux_prefilter"] == {"steps": 7}
    torch.testing.assert_close(tuned.prefilter.state_dict(), pre.state_dict())

    plain = _saved(tmp_path / "plain.pt", _colour_model())
    with pytest.raises(McDenoiseError, match="carry no aux prefilter") as err:
        train(TrainConfig(**{**cfg.__dict__, "run_dir": str(tmp_path / "run2"), "prefilter": str(plain)}))
    assert str(plain) in str(err.value)


def test_the_cli_trains_resumes_and_writes_weights_that_denoise(tmp_path, cli):
    """``train-prefilter`` end to end: a run, a resumed run to more steps, the file written on
    ``--base``, and ``denoise --weights`` with it; a dataset folder with no scenes is one error line."""
    from batch_fixtures import denoised_pass

    data = tmp_path / "data"
    _aux_dataset(data, scenes=3, spps=(1,))
    base = _saved(tmp_path / "base.pt", _colour_model())
    run, out = tmp_path / "run", tmp_path / "accurate.pt"
    flags = ["--data", data, "--out", run, "--batch", "2", "--crop", "32", "--threads", "1", "-q", "--base", base, "-o", out]
    code, stdout, stderr = cli("train-prefilter", *flags, "--steps", "4")
    assert code == 0, stderr
    assert "step 4/4" in stdout and "held out: albedo PSNR" in stdout
    code, stdout, stderr = cli("train-prefilter", *flags, "--steps", "6")
    assert code == 0 and "resuming" in stdout and "step 6/6" in stdout, stdout + stderr
    assert load_model(out).meta["aux_prefilter"]["steps"] == 6
    code, _, stderr = cli("denoise", noisy_path(data, 0, 1), "-o", tmp_path / "d.exr", "--weights", out, "--device", "cpu")
    assert code == 0, stderr
    assert denoised_pass(tmp_path / "d.exr").shape == (48, 48, 3)

    code, _, stderr = cli("train-prefilter", "--data", tmp_path / "empty", "--out", tmp_path / "run2", "-q")
    assert code == 2 and stderr.count("\n") == 1 and "no finished scenes" in stderr


def test_a_prefilter_that_reads_the_sample_count_is_told_each_frames(tmp_path):
    """A prefilter of 8 input channels reads the frame's sample count as the colour models do
    (the ``samples`` planes after the aux): what ``clean_aux`` returns is the network run on the
    prepared aux and those planes, so it differs between a 1-spp and a 1024-spp frame of the same
    aux; it is stored, checked and loaded like a 6-channel one."""
    from mcdenoise.features import samples_planes
    from mcdenoise.inference.prefilter import prepared_aux
    from mcdenoise.models.loader import prefilter_reads_samples

    torch.manual_seed(2)
    pre = build_prefilter(SMALL, samples=True).eval()
    with torch.no_grad():  # make the sample count's planes matter visibly
        pre.enc1[0].weight[:, 6:] += 2.0
    assert prefilter_reads_samples(pre) and not prefilter_reads_samples(_prefilter())
    frame = _frame(32, 48)
    outs = {}
    for spp in (1, 1024, None):
        told = FrameInputs(frame.color, frame.albedo, frame.normal, samples=spp)
        got = clean_aux(pre, told, None, CPU)
        x = torch.empty((32, 48, 8))
        prepared_aux(told, slice(None), slice(None), x)
        x[..., 6:] = torch.tensor(samples_planes(spp))
        edge = 16  # clean_aux mirrors the frame's edges as every tiled run does: compare inside
        with torch.no_grad():
            direct = pre(torch.nn.functional.pad(x.permute(2, 0, 1)[None], (edge,) * 4, mode="reflect"))[0, :, edge:-edge, edge:-edge]
        np.testing.assert_allclose(got.albedo.astype(np.float32)[4:-4, 4:-4],
                                   direct[:3].clamp(0, 1).permute(1, 2, 0).numpy()[4:-4, 4:-4], atol=2e-3)
        outs[spp] = got.albedo.astype(np.float32)
    assert np.abs(outs[1] - outs[1024]).mean() > 0.01 and np.abs(outs[None] - outs[1]).mean() > 0.01

    path = tmp_path / "w.pt"
    save_weights(path, _colour_model(), "unet", {"widths": list(SMALL)}, "color+albedo+normal", prefilter=pre)
    loaded = load_model(path)
    assert prefilter_reads_samples(loaded.prefilter)
    np.testing.assert_allclose(clean_aux(loaded.prefilter, FrameInputs(frame.color, frame.albedo, frame.normal, samples=1), None, CPU).albedo,
                               outs[1].astype(np.float16))
    payload = torch.load(path, weights_only=True)
    payload[PREFILTER_KEY]["config"]["in_channels"] = 7
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="optionally the sample count"):
        load_model(path)


def test_crops_tell_the_prefilter_their_sample_count(tmp_path):
    """Each crop's two extra planes are constant: the file's sample count as the colour models
    read it, a converging crop of fraction f (the reference plus f times the drawn file's noise)
    telling spp / f², and about a tenth told "unknown"."""
    from mcdenoise.features import samples_planes

    data = tmp_path / "data"
    _aux_dataset(data, scenes=2, spps=(1, 4))
    scenes, _ = training.load_scenes(data, 0.0)
    cfg = training.PrefilterConfig(batch=400, crop=16, converged=0.0)
    x, y = training.draw_batch(scenes, cfg, torch.Generator().manual_seed(0))
    assert x.shape == (400, 8, 16, 16) and y.shape == (400, 6, 16, 16)
    planes = x[:, 6:]
    assert (planes == planes[:, :, :1, :1]).all()
    seen = {tuple(round(float(v), 4) for v in p[:, 0, 0]) for p in planes}
    assert seen == {tuple(round(v, 4) for v in samples_planes(s)) for s in (1, 4, None)}
    unknown = float((planes[:, 1, 0, 0] == 0).float().mean())
    assert 0.05 < unknown < 0.16, unknown
    # The noise a crop holds matches what it is told: 1-spp crops are the noisier.
    err = (x[:, :6] - y).abs().mean((1, 2, 3))
    level1, level4 = samples_planes(1)[0], samples_planes(4)[0]
    assert err[planes[:, 0, 0, 0] == level1].mean() > 1.5 * err[planes[:, 0, 0, 0] == level4].mean()
    conv, _ = training.draw_batch(scenes, training.PrefilterConfig(batch=200, crop=16, converged=1.0), torch.Generator().manual_seed(1))
    told, plain = conv[:, 7, 0, 0] == 1, planes[:, 1, 0, 0] == 1
    assert (conv[told, 6, 0, 0] >= level1 - 1e-6).all()
    assert (conv[told, 6, 0, 0] > level4 + 0.1).float().mean() > 0.4 and (planes[plain, 0, 0, 0] > level4 + 0.1).sum() == 0


def test_a_run_keeps_the_inputs_it_began_with(tmp_path):
    """A run folder begun before prefilters read the sample count resumes without it; asking a
    run to change whether it reads it is refused (its network's first layer cannot change)."""
    run = tmp_path / "run"
    run.mkdir()
    old = {k: v for k, v in training.PrefilterConfig(run_dir=str(run)).__dict__.items() if k != "samples"}
    (run / "config.json").write_text(json.dumps({**old, "widths": list(old["widths"])}))
    assert training.resolve(run, {}).samples is False
    assert training.resolve(run, {"samples": False}).samples is False
    with pytest.raises(McDenoiseError, match="begun without the sample count"):
        training.resolve(run, {"samples": True})
    assert training.resolve(tmp_path / "new", {}).samples is True


def test_sigterm_stops_a_run_after_its_step_leaving_a_checkpoint_that_resumes(tmp_path):
    """A job scheduler's SIGTERM ends the run at the next step, not mid-step: it returns early with
    a checkpoint of the step it reached, and the same config resumes from there."""
    import os
    import signal
    import threading

    data = tmp_path / "data"
    _aux_dataset(data, scenes=2, spps=(1,))
    cfg = training.PrefilterConfig(data=str(data), run_dir=str(tmp_path / "run"), widths=SMALL, steps=1_000_000, batch=1, crop=16,
                                   val_fraction=0.0, progress=False, threads=1)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        got = training.train(cfg, log=lambda m: None)
    finally:
        timer.cancel()
    assert 0 < got["step"] < cfg.steps
    assert load_checkpoint(latest_checkpoint(cfg.run_dir))["step"] == got["step"]
    again = training.train(training.resolve(cfg.run_dir, {}), stop_after=3, log=lambda m: None)
    assert again["step"] == got["step"] + 3
