"""Fast paths of inference (channels-last, precision, tile from memory, threads), the quality
choice, and ``bench --speed`` on a tiny frame. CUDA-only logic is checked on CPU through the
pure functions it goes through; nothing here times anything."""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from exr_fixtures import noisy_scene
from mcdenoise.inference import encode, runtime, tiling
from mcdenoise.models import tiers as quality
from mcdenoise.bench import speed
from mcdenoise.errors import DeviceError, McDenoiseError, WeightsError
from mcdenoise.features import SHIPPED_INPUTS
from mcdenoise.inference.denoise import denoise_frame
from mcdenoise.inference.encode import FrameInputs
from mcdenoise.inference.runtime import Runtime
from mcdenoise.models import build_model
from mcdenoise.models.loader import LoadedModel, save_weights
from mcdenoise.models.ensemble import SelfEnsemble

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _loaded(q: str = "fast", seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    model = quality.model_for_quality(q)
    # Random init leaves the residual branch tiny; scale the last conv so a difference in
    # the conv path would actually show in the output.
    with torch.no_grad():
        model.out.weight.mul_(20.0)
    return LoadedModel(model, "unet", {}, SHIPPED_INPUTS)


def _frame(h: int = 72, w: int = 88, aux: bool = True) -> FrameInputs:
    s = noisy_scene(h, w, seed=3)
    return FrameInputs(s["color"] * 3.0, s["albedo"] if aux else None, s["normal"] if aux else None)


def _plain_reference(loaded: LoadedModel, frame: FrameInputs) -> np.ndarray:
    """The slow obvious path: NCHW model, NCHW input from build_input, whole frame."""
    from mcdenoise import hdr

    model = copy.deepcopy(loaded.model).to(memory_format=torch.contiguous_format)
    h, w = frame.color.shape[:2]
    exposure = hdr.autoexposure(frame.color)
    x = torch.from_numpy(encode.build_input(frame, exposure, loaded.inputs, slice(0, h), slice(0, w)))[None]
    e = tiling._round_up(tiling.EDGE_PAD, 16)  # the mirrored border around the frame
    x = torch.nn.functional.pad(x, (e, e, e, e), mode="reflect")
    x = torch.nn.functional.pad(x, (0, (-(w + 2 * e)) % 16, 0, (-(h + 2 * e)) % 16), mode="replicate")
    with torch.inference_mode():
        y = model(x)[0, :, e : e + h, e : e + w].numpy().transpose(1, 2, 0)
    return hdr.inverse(y, exposure)


def test_channels_last_matches_the_plain_nchw_path():
    loaded = _loaded()
    frame = _frame()
    reference = _plain_reference(loaded, frame)
    fast = denoise_frame(loaded, frame, tile=None)
    assert loaded.model.enc1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(fast - frame.color).max() > 1e-2  # the network changed the image
    np.testing.assert_allclose(fast, reference, rtol=1e-4, atol=1e-5)


def test_tiled_output_equals_untiled():
    """The one test of the tiler's promise: margins no smaller than the receptive radius and
    tiles on the pooling grid make any tile give the whole frame's answer, on a frame that is
    not a multiple of the grid, with a tile that is not either (40 rounds up to 48)."""
    loaded = _loaded()
    frame = _frame(75, 133)
    np.testing.assert_allclose(denoise_frame(loaded, frame, tile=40), denoise_frame(loaded, frame, tile=None), rtol=1e-4, atol=1e-5)


def test_read_only_reversed_and_half_arrays_denoise_like_plain_float32():
    """denoise_frame is the core's public entry: arrays from other code (a flipped view, a
    read-only buffer, half floats) must give the same answer as plain float32 copies."""
    loaded = _loaded()
    frame = _frame(48, 64)
    expected = denoise_frame(loaded, frame, tile=None)
    flipped = FrameInputs(frame.color[::-1][::-1], frame.albedo.astype(np.float64), frame.normal.copy())
    flipped.normal.setflags(write=False)
    np.testing.assert_allclose(denoise_frame(loaded, flipped, tile=None), expected, rtol=1e-5, atol=1e-6)
    reversed_view = FrameInputs(np.ascontiguousarray(frame.color[::-1])[::-1], frame.albedo, frame.normal)
    assert reversed_view.color.strides[0] < 0
    np.testing.assert_allclose(denoise_frame(loaded, reversed_view, tile=32), expected, rtol=1e-4, atol=1e-5)
    half = FrameInputs(frame.color.astype(np.float16), frame.albedo.astype(np.float16), frame.normal)
    np.testing.assert_allclose(denoise_frame(loaded, half, tile=None), denoise_frame(loaded, FrameInputs(
        half.color.astype(np.float32), half.albedo.astype(np.float32), frame.normal), tile=None), rtol=1e-6, atol=1e-7)


def test_hwc_input_is_the_nchw_input_transposed_and_missing_aux_is_zero():
    frame = _frame(20, 24, aux=False)
    ys, xs = slice(2, 18), slice(3, 21)
    hwc = encode.build_input_hwc(frame, 0.7, "color+albedo+normal", ys, xs)
    assert hwc.shape == (16, 18, 9) and hwc.flags.c_contiguous
    assert not hwc[..., 3:].any()
    np.testing.assert_array_equal(encode.build_input(frame, 0.7, "color+albedo+normal", ys, xs), hwc.transpose(2, 0, 1))
    # An HWC array seen as NCHW is channels-last already: the network gets it without a copy.
    x = torch.from_numpy(hwc).permute(2, 0, 1)[None]
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert x.data_ptr() == torch.from_numpy(hwc).data_ptr()


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("before,after,extra", [(16, 16, 5), (0, 16, 0), (16, 0, 11), (0, 0, 7), (3, 2, 0)])
def test_border_filled_in_place_equals_f_pad(mode, before, after, extra):
    """The mirrored frame border and the alignment padding, written around the window inside
    the network's buffer, must be exactly what F.pad(reflect) then F.pad(replicate) gave."""
    src = torch.randn(2, 21, 19)  # (C, h, w)
    expected = torch.nn.functional.pad(src[None], (before, after, before, after), mode=mode)
    expected = torch.nn.functional.pad(expected, (0, extra, 0, extra), mode="replicate")[0].permute(1, 2, 0)
    h, w = src.shape[1:]
    buf = torch.full((before + h + after + extra, before + w + after + extra, 2), float("nan"))
    buf[before : before + h, before : before + w] = src.permute(1, 2, 0)
    tiling.extend_lines(buf[:, before : before + w], 0, before, before + h, after, extra, mode)
    tiling.extend_lines(buf, 1, before, before + w, after, extra, mode)
    torch.testing.assert_close(buf, expected, rtol=0, atol=0)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator settings are glibc's")
def test_freed_memory_stays_mapped_only_while_kept():
    """What the CLI's allocator setting does, measured in a fresh process (it is process-wide,
    so never in pytest's): a freed 64 MiB block leaves the RSS by default, stays mapped once
    freed memory is kept, and leaves again inside ``freed_memory_returned``."""
    code = """
import json, numpy as np, psutil
from mcdenoise.inference import allocator
rss = psutil.Process().memory_info
def kept_after_free():
    before = rss().rss
    block = np.ones(64 << 20, np.uint8)
    del block
    return (rss().rss - before) >> 20
out = {"default": kept_after_free(), "took": allocator.keep_freed_memory()}
out["kept"] = kept_after_free()
with allocator.freed_memory_returned():
    out["inside"] = allocator.keeping_freed_memory()
    out["returned"] = kept_after_free()
out["after"] = allocator.keeping_freed_memory()
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    mib = json.loads(run.stdout)
    assert mib["took"] and not mib["inside"] and mib["after"]
    assert mib["default"] < 16 and mib["kept"] > 48 and mib["returned"] < 16, mib


def test_choose_dtype():
    assert runtime.choose_dtype(CPU) == torch.float32
    assert runtime.choose_dtype(CUDA) == torch.float16
    assert runtime.choose_dtype(CUDA, "bf16", bf16_supported=True) == torch.bfloat16
    assert runtime.choose_dtype(CPU, "bf16") == torch.bfloat16
    assert runtime.choose_dtype(CUDA, "fp32") == torch.float32
    with pytest.raises(DeviceError, match="bfloat16"):
        runtime.choose_dtype(CUDA, "bf16", bf16_supported=False)
    with pytest.raises(DeviceError, match="precision"):
        runtime.choose_dtype(CPU, "int8")


def test_autocast_selection():
    assert not isinstance(runtime.autocast_for(CUDA, torch.float32), torch.autocast)
    ctx = runtime.autocast_for(CPU, torch.bfloat16)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cpu" and ctx.fast_dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that CUDA autocast is off without a GPU
        ctx = runtime.autocast_for(CUDA, torch.float16)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.float16


def test_bf16_autocast_runs_on_cpu_and_stays_close():
    loaded = _loaded()
    frame = _frame(48, 48)
    fp32 = denoise_frame(loaded, frame, tile=None)
    bf16 = denoise_frame(loaded, frame, tile=None, runtime=Runtime(CPU, "bf16"))
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)  # it really ran in bf16
    assert np.abs(bf16 - fp32).mean() < 0.05 * np.abs(fp32).mean()


def test_tile_for_memory_arithmetic():
    margin, alignment = 111, 16  # margin rounds up to 112
    bpp = 800
    assert runtime.tile_for_memory((1024 + 224) ** 2 * bpp, bpp, margin, alignment) == 1024
    assert runtime.tile_for_memory((1024 + 224) ** 2 * bpp - 1, bpp, margin, alignment) == 1008
    assert runtime.tile_for_memory(1e6, bpp, margin, alignment) == runtime.MIN_TILE
    assert runtime.tile_for_memory(1e15, bpp, margin, alignment) == runtime.MAX_TILE


def test_activation_estimate_grows_with_width_and_halves_in_fp16():
    fast, high = (quality.model_for_quality(q) for q in ("fast", "high"))
    assert runtime.activation_bytes_per_pixel(fast) < runtime.activation_bytes_per_pixel(high)
    assert runtime.activation_bytes_per_pixel(high, torch.float16) * 2 == pytest.approx(runtime.activation_bytes_per_pixel(high), abs=2)


def _passes(h: int, w: int) -> FrameInputs:
    """A frame as the batch reads it (half colour and albedo, float normal); np.empty: the
    tile rule reads sizes, the pages are never touched."""
    half, full = np.empty((h, w, 3), np.float16), np.empty((h, w, 3), np.float32)
    return FrameInputs(half, half, full)


def test_cli_budget_tiles_are_pinned():
    """``mcdenoise denoise``'s tiles for its flags (``--max-memory`` in bytes, ``--tile`` as
    the maximum), pinned: the balanced model within the default 2 GiB cuts an 8K frame into
    640-px tiles (480 with a float result, which the budget counts) and 1080p into 1152-px
    tiles, keeps small frames whole, and never goes above ``--tile``."""
    model = build_model("unet")  # balanced widths
    eight_k, hd, small = _passes(4320, 7680), _passes(1080, 1920), _passes(75, 133)
    two_gib = 2 << 30

    def tile(frame, max_tile, max_memory, result_itemsize):
        return Runtime(CPU, max_memory=max_memory, max_tile=max_tile).tile_for(model, frame, result_itemsize)

    assert [tile(eight_k, None, two_gib, n) for n in (2, 4)] == [640, 480]
    assert [tile(eight_k, 1024, m, 2) for m in (two_gib, 4 * two_gib, 0)] == [640, 1024, 1024]
    assert [tile(hd, None, m, 2) for m in (two_gib, 4 * two_gib)] == [1152, None]
    assert tile(hd, 1024, two_gib, 2) == 1024
    assert tile(small, None, two_gib, 4) is None
    assert tile(eight_k, None, 0, 2) is None  # --max-memory 0: no limit


def test_without_a_budget_the_tile_takes_a_share_of_free_memory(monkeypatch):
    """No explicit budget (``max_memory=None``, and always on a GPU): the network may take a
    share of the device's free memory; the whole frame when its longer side fits that, the
    user's tile as the maximum either way."""
    model = build_model("unet")
    frame = _passes(2160, 3840)
    monkeypatch.setattr(runtime.psutil, "virtual_memory", lambda: SimpleNamespace(available=16 << 30))
    fit = runtime.tile_for_memory((16 << 30) * runtime.CPU_MEMORY_SHARE, runtime.activation_bytes_per_pixel(model), model.receptive_radius, 16)
    assert Runtime(CPU).tile_for(model, frame) == fit < 3840
    assert Runtime(CPU, max_tile=512).tile_for(model, frame) == 512
    assert Runtime(CPU).tile_for(model, _passes(1080, 1920)) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 << 30, 16 << 30))
    assert runtime.available_memory(CUDA) == 8 << 30
    # fp16 activations on the GPU; its free memory, not the CPU budget, decides
    bpp = runtime.activation_bytes_per_pixel(model, torch.float16)
    fit = runtime.tile_for_memory((8 << 30) * runtime.GPU_MEMORY_SHARE, bpp, model.receptive_radius, 16)
    on_gpu = Runtime(CUDA, max_memory=2 << 30)
    assert on_gpu.tile_for(model, frame) == fit < 3840
    assert Runtime(CUDA, max_tile=fit + 16).tile_for(model, frame) == fit
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (300 << 20, 16 << 30))
    assert on_gpu.tile_for(model, frame) < fit


def test_impossible_options_are_refused_when_the_runtime_is_built():
    with pytest.raises(DeviceError, match="CUDA"):
        Runtime(CPU, compile=True)
    with pytest.raises(DeviceError, match="precision"):
        Runtime(CPU, "int8")


def test_thread_setting(monkeypatch):
    before = torch.get_num_threads()
    assert 1 <= runtime.physical_cores() <= len(os.sched_getaffinity(0))
    monkeypatch.setattr(runtime, "_threads_configured", False)
    monkeypatch.setenv("MCDENOISE_THREADS", "1")
    try:
        assert runtime.configure_cpu_threads() == 1
        Runtime(CPU, threads=2).prepare_model(quality.model_for_quality("fast"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_quality_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsError, match=r"quality 'high'.*shipped qualities: none") as nothing_shipped:
        quality.load_quality("high")
    assert nothing_shipped.value.fix == "reinstall"
    model = quality.model_for_quality("fast")
    save_weights(tmp_path / "default.pt", quality.model_for_quality("balanced"), "unet", {"widths": [24, 32, 48, 64, 80]}, SHIPPED_INPUTS)
    save_weights(tmp_path / "fast.pt", model, "unet", {"widths": list(quality.WIDTHS["fast"])}, SHIPPED_INPUTS)
    assert quality.shipped_qualities() == ["fast", "balanced"]
    save_weights(tmp_path / "high.pt", quality.model_for_quality("high").model, "unet", {"widths": list(quality.WIDTHS["high"])}, SHIPPED_INPUTS)
    assert quality.shipped_qualities() == ["fast", "balanced", "high"]
    assert quality.weights_path("balanced") == tmp_path / "default.pt" and quality.weights_path("high") == tmp_path / "high.pt"
    fast = quality.load_quality("fast")
    assert fast.model.enc1[0].out_channels == quality.WIDTHS["fast"][0]
    default = quality.load_for_cli(None, None)  # the balanced weights, averaged over 4 rotations
    assert isinstance(default.model, SelfEnsemble) and default.model.n == 4 and default.meta["self_ensemble"] == 4
    assert default.model.model.enc1[0].out_channels == quality.WIDTHS["balanced"][0]
    high = quality.load_quality("high")  # the wide weights, averaged over 4 rotations
    assert isinstance(high.model, SelfEnsemble) and high.model.n == 4 and high.meta["self_ensemble"] == 4
    assert high.model.model.enc1[0].out_channels == quality.WIDTHS["high"][0]
    assert high.model.alignment == 16 and high.model.receptive_radius == high.model.model.receptive_radius
    (tmp_path / "high.pt").unlink()
    with pytest.raises(WeightsError, match="quality 'high'.*shipped qualities: fast, balanced") as not_shipped:
        quality.load_for_cli(None, "high")
    assert not_shipped.value.fix == "quality_shipped"
    with pytest.raises(WeightsError, match="not both"):
        quality.load_for_cli(tmp_path / "fast.pt", "fast")
    with pytest.raises(WeightsError, match="unknown quality"):
        quality.weights_path("ultra")


def test_model_costs_are_ordered():
    costs = [quality.macs_per_pixel(quality.model_for_quality(q), size=32) for q in quality.QUALITIES]
    assert costs == sorted(costs)
    assert 160_000 < costs[1] < 220_000  # balanced: about 47k MAC per pixel, run over 4 rotations


def test_parse_size():
    assert speed.parse_size("1080p") == (1920, 1080)
    assert speed.parse_size("4K") == (3840, 2160)
    assert speed.parse_size("256") == (256, 256)
    assert speed.parse_size("96x48") == (96, 48)
    with pytest.raises(McDenoiseError):
        speed.parse_size("big")


def test_plan_interleaves_ours_and_oidn():
    jobs = speed.plan([(64, 64), (2000, 1000)], ["fast", "balanced"], ["high"], 3, gpu=False, precisions=[])
    assert [(j.denoiser, j.quality) for j in jobs[:3]] == [("ours", "fast"), ("oidn", "high"), ("ours", "balanced")]
    assert {j.repeat for j in jobs if j.width == 64} == {3} and {j.repeat for j in jobs if j.width == 2000} == {1}
    with_bf16 = speed.plan([(64, 64)], ["fast"], ["high"], 1, gpu=False, precisions=[], cpu_precisions=("fp32", "bf16"))
    assert [(j.denoiser, j.precision) for j in with_bf16] == [("ours", "fp32"), ("oidn", "fp32"), ("ours", "bf16")]
    gpu = speed.plan([(64, 64)], ["fast"], ["high"], 1, gpu=True, precisions=["fp16", "bf16"])
    assert {(j.device, j.precision) for j in gpu if j.denoiser == "ours"} == {("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "fp16"), ("cuda", "bf16")}
    gpu_only = speed.plan([(64, 64)], ["fast"], ["high"], 1, gpu=True, precisions=["fp16"], cpu=False)
    assert {j.device for j in gpu_only} == {"cuda"} and len(gpu_only) == 3
    budgeted = speed.plan([(64, 64)], ["fast"], ["high"], 1, gpu=False, precisions=[], max_memory_gib=2.0)
    assert [(j.denoiser, j.max_memory_gib) for j in budgeted] == [("ours", 0.0), ("oidn", 0.0), ("ours", 2.0)]
    assert budgeted[2].label == "mcdenoise fast (--max-memory 2)" and budgeted[0].label == "mcdenoise fast"


def test_bench_speed_tiles_as_the_cli_does(monkeypatch):
    """`bench --speed --max-memory` must time what `mcdenoise denoise --max-memory` runs: its
    tile is the one the CLI's own runtime picks for the frame, and without a budget the one a
    runtime without a budget picks."""
    import mcdenoise.inference.denoise as denoise_mod
    from mcdenoise.cli import build_parser
    from mcdenoise.cli.denoise import runtime_from_args

    tiles = []
    monkeypatch.setattr(denoise_mod, "denoise_frame", lambda loaded, inputs, tile=None, **kw: tiles.append(tile))
    w, h, gib = 1600, 900, 0.75
    speed.time_run(speed.SpeedRun("ours", "fast", w, h, max_memory_gib=gib))
    speed.time_run(speed.SpeedRun("ours", "fast", w, h))
    model = quality.model_for_quality("fast")
    frame = FrameInputs(*speed.synthetic_frame(w, h))
    cli = runtime_from_args(build_parser(["denoise"]).parse_args(["denoise", "in.exr", "--max-memory", str(gib)]), model)
    expected = cli.tile_for(model, frame)
    assert isinstance(expected, int) and expected < w  # the budget really cuts this frame
    assert tiles == [None, expected, None, Runtime(CPU).tile_for(model, frame)]  # each: warm-up on a small frame, then the timed call


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_bench_speed_cuda_only_without_a_gpu_is_refused(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mcdenoise", "bench", "--speed", "--device", "cuda", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "no CUDA GPU" in run.stderr and "Traceback" not in run.stderr


def test_bench_speed_writes_a_report(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mcdenoise", "bench", "--speed", "--sizes", "48x32", "--quality", "fast", "--oidn-quality", "high", "--cpu-precision", "fp32",
         "--repeat", "1", "--rounds", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "speed.md").read_text().splitlines()
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("| 48x32")}
    assert set(rows) == {"mcdenoise fast", "mcdenoise fast (--max-memory 2)", "OIDN high"}  # the CLI's budget by default
    assert rows["OIDN high"][-2:] == ["1.00", "n/a"]  # vs OIDN high; OIDN-Accurate was not timed
    for row in rows.values():
        assert float(row[4]) > 0 and float(row[5]) > 0  # ms/frame, ms/MP measured


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    peak = float(np.abs(b).max())
    return float(10 * np.log10(peak**2 / max(float(np.mean((a - b) ** 2)), 1e-30)))


@needs_cuda
@pytest.mark.parametrize("quality_name", ["balanced", "high"])
def test_cuda_precisions_tiles_and_compile_agree_with_the_cpu(quality_name):
    """The GPU paths (fp32 with cuDNN's TF32, fp16/bf16 autocast, tiles, torch.compile) must
    give the CPU's answer up to their arithmetic precision, on the shipped weights."""
    loaded = quality.load_quality(quality_name)
    frame = _frame(200, 264)
    reference = denoise_frame(loaded, frame, tile=None, runtime=Runtime(CPU, "fp32"))
    gpu = LoadedModel(copy.deepcopy(loaded.model).to(CUDA), loaded.arch, loaded.config, loaded.inputs)
    fp32 = denoise_frame(gpu, frame, tile=None, runtime=Runtime(CUDA, "fp32"))
    psnr = {"fp32": _psnr(fp32, reference)}
    for precision in ("fp16", "bf16"):
        out = denoise_frame(gpu, frame, tile=None, runtime=Runtime(CUDA, precision))
        assert out.dtype == np.float32 and np.isfinite(out).all()
        psnr[precision] = _psnr(out, reference)
    psnr["tiled vs untiled"] = _psnr(denoise_frame(gpu, frame, tile=96, runtime=Runtime(CUDA, "fp32")), fp32)
    psnr["compiled fp16"] = _psnr(denoise_frame(gpu, frame, tile=None, runtime=Runtime(CUDA, "fp16", compile=True)), reference)
    floors = {"fp32": 45, "fp16": 40, "bf16": 32, "tiled vs untiled": 60, "compiled fp16": 40}
    assert all(psnr[k] > floors[k] for k in floors), psnr  # PSNR in dB against the CPU's fp32 answer
