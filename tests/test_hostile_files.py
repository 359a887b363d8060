"""Hostile and unusual files: a frame is either denoised right or refused with a reason, and a
run never counts a broken output as finished.

Each test builds the bad file itself (a cut or zeroed output, a pass whose compressed bytes are
damaged, an output pass named like an input, radiance near float32's limit, NaN weights, passes
with different data windows) and checks what a user sees: the error, the exit status, the file.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch

from batch_fixtures import denoised_pass, make_tiny_weights
from exr_fixtures import box, write_blender_like
from mcdenoise import hdr
from mcdenoise.batch.plan import output_is_complete
from mcdenoise.errors import InputFileError, McDenoiseError, OutputError, PassShapeError
from mcdenoise.inference.frames import denoise_file
from mcdenoise.io import header
from mcdenoise.io.exr import WRITTEN_BY, read_frame
from mcdenoise.io.passes import PassNames
from mcdenoise.io.write import write_exr, write_with_pass
from mcdenoise.models.loader import load_model, save_weights

# Every scanline compression this OpenEXR writes, with the lines one chunk holds.
COMPRESSIONS = {
    "NO": 1, "RLE": 1, "ZIPS": 1, "ZIP": 16, "PIZ": 32, "PXR24": 16, "B44": 32, "B44A": 32, "DWAA": 32, "DWAB": 256,
    "HTJ2K256": 256, "HTJ2K32": 32, "ZSTD": 1,
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _scene(h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    color = rng.exponential(0.5, (h, w, 3)).astype(np.float32)
    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 2] = 1
    return {"color": color, "albedo": np.full((h, w, 3), 0.5, np.float16), "normal": normal}


def _write_single_part(path: Path, h: int = 70, w: int = 24, compression=OpenEXR.ZIP_COMPRESSION, y0: int = -5,
                       marked: tuple[str, ...] = ()) -> None:
    """A plain single-part file (what every non-Blender renderer writes): RGB + Albedo + Normal
    in one part, in half (B44 compresses only half) and an offset, negative data window.
    ``marked``: passes the header says mcdenoise wrote (as in an output)."""
    s = _scene(h, w)
    marks = {WRITTEN_BY: "\n".join(marked)} if marked else {}
    write_exr(path, {"": s["color"].astype(np.float16), "Albedo": s["albedo"], "Normal": s["normal"].astype(np.float16)},
              header={"compression": compression, "dataWindow": box(3, y0, 3 + w - 1, y0 + h - 1),
                      "displayWindow": box(0, 0, 63, 127), **marks})


def _write_zip_layers(path: Path, layers: tuple[str, ...] = ("ViewLayer",), h: int = 40, w: int = 48) -> None:
    """A Blender-like multi-part file in ZIP, whose chunks carry a checksum (zlib's), so damaged
    bytes make OpenEXR fail to decode the part rather than hand back other numbers."""
    passes = {}
    for i, layer in enumerate(layers):
        s = _scene(h, w, seed=i)
        passes[f"{layer}.Combined"] = np.dstack([s["color"], np.ones((h, w), np.float32)])
        passes[f"{layer}.Denoising Albedo"] = s["albedo"]
        passes[f"{layer}.Denoising Normal"] = s["normal"]
    write_exr(path, passes, multipart=True)


def _damage_part(src: Path, part_name: str, dst: Path) -> None:
    """Copy ``src`` with every chunk of one part's compressed bytes overwritten, its chunk leaders
    (part, line, size) left whole: the file is complete, one part's data is damaged."""
    data = bytearray(src.read_bytes())
    with open(src, "rb") as fh:
        parts = header.read_layout(fh).parts
    part = next(p for p in parts if p.name == part_name)
    for offset in part.offsets:
        (size,) = struct.unpack_from("<i", data, offset + 8)
        data[offset + 12 : offset + 12 + size] = bytes([0xAB]) * size
    dst.write_bytes(bytes(data))


# --------------------------------------------------------------------------- 1. resume


def test_resume_redoes_a_cut_single_part_output(cli, weights, tmp_path):
    """A single-part output cut short by a crash outside our atomic write (a full disk during a
    copy, a sync tool) is denoised again, not skipped as finished."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for n in (1, 2):
        _write_single_part(inputs / f"shot_{n:04d}.exr")
    code, stdout, err = cli("denoise", inputs, "--out", out, "--weights", weights, "-q", "--device", "cpu")
    assert code == 0 and "done 2 / skipped 0" in stdout, err
    first = out / "shot_0001.exr"
    whole = first.read_bytes()
    first.write_bytes(whole[: len(whole) * 2 // 3])

    code, stdout, err = cli("denoise", inputs, "--out", out, "--weights", weights, "-q", "--device", "cpu")
    assert code == 0 and "done 1 / skipped 1" in stdout, (stdout, err)
    assert first.read_bytes() == whole  # the re-run's result is the uninterrupted one


@pytest.mark.parametrize("name", sorted(COMPRESSIONS))
def test_completeness_is_proven_chunk_by_chunk_in_every_compression(tmp_path, name):
    """A whole single-part output is complete in every compression; cut anywhere past its
    header (inside the offset table, inside the first chunk, in its last byte) it is not, and
    neither is one whose middle chunk's leader was zeroed."""
    if not hasattr(OpenEXR, f"{name}_COMPRESSION"):
        pytest.skip(f"this OpenEXR has no {name} compression")
    path = tmp_path / "out.exr"
    _write_single_part(path, compression=getattr(OpenEXR, f"{name}_COMPRESSION"), marked=("Albedo",))
    # The file's own chunk count, computed here from the data window (70 lines from y=-5).
    chunks = -(-70 // COMPRESSIONS[name])
    data = path.read_bytes()
    with open(path, "rb") as fh:
        layout = header.read_layout(fh)
    part = layout.parts[0]
    assert part.offsets is not None and len(part.offsets) == chunks
    table = min(part.offsets) - 8 * chunks
    assert output_is_complete(path, "Albedo")
    for cut in (table + 4, min(part.offsets) + 6, len(data) - 1):
        path.write_bytes(data[:cut])
        assert not output_is_complete(path, "Albedo"), cut
    if chunks >= 3:
        middle = sorted(part.offsets)[chunks // 2]
        path.write_bytes(data[:middle] + bytes(8) + data[middle + 8 :])
        assert not output_is_complete(path, "Albedo")


def test_a_multipart_output_with_its_middle_zeroed_is_not_complete(tmp_path):
    """Every chunk's leader is read, not only each part's last one: a zeroed stretch in the
    middle shows."""
    src, path = tmp_path / "in.exr", tmp_path / "out.exr"
    write_blender_like(src, h=256, w=64)
    frame = read_frame(src)
    write_with_pass(frame, path, frame.color)
    assert output_is_complete(path, "Denoised")
    data = bytearray(path.read_bytes())
    n = len(data)
    with open(path, "rb") as fh:  # the zeroed sixth holds chunk leaders, not only compressed pixels
        assert any(n // 3 <= o < n // 2 for p in header.read_layout(fh).parts for o in p.offsets)
    data[n // 3 : n // 2] = bytes(n // 2 - n // 3)
    path.write_bytes(bytes(data))
    assert not output_is_complete(path, "Denoised")
    with pytest.raises(InputFileError, match="incomplete or corrupted"):
        read_frame(path)


def test_tiled_outputs_are_checked_tile_by_tile(tmp_path):
    """Single-part tiled files store no chunk count either: the tile description gives it."""
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize, tiles.mode = 16, 8, OpenEXR.ONE_LEVEL
    path = tmp_path / "tiled.exr"
    part = OpenEXR.Part({"type": OpenEXR.tiledimage, "tiles": tiles, "compression": OpenEXR.ZIP_COMPRESSION, WRITTEN_BY: "Denoised"},
                        {c: np.ones((37, 50), np.float32) for c in ("R", "G", "B", "Denoised.R")}, "")
    OpenEXR.File([part]).write(str(path))
    assert output_is_complete(path, "Denoised")
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    assert not output_is_complete(path, "Denoised")


@pytest.mark.parametrize("mode", ["MIPMAP_LEVELS", "RIPMAP_LEVELS"])
@pytest.mark.parametrize("rounding", ["ROUND_DOWN", "ROUND_UP"])
def test_tile_counts_of_every_level_mode_agree_with_openexr(tmp_path, mode, rounding):
    """Multi-part files store chunkCount, written by OpenEXR: the count computed from the tile
    description must agree with it, or single-part files of that kind would be misjudged."""
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize = 16, 8
    tiles.mode, tiles.roundingMode = getattr(OpenEXR, mode), getattr(OpenEXR, rounding)
    head = {"type": OpenEXR.tiledimage, "tiles": tiles, "compression": OpenEXR.ZIP_COMPRESSION}
    parts = [OpenEXR.Part(dict(head), {f"{n}.R": np.ones((37, 50), np.float32)}, n) for n in ("a", "b")]
    path = tmp_path / "levels.exr"
    OpenEXR.File(parts).write(str(path))
    stored = OpenEXR.File(str(path), header_only=True).parts[0].header["chunkCount"]
    with open(path, "rb") as fh:
        layout = header.read_layout(fh)  # a computed count that disagrees is a HeaderError
    assert len(layout.parts[0].offsets) == stored > 7 * 3


# --------------------------------------------------------------------------- 2. damaged passes


@pytest.mark.parametrize("low_memory", [False, True])
def test_a_damaged_normal_pass_is_an_error_not_a_missing_pass(tmp_path, capfd, low_memory):
    src, bad = tmp_path / "in.exr", tmp_path / "bad.exr"
    _write_zip_layers(src)
    _damage_part(src, "ViewLayer.Denoising Normal", bad)
    capfd.readouterr()
    with pytest.raises(InputFileError, match=rf"^{bad}: .*ViewLayer\.Denoising Normal.*re-render or re-copy it"):
        read_frame(bad, low_memory=low_memory)
    out, err = capfd.readouterr()
    assert out == "" and "EXR_ERR" not in err  # OpenEXR's own diagnostics stay off our streams


def test_a_damaged_first_layer_is_not_replaced_by_the_second(tmp_path):
    src, bad = tmp_path / "in.exr", tmp_path / "bad.exr"
    _write_zip_layers(src, layers=("A", "B"))
    _damage_part(src, "A.Combined", bad)
    for low_memory in (False, True):
        with pytest.raises(InputFileError, match=r"A\.Combined"):
            read_frame(bad, low_memory=low_memory)


def test_cli_refuses_a_damaged_albedo_with_one_line_and_no_output(cli, weights, tmp_path):
    src, bad = tmp_path / "in.exr", tmp_path / "bad.exr"
    _write_zip_layers(src)
    _damage_part(src, "ViewLayer.Denoising Albedo", bad)
    out = tmp_path / "out.exr"
    code, stdout, err = cli("denoise", bad, "-o", out, "--weights", weights, "--device", "cpu")
    assert code == 2 and not out.exists()
    assert f"mcdenoise denoise: error: {bad}: " in err and "ViewLayer.Denoising Albedo" in err
    assert "Warning" not in stdout and "EXR_ERR" not in err, (stdout, err)


# --------------------------------------------------------------------------- 3. output pass name


@pytest.mark.parametrize("name", ["Combined", "combined", "Denoising Albedo", "Denoising Normal", ""])
def test_the_output_pass_may_not_replace_an_input_pass(tmp_path, name):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    before = src.read_bytes()
    frame = read_frame(src)
    out = tmp_path / "out.exr"
    with pytest.raises(OutputError, match=f"^{src}: .*pass name"):
        write_with_pass(frame, out, frame.color, pass_name=name)
    assert not out.exists() and src.read_bytes() == before


def test_cli_pass_name_combined_is_refused_before_the_model_runs(cli, weights, tmp_path, monkeypatch):
    from mcdenoise.batch import runner

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran on a frame whose output pass name is refused")

    monkeypatch.setattr(runner, "run_model", no_model)
    src = tmp_path / "in.exr"
    write_blender_like(src)
    out = tmp_path / "out.exr"
    code, _, err = cli("denoise", src, "-o", out, "--weights", weights, "--pass-name", "Combined", "--device", "cpu")
    assert code == 2 and not out.exists()
    assert f"error: {src}: pass name 'Combined' is the frame's colour pass" in err, err


# --------------------------------------------------------------------------- 4. huge values, broken weights


def test_radiance_near_the_float32_limit_gives_a_finite_pass(tmp_path, weights):
    """A colour pass of 1e37-1e38 is valid float32: the exposure must not overflow."""
    h, w = 40, 48
    rng = np.random.default_rng(3)
    color = (10.0 ** rng.uniform(37, 38, (h, w, 3))).astype(np.float32)
    assert np.all(np.isfinite(color))
    exposure = hdr.autoexposure(color)
    assert np.isfinite(exposure) and exposure > 0
    src = tmp_path / "huge.exr"
    s = _scene(h, w)
    write_exr(src, {"ViewLayer.Combined": color, "ViewLayer.Denoising Albedo": s["albedo"], "ViewLayer.Denoising Normal": s["normal"]},
              multipart=True)
    out = tmp_path / "out.exr"
    denoise_file(load_model(weights), src, out)
    assert np.all(np.isfinite(denoised_pass(out)))


def test_half_colour_near_its_limit_gives_a_finite_half_pass(tmp_path, weights):
    """The pass is written in the colour's half: a result past 65504 must not become Inf."""
    h, w = 40, 48
    color = np.full((h, w, 3), 65000, np.float16)
    color[::2, ::3] = 60000
    s = _scene(h, w)
    src = tmp_path / "bright.exr"
    write_exr(src, {"ViewLayer.Combined": color, "ViewLayer.Denoising Albedo": s["albedo"], "ViewLayer.Denoising Normal": s["normal"]},
              multipart=True)
    loaded = load_model(weights)
    with torch.no_grad():  # a network that brightens (it predicts the noise it subtracts): past half's range
        loaded.model.out.bias.sub_(30.0)
    out = tmp_path / "out.exr"
    denoise_file(loaded, src, out)
    result = denoised_pass(out)
    assert result.dtype == np.float16 and np.all(np.isfinite(result))


def test_nan_weights_fail_the_frame_naming_the_weights(tmp_path, weights):
    broken = tmp_path / "nan.pt"
    loaded = load_model(weights)
    with torch.no_grad():
        next(loaded.model.parameters()).fill_(float("nan"))
    save_weights(broken, loaded.model, loaded.arch, loaded.config, loaded.inputs)
    src = tmp_path / "in.exr"
    write_blender_like(src)
    out = tmp_path / "out.exr"
    with pytest.raises(McDenoiseError, match=rf"^{src}: .*not finite.*{broken.name}"):
        denoise_file(load_model(broken), src, out)
    assert not out.exists()


def test_weights_that_fail_every_frame_stop_a_keep_going_batch(cli, tmp_path, weights):
    """Item 10: weights that cannot denoise (NaN, or a network whose input width is not its
    layout's) would fail every frame the same way; the batch stops at the first with one error
    naming the weights, even with --keep-going, and exits 2."""
    from batch_fixtures import TINY_UNET, write_sequence

    from mcdenoise.models import build_model

    misfit = tmp_path / "misfit.pt"
    config = dict(TINY_UNET, in_channels=6)
    save_weights(misfit, build_model("unet", **config), "unet", config, "color+albedo+normal")
    with pytest.raises(McDenoiseError, match=rf"^{misfit}: the network takes 6 input channels but its input layout .* has 9"):
        load_model(misfit)
    nan = tmp_path / "nan.pt"
    loaded = load_model(weights)
    with torch.no_grad():
        next(loaded.model.parameters()).fill_(float("nan"))
    save_weights(nan, loaded.model, loaded.arch, loaded.config, loaded.inputs)
    write_sequence(tmp_path / "in", [1, 2, 3, 4])
    code, stdout, err = cli("denoise", tmp_path / "in" / "shot_####.exr", "--out", tmp_path / "out", "--weights", nan,
                            "--device", "cpu", "-q", "--keep-going")
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and nan.name in errors[0] and "stopped" in err, (stdout, err)
    assert not list((tmp_path / "out").glob("*.exr"))


@pytest.mark.parametrize("channels, listed", [(("Y", "RY", "BY"), "(plain BY, RY, Y)"), (("Y",), "(plain Y)"),
                                              (("R", "G", "B", "A"), "(plain RGBA)")])
def test_a_file_without_a_colour_pass_is_described_as_it_is(tmp_path, channels, listed):
    """Item 10: a luminance/chroma or one-channel file was described as "(plain RGBA)"."""
    path = tmp_path / "odd.exr"
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {c: np.ones((4, 4), np.float32) for c in channels}).write(str(path))
    with pytest.raises(McDenoiseError, match=re.escape(f"the file has: {listed}")):
        read_frame(path, PassNames(color=("Combined",)))


# --------------------------------------------------------------------------- 5. data windows


def test_an_albedo_with_a_shifted_data_window_is_refused(tmp_path):
    """Same size, another origin: read as it is, every albedo pixel would sit next to the wrong
    colour pixel."""
    h, w = 16, 24
    s = _scene(h, w)
    window = {"displayWindow": box(0, 0, 63, 63)}
    parts = [
        OpenEXR.Part(dict(window, dataWindow=box(0, 0, w - 1, h - 1)),
                     {f"ViewLayer.Combined.{c}": s["color"][..., i] for i, c in enumerate("RGB")}, "ViewLayer.Combined"),
        OpenEXR.Part(dict(window, dataWindow=box(5, 2, 5 + w - 1, 2 + h - 1)),
                     {f"ViewLayer.Denoising Albedo.{c}": s["albedo"][..., i] for i, c in enumerate("RGB")}, "ViewLayer.Denoising Albedo"),
    ]
    path = tmp_path / "shifted.exr"
    OpenEXR.File(parts).write(str(path))
    for low_memory in (False, True):
        with pytest.raises(PassShapeError, match=r"albedo pass is 24x16 at \(5, 2\) but colour is 24x16 at \(0, 0\)"):
            read_frame(path, low_memory=low_memory)


# ----------------------------------------------------------------- issue 18, items 6-8, 12, 13


def _argparse_refuses(cli, capfd, *args) -> str:
    """stderr of a CLI run that argparse refuses (exit 2, before any work)."""
    with pytest.raises(SystemExit) as exited:
        cli(*args)
    assert exited.value.code == 2
    return capfd.readouterr().err


def test_a_symlink_loop_input_is_refused_without_a_traceback(cli, weights, tmp_path):
    (tmp_path / "a.exr").symlink_to(tmp_path / "b.exr")
    (tmp_path / "b.exr").symlink_to(tmp_path / "a.exr")
    code, _out, err = cli("denoise", tmp_path / "a.exr", "--weights", weights, "-q")
    assert code == 2
    assert "a.exr" in err and "symbolic links" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e-9", "0.1"])
def test_impossible_memory_budgets_are_refused(cli, capfd, tmp_path, value):
    err = _argparse_refuses(cli, capfd, "denoise", tmp_path / "in.exr", "--max-memory", value)
    assert "--max-memory" in err and "0 (no limit)" in err


@pytest.mark.parametrize("value", ["7", "-5", "63"])
def test_tiles_below_the_smallest_useful_side_are_refused(cli, capfd, tmp_path, value):
    err = _argparse_refuses(cli, capfd, "denoise", tmp_path / "in.exr", "--tile", value)
    assert "--tile" in err and ">= 64" in err


def _weights_payload(weights: Path) -> dict:
    return torch.load(weights, weights_only=True)


@pytest.mark.parametrize("case", ["width_100000", "width_-8", "width_bool", "unknown_arg", "tensor", "list",
                                  "empty_state", "string_entry", "config_not_dict", "reference_not_tensor"])
def test_malformed_weights_are_a_weights_error_before_any_network_is_built(weights, tmp_path, monkeypatch, case):
    from mcdenoise.models import loader

    payload = _weights_payload(weights)
    config = payload["config"]
    bad = {
        "width_100000": lambda: {**payload, "config": {**config, "widths": [100000] * 5}},
        "width_-8": lambda: {**payload, "config": {**config, "widths": [-8] * 5}},
        "width_bool": lambda: {**payload, "config": {**config, "in_channels": True}},
        "unknown_arg": lambda: {**payload, "config": {**config, "dropout": 1}},
        "tensor": lambda: torch.zeros(3),
        "list": lambda: [payload["state_dict"]],
        "empty_state": lambda: {**payload, "state_dict": {}},
        "string_entry": lambda: {**payload, "state_dict": {**payload["state_dict"], "enc1.0.weight": "x"}},
        "config_not_dict": lambda: {**payload, "config": [8, 8]},
        "reference_not_tensor": lambda: {"dncnn.0.weight": 3, "dncnn.2.weight": torch.zeros(1)},
    }[case]()
    path = tmp_path / "bad.pt"
    torch.save(bad, path)

    def must_not_build(*args, **kwargs):
        raise AssertionError("a network was built from a malformed file")

    monkeypatch.setattr(loader, "build_model", must_not_build)
    with pytest.raises(McDenoiseError) as caught:
        load_model(path)
    assert type(caught.value).__name__ == "WeightsError" and "bad.pt" in str(caught.value)


def test_an_oversized_weights_file_is_refused_before_torch_reads_it(weights, tmp_path, monkeypatch):
    from mcdenoise.models import loader

    big = tmp_path / "big.pt"
    big.write_bytes(weights.read_bytes() + b"\0" * (1 << 20))
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(loader.torch, "load", lambda *a, **k: pytest.fail("torch.load read an oversized file"))
    with pytest.raises(McDenoiseError, match="too large for a weights file"):
        load_model(big)


def _finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread and return what it raised (None for nothing); fail if it blocks."""
    import threading

    outcome: list[BaseException | None] = []

    def call():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "blocked on a special file"
    return outcome[0]


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_special_files_named_exr_are_refused_without_blocking(tmp_path, kind):
    import os

    path = tmp_path / "frame.exr"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    raised = _finishes(lambda: read_frame(path))
    assert isinstance(raised, InputFileError), raised
    assert {"fifo": "named pipe", "device": "a device", "directory": "directory"}[kind] in str(raised)


def test_the_cli_refuses_a_fifo_among_its_inputs_and_denoises_the_rest(cli, weights, tmp_path):
    import os

    src = tmp_path / "src"
    src.mkdir()
    write_blender_like(src / "a.exr")
    os.mkfifo(src / "b.exr")
    out = tmp_path / "out"
    result: list = []
    raised = _finishes(lambda: result.append(
        cli("denoise", src / "a.exr", src / "b.exr", "--out", out, "--weights", weights, "--keep-going", "-q")))
    assert raised is None
    code, _out, err = result[0]
    assert code == 1 and "b.exr" in err and "named pipe" in err
    assert output_is_complete(out / "a.exr", "Denoised")


def test_sigterm_ends_the_job_keeping_finished_frames_and_leaving_no_temps(cli, weights, tmp_path, monkeypatch):
    import os
    import signal

    from batch_fixtures import write_sequence
    from mcdenoise.batch import runner

    write_sequence(tmp_path / "src", [1, 2, 3])
    out = tmp_path / "out"
    calls = []
    real = runner.run_model

    def run_model(loaded, prepared, runtime=None, progress=None):
        calls.append(prepared.frame.path.name)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a farm manager sends to cancel
        return real(loaded, prepared, runtime, progress)

    monkeypatch.setattr(runner, "run_model", run_model)
    before = signal.getsignal(signal.SIGTERM)
    code, _out, err = cli("denoise", tmp_path / "src" / "shot_####.exr", "--out", out, "--weights", weights, "-q")
    assert code == 143 and "terminated" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI's handler is gone again
    assert output_is_complete(out / "shot_0001.exr", "Denoised")
    assert sorted(p.name for p in out.iterdir()) == ["shot_0001.exr"]  # no frame 2, no temp


def _write_with_extra_part(path: Path) -> None:
    """A multi-part file with a part no read needs, so a low-memory read decodes a temp copy."""
    s = _scene(32, 32)
    write_exr(path, {"ViewLayer.Combined": np.dstack([s["color"], np.ones((32, 32), np.float32)]),
                     "ViewLayer.Denoising Albedo": s["albedo"], "ViewLayer.Denoising Normal": s["normal"],
                     "ViewLayer.Emit": s["color"]}, multipart=True)


def test_the_low_memory_temp_copy_follows_the_owner_rule_and_stale_ones_go(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from mcdenoise.io import atomic, exr, splice

    temp_dir = tmp_path / "system-temp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True).stdout
    stale = atomic.temp_path(temp_dir / exr.READ_TEMP_NAME, pid=int(dead))
    stale.write_bytes(b"left by a killed run")
    live = atomic.temp_path(temp_dir / exr.READ_TEMP_NAME)  # this process's: in flight, must stay
    live.write_bytes(b"in flight")
    used = []
    real = splice.splice
    monkeypatch.setattr(splice, "splice", lambda src, drop, extra, dst: (used.append(dst), real(src, drop, extra, dst))[1])
    path = tmp_path / "frame.exr"
    _write_with_extra_part(path)
    frame = read_frame(path, low_memory=True)
    assert frame.albedo is not None and frame.normal is not None
    # the parts denoising reads, then the one it does not (Emit), alone: it is checked, as the output copies it
    assert len(used) == 2 and all(u.parent == temp_dir and atomic.is_temp(u) and not u.exists() for u in used)
    assert not stale.exists() and live.exists()


def _window_patched(src: Path, dst: Path, x1: int) -> None:
    """Copy a single-part file with its data window's right edge moved to ``x1``."""
    data = bytearray(src.read_bytes())
    at = data.index(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
    struct.pack_into("<i", data, at + 8, x1)
    dst.write_bytes(bytes(data))


def test_an_implausible_data_window_is_refused_before_decoding(tmp_path):
    src = tmp_path / "small.exr"
    write_exr(src, {"": np.zeros((16, 16, 3), np.float16)}, header={"compression": OpenEXR.ZIP_COMPRESSION})
    hostile = tmp_path / "huge.exr"
    _window_patched(src, hostile, 70000)
    with pytest.raises(InputFileError, match="70001x16 pixels.*at most 65536"):
        read_frame(hostile)


def test_a_frame_that_cannot_fit_the_memory_budget_fails_before_decoding(cli, weights, tmp_path, monkeypatch):
    """4096x4096 half zeros (a small file): its read arrays alone take the 0.75 GiB budget."""
    from mcdenoise.batch import runner

    path = tmp_path / "zeros.exr"
    write_exr(path, {"": np.zeros((4096, 4096, 3), np.float16)}, header={"compression": OpenEXR.ZIP_COMPRESSION})
    monkeypatch.setattr(runner, "prepare_views", lambda *a, **k: pytest.fail("the frame was decoded"))
    code, _out, err = cli("denoise", path, "--out", tmp_path / "out", "--weights", weights, "--max-memory", "0.75", "-q")
    assert code == 2
    assert "zeros.exr" in err and "17 megapixels" in err and "--max-memory 1 or more" in err


def test_frame_ranges_are_bounded(cli, capfd, tmp_path):
    from mcdenoise.batch.sequence import MAX_FRAMES, parse_frames

    assert len(parse_frames(f"1-{MAX_FRAMES}")) == MAX_FRAMES
    for frames in (f"1-{MAX_FRAMES + 1}", "1-1000000000", "1-600000,700001-1300000"):
        err = _argparse_refuses(cli, capfd, "denoise", tmp_path / "shot_####.exr", "--frames", frames)
        assert "more than 1,000,000 frames" in err


def test_a_preview_must_be_a_png_and_not_the_output(cli, capfd, weights, tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    err = _argparse_refuses(cli, capfd, "denoise", src, "-o", tmp_path / "out.exr", "--preview", tmp_path / "p.exr")
    assert "--preview" in err and ".png" in err
    (tmp_path / "p.png").symlink_to(tmp_path / "out.exr")
    code, _out, err = cli("denoise", src, "-o", tmp_path / "out.exr", "--preview", tmp_path / "p.png", "--weights", weights)
    assert code == 2 and "same file" in err
    assert not (tmp_path / "out.exr").exists()
