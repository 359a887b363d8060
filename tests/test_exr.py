"""EXR I/O: pass lookup on real and synthetic files, faithful write-back, atomic writes, bad files."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from exr_fixtures import box, channel_dump, write_blender_like
from mcdenoise.io import exr as exr_mod
from mcdenoise.io import header, splice
from mcdenoise.io import write as write_mod
from mcdenoise.errors import InputFileError, MissingPassError, OutputError, PassShapeError
from mcdenoise.io.exr import read_frame
from mcdenoise.io.write import write_exr, write_with_pass
from mcdenoise.io.passes import PRESETS, PassNames, split_channel_name


def test_reads_blender_output(repo_root):
    frame = read_frame(repo_root / "examples" / "suzanne_4spp.exr")
    assert frame.layer == "ViewLayer"
    assert frame.color.shape == (240, 320, 3) and frame.color.dtype == np.float32
    assert frame.albedo.shape == frame.normal.shape == (240, 320, 3)
    assert frame.alpha.shape == (240, 320)
    assert frame.color_dtype == np.float16  # the sample is written as half float
    # normals are unit-ish vectors, albedo is a reflectance (Cycles may exceed 1 on glossy paths)
    lengths = np.linalg.norm(frame.normal, axis=-1)
    assert np.median(lengths) == pytest.approx(1.0, abs=0.05)


def test_write_with_pass_keeps_everything(tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src, data_window=(5, 3))
    before = channel_dump(src)
    frame = read_frame(src)
    denoised = (frame.color * 0.5).astype(np.float16)  # not the colour's float32: the pass must take the colour's type
    out = tmp_path / "out.exr"
    write_with_pass(frame, out, denoised)
    after = channel_dump(out)
    assert set(after) == set(before) | {"ViewLayer.Denoised"}
    for name, content in before.items():
        assert after[name] == content, f"part {name} changed"
    back = read_frame(out, PassNames(color=("Denoised",)))
    np.testing.assert_array_equal(back.color, denoised)
    # the new pass sits in the same data window and uses the colour's pixel type
    f = OpenEXR.File(str(out), separate_channels=True)
    part = next(p for p in f.parts if p.name() == "ViewLayer.Denoised")
    assert tuple(part.header["dataWindow"][0]) == (5, 3)
    assert part.channels["ViewLayer.Denoised.R"].pixels.dtype == np.float32


def test_denoising_twice_replaces_the_pass(tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    frame = read_frame(src)
    write_with_pass(frame, src, frame.color * 0.5)
    again = read_frame(src)
    write_with_pass(again, src, again.color * 0.25)
    names = [p.name() for p in OpenEXR.File(str(src), separate_channels=True).parts]
    assert names.count("ViewLayer.Denoised") == 1
    np.testing.assert_array_equal(read_frame(src, PassNames(color=("Denoised",))).color, frame.color * 0.25)


def test_single_part_layered_and_plain_files(tmp_path):
    h, w = 20, 30
    rgb = np.random.default_rng(1).random((h, w, 3)).astype(np.float32)
    layered = tmp_path / "layered.exr"
    write_exr(layered, {"Combined": np.dstack([rgb, np.ones((h, w))]), "Albedo": rgb * 0.5, "Normal": rgb - 0.5})
    frame = read_frame(layered)
    assert frame.layer == "" and frame.albedo is not None and frame.normal is not None
    np.testing.assert_array_equal(frame.normal, rgb - 0.5)
    write_with_pass(frame, tmp_path / "layered_out.exr", rgb)
    chans = OpenEXR.File(str(tmp_path / "layered_out.exr"), separate_channels=True).parts[0].channels
    assert {"Denoised.R", "Denoised.G", "Denoised.B", "Combined.A", "Albedo.R"} <= set(chans)

    plain = tmp_path / "plain.exr"
    write_exr(plain, {"": rgb}, header={"dataWindow": box(10, 4, 10 + w - 1, 4 + h - 1), "displayWindow": box(0, 0, 63, 63)})
    frame = read_frame(plain)
    assert frame.albedo is None and frame.normal is None and frame.alpha is None
    write_with_pass(frame, tmp_path / "plain_out.exr", rgb)
    f = OpenEXR.File(str(tmp_path / "plain_out.exr"), separate_channels=True)
    assert tuple(f.parts[0].header["dataWindow"][0]) == (10, 4)
    assert tuple(f.parts[0].header["displayWindow"][1]) == (63, 63)
    assert {"R", "G", "B", "Denoised.R"} <= set(f.parts[0].channels)


def test_pass_lookup_layers_and_overrides(tmp_path):
    """The first layer unless one is named; a pass named by an override replaces the preset's
    candidates and is looked up in the chosen layer. Every pass of each layer holds its own
    pixels, so picking the wrong pass or layer shows."""
    rng = np.random.default_rng(0)
    passes = {f"{layer}.{name}": rng.random((6, 8, 3), dtype=np.float32)
              for layer in ("Front", "Back") for name in ("Combined", "Denoising Albedo", "Denoising Normal", "Glossy")}
    path = tmp_path / "two_layers.exr"
    write_exr(path, passes, multipart=True)

    def read(names: PassNames) -> tuple:
        frame = read_frame(path, names)
        return frame.layer, frame.color, frame.albedo, frame.normal

    def expected(layer: str, color: str, albedo: str = "Denoising Albedo", normal: str = "Denoising Normal") -> tuple:
        return layer, passes[f"{layer}.{color}"], passes[f"{layer}.{albedo}"], passes[f"{layer}.{normal}"]

    cases = [
        (PassNames(), expected("Front", "Combined")),
        (PassNames(layer="Back"), expected("Back", "Combined")),
        (PassNames().with_overrides(color="Glossy"), expected("Front", "Glossy")),
        (PassNames().with_overrides(color="glossy", layer="Back"), expected("Back", "Glossy")),  # case-insensitive
        (PassNames().with_overrides(albedo="Glossy", normal="Denoising Albedo", layer="Back"),
         expected("Back", "Combined", albedo="Glossy", normal="Denoising Albedo")),
    ]
    for names, want in cases:
        got = read(names)
        assert got[0] == want[0], names
        for a, b in zip(got[1:], want[1:]):
            np.testing.assert_array_equal(a, b, err_msg=str(names))
    with pytest.raises(MissingPassError, match="Front.Combined"):
        read_frame(path, PassNames().with_overrides(color="Beauty"))
    assert "arnold" in PRESETS and split_channel_name("ViewLayer.Denoising Albedo.R") == ("ViewLayer", "Denoising Albedo", "R")


def test_missing_aux_is_none_and_size_mismatch_is_an_error(tmp_path):
    path = tmp_path / "noaux.exr"
    write_blender_like(path, aux=False)
    frame = read_frame(path)
    assert frame.albedo is None and frame.normal is None
    bad = tmp_path / "mismatch.exr"
    window = {"displayWindow": box(0, 0, 7, 7)}
    color = OpenEXR.Part(dict(window, dataWindow=box(0, 0, 7, 7)), {f"Combined.{c}": np.ones((8, 8), np.float32) for c in "RGB"}, "Combined")
    albedo = OpenEXR.Part(dict(window, dataWindow=box(0, 0, 7, 3)), {f"Albedo.{c}": np.ones((4, 8), np.float32) for c in "RGB"}, "Albedo")
    OpenEXR.File([color, albedo]).write(str(bad))
    with pytest.raises(PassShapeError, match="albedo pass is 8x4"):
        read_frame(bad)


def test_bad_files_are_reported(tmp_path, repo_root):
    """Each broken input is refused with a message that names the file and what is wrong (the
    CLI prints it as it is: tests/test_cli_denoise.py)."""
    text = tmp_path / "notes.exr"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.exr"
    data = (repo_root / "examples" / "suzanne_4spp.exr").read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    depth_only = tmp_path / "depth_only.exr"
    write_exr(depth_only, {"ViewLayer.Depth": np.ones((8, 8), np.float32)}, multipart=True)
    cases = [
        (tmp_path / "missing.exr", InputFileError, "no such file"),
        (text, InputFileError, "not an OpenEXR file"),
        (truncated, InputFileError, "file is incomplete or corrupted"),
        (depth_only, MissingPassError, r"no colour pass found \(looked for 'Noisy Image', 'Combined'.*the file has: ViewLayer\.Depth"),
    ]
    for path, error, message in cases:
        with pytest.raises(error, match=f"^{re.escape(str(path))}: {message}"):
            read_frame(path)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    out = tmp_path / "out.exr"
    shutil.copy(src, out)
    before = out.read_bytes()
    frame = read_frame(src)

    def explode(self, path):
        with open(path, "wb") as fh:
            fh.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(OpenEXR.File, "write", explode)
    with pytest.raises(OutputError, match="could not write"):
        write_with_pass(frame, out, frame.color)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.exr", "out.exr"]
    with pytest.raises(OutputError, match="does not exist"):
        write_with_pass(frame, tmp_path / "nowhere" / "out.exr", frame.color)


def test_outputs_get_normal_permissions(tmp_path):
    src = tmp_path / "in.exr"
    write_blender_like(src)
    frame = read_frame(src)
    out = tmp_path / "out.exr"
    old = os.umask(0o022)
    try:
        write_with_pass(frame, out, frame.color)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    out.chmod(0o640)
    write_with_pass(frame, out, frame.color)
    assert out.stat().st_mode & 0o777 == 0o640


def _chunks(path: Path) -> dict[str, list[bytes]]:
    """Each part's compressed chunks (part index field blanked), by part name."""
    with open(path, "rb") as fh:
        _, parts = splice.read_layout(fh)
        out = {}
        for part in parts:
            chunks = []
            for offset in part.offsets:
                fh.seek(offset + 8)
                (size,) = struct.unpack("<i", fh.read(4))
                fh.seek(offset + 4)
                chunks.append(fh.read(8 + size))
            out[part.name] = chunks
    return out


def test_blender_file_keeps_compressed_parts_byte_for_byte(repo_root, tmp_path, monkeypatch):
    """A multi-part scanline file (Blender's) gets its new part spliced in: the other parts'
    headers and compressed chunks are copied unchanged, and the result decodes to exactly what
    the decode-and-re-encode writer produces."""
    src = tmp_path / "in.exr"
    shutil.copy(repo_root / "examples" / "suzanne_4spp.exr", src)
    frame = read_frame(src, low_memory=True)
    denoised = (frame.color.astype(np.float32) * 0.5).astype(np.float32)
    spliced = tmp_path / "spliced.exr"
    write_with_pass(frame, spliced, denoised)
    before, after = _chunks(src), _chunks(spliced)
    assert list(after) == list(before) + ["ViewLayer.Denoised"]
    for name, chunks in before.items():
        assert after[name] == chunks, name
    with open(src, "rb") as a, open(spliced, "rb") as b:
        headers_a = [p.attrs for p in splice.read_layout(a)[1]]
        headers_b = [p.attrs for p in splice.read_layout(b)[1]]
    assert headers_b[:-1] == headers_a
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch or temp left

    plain = tmp_path / "plain.exr"
    monkeypatch.setattr(write_mod, "_write_spliced", lambda *a, **k: False)
    write_with_pass(read_frame(src, low_memory=True), plain, denoised)
    assert channel_dump(spliced) == channel_dump(plain)
    # and denoising the spliced file again replaces its pass in place of stacking a second one
    monkeypatch.undo()
    again = read_frame(spliced, low_memory=True)
    write_with_pass(again, spliced, denoised * 0.5)
    assert list(_chunks(spliced)) == list(before) + ["ViewLayer.Denoised"]
    np.testing.assert_array_equal(read_frame(spliced, PassNames(color=("Denoised",))).color, (denoised * 0.5).astype(frame.color_dtype))


def test_low_memory_read_decodes_only_the_needed_parts(tmp_path, monkeypatch):
    """Two view layers (8 parts): a low-memory read decodes a temp file holding only the parts
    that may be colour/albedo/normal, yet reads the same pixels, maps the colour part back to its
    index in the real file (the write-back uses it) and names every pass in error messages. The
    parts it does not need (the Depth passes) are decoded one at a time and dropped: the output
    copies them, so they are checked, but never held together."""
    src = tmp_path / "in.exr"
    write_blender_like(src, layers=("Back", "ViewLayer"))
    names = PassNames(layer="ViewLayer")
    full = read_frame(src, names)
    decoded = []
    real_file = OpenEXR.File

    def counting(p, *a, **k):
        if not k.get("header_only"):
            decoded.append((Path(p), len(real_file(p, header_only=True).parts)))
        return real_file(p, *a, **k)

    monkeypatch.setattr(exr_mod.OpenEXR, "File", counting)
    low = read_frame(src, names, low_memory=True)
    monkeypatch.undo()
    assert sorted(parts for _, parts in decoded) == [1, 1, 6]
    assert all(p != src and not p.exists() for p, _ in decoded)  # temp files, removed
    assert len(real_file(str(src), header_only=True).parts) == 8
    np.testing.assert_array_equal(low.color, full.color)
    np.testing.assert_array_equal(low.albedo, full.albedo)
    np.testing.assert_array_equal(low.normal, full.normal)
    assert low.color_part == full.color_part == 4  # ViewLayer.Combined, after Back's four parts
    out = tmp_path / "out.exr"
    write_with_pass(low, out, full.color * 0.5)
    assert set(channel_dump(out)) == set(channel_dump(src)) | {"ViewLayer.Denoised"}
    with pytest.raises(MissingPassError, match=r"Back\.Depth.*ViewLayer\.Denoising Normal|ViewLayer\.Denoising Normal.*Back\.Depth"):
        read_frame(src, PassNames(color=("Denoising Albedo_typo",), layer="ViewLayer"), low_memory=True)
    with pytest.raises(MissingPassError, match=r"Back\.Depth"):
        read_frame(src, PassNames(color=("Depth",), layer="Elsewhere"), low_memory=True)


def _with_manifest(src: Path, dst: Path, manifest: str) -> None:
    """Rewrite ``src`` through the OpenEXR API, as Blender writes a file with a cryptomatte:
    the manifest (JSON, megabytes in a big scene) is a string attribute of the header."""
    f = OpenEXR.File(str(src), separate_channels=True)
    parts = []
    for index, part in enumerate(f.parts):
        head = {k: v for k, v in part.header.items() if k not in ("channels", "chunkCount")}
        if index == 0:
            head["cryptomatte/f834d0a/manifest"] = manifest
        parts.append(OpenEXR.Part(head, {n: OpenEXR.Channel(c.pixels) for n, c in part.channels.items()}, part.name()))
    OpenEXR.File(parts).write(str(dst))


def test_an_open_reads_the_headers_once_and_a_read_decodes_once(tmp_path, monkeypatch):
    """Every check of an open (window sizes, chunk tables) works from one read of the headers,
    which a header-only open returns; a read adds one decode. Headers can be megabytes."""
    src = tmp_path / "in.exr"
    write_blender_like(src, h=24, w=32)
    opened = []
    real = OpenEXR.File
    monkeypatch.setattr(OpenEXR, "File", lambda *a, **k: opened.append(k.get("header_only", False)) or real(*a, **k))
    headers = exr_mod.open_exr(src, header_only=True)
    assert "ViewLayer.Combined" in [part.name() for part in headers.parts] and opened == [True]
    opened.clear()
    read_frame(src)
    assert opened == [True, False]


def test_header_larger_than_a_mebibyte_is_read_denoised_and_kept(tmp_path, cli):
    """A 1.5 MB string attribute puts the chunk tables past the first MiB: the file is whole, is
    denoised through the CLI into a whole output that keeps the attribute, and a copy cut short
    (inside the header, or in its last chunk) is still refused."""
    plain = tmp_path / "plain.exr"
    write_blender_like(plain, h=24, w=32)
    manifest = json.dumps({f"object_{i:06d}": f"{i * 2654435761 % 2**32:08x}" for i in range(55_000)})
    assert 1_400_000 < len(manifest) < 1_600_000
    src = tmp_path / "in.exr"
    _with_manifest(plain, src, manifest)
    with open(src, "rb") as fh:
        layout = header.read_layout(fh)
    assert min(min(p.offsets) for p in layout.parts) > 1 << 20  # tables and chunks start past 1 MiB
    assert layout.parts[0].attr(b"cryptomatte/f834d0a/manifest") == manifest.encode()
    np.testing.assert_array_equal(read_frame(src).color, read_frame(plain).color)

    out = tmp_path / "out.exr"
    code, _, err = cli("denoise", src, "-o", out, "--device", "cpu")
    assert code == 0, err
    result = exr_mod.open_exr(out)  # refuses a file cut short
    assert result.parts[0].header["cryptomatte/f834d0a/manifest"] == manifest
    assert read_frame(out, PassNames(color=("Denoised",))).color.shape == (24, 32, 3)

    data = src.read_bytes()
    for cut in (1 << 20, len(data) - 10):
        truncated = tmp_path / f"cut_{cut}.exr"
        truncated.write_bytes(data[:cut])
        with pytest.raises(InputFileError, match="incomplete or corrupted"):
            read_frame(truncated)


@pytest.mark.parametrize("field", [b"compression\0compression\0", b"chunkCount\0int\0"])
def test_impossible_sizes_in_a_header_are_parse_errors(tmp_path, field):
    """A corrupted attribute size or chunk count is refused before anything that size is read."""
    src = tmp_path / "in.exr"
    write_blender_like(src)
    data = bytearray(src.read_bytes())
    at = data.index(field) + len(field)
    if field.startswith(b"chunkCount"):
        at += 4  # past the attribute's size, to its value
    data[at : at + 4] = struct.pack("<i", 2**31 - 1)
    bad = tmp_path / "bad.exr"
    bad.write_bytes(bytes(data))
    with open(bad, "rb") as fh, pytest.raises(header.HeaderError, match="does not fit"):
        header.read_layout(fh)
    with pytest.raises(InputFileError, match="incomplete or corrupted"):
        read_frame(bad)
