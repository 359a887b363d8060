"""Writing EXRs: a new file from arrays, or a copy of a read frame's file with one pass added.

Writing back reproduces every original part, channel, pixel type, compression and header
attribute of the file the frame was read from and only *adds* the denoised pass: a pipeline must
never lose an AOV because it went through the denoiser. Every write goes through
:func:`mcdenoise.io.atomic.atomic_output`, so a killed process leaves either the old file or the
complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.errors import InputFileError, OutputError, PassShapeError
from mcdenoise.io import splice
from mcdenoise.io.atomic import atomic_output, temp_path
from mcdenoise.io.exr import WRITTEN_BY, Frame, open_exr
from mcdenoise.io.passes import RGB, XYZ, join_channel_name, split_channel_name

_HEADER_KEYS_SET_BY_WRITER = ("channels", "chunkCount")


def _copy_header(header: dict) -> dict:
    return {k: v for k, v in header.items() if k not in _HEADER_KEYS_SET_BY_WRITER}


def _channel_copy(ch: "OpenEXR.Channel") -> "OpenEXR.Channel":
    return OpenEXR.Channel(ch.pixels, ch.xSampling, ch.ySampling, ch.pLinear)


def _write_parts(parts: list["OpenEXR.Part"], path: Path) -> None:
    with atomic_output(path) as tmp:
        _write_parts_to(OpenEXR.File(parts), tmp, path)


def _write_parts_to(file: "OpenEXR.File", tmp: Path, path: Path) -> None:
    try:
        file.write(str(tmp))
    except OSError:
        raise
    except Exception as exc:
        raise OutputError(f"{path}: OpenEXR could not write the file ({exc})") from exc


def check_pass_name(frame: Frame, pass_name: str) -> None:
    """Refuse an output pass name that is empty (the pass's channels would become the layer's
    bare R, G, B) or that names a pass the file already has in the frame's layer, unless
    mcdenoise wrote that pass (:data:`~mcdenoise.io.exr.WRITTEN_BY`).

    The writer replaces a pass of the output's name, so that denoising an output again does not
    stack passes; for any other pass that would replace the renderer's data (``Combined``, alpha
    included, or ``Depth``) with the denoised RGB. Names are compared in any case, as the pass
    lookup matches them, so ``depth`` beside ``Depth`` is refused too."""
    if not pass_name.strip() or "." in pass_name:
        raise OutputError(f"{frame.path}: output pass name {pass_name!r} is empty or holds a '.'; "
                          "the denoised pass needs a plain name of its own")
    feature = frame.input_pass(pass_name)
    if feature is not None:
        read_as = "colour" if feature == "color" else feature
        raise OutputError(
            f"{frame.path}: pass name {pass_name!r} is the frame's {read_as} pass "
            f"({join_channel_name(frame.layer, frame.passes[feature], '') or 'plain RGB'}), which the denoised pass "
            "would replace; the denoised pass needs a name of its own"
        )
    theirs = [name for (layer, name), ours in frame.file_passes.items()
              if layer == frame.layer and name.lower() == pass_name.lower() and not ours]
    if theirs:
        raise OutputError(
            f"{frame.path}: pass name {pass_name!r} is the file's own pass {join_channel_name(frame.layer, theirs[0], '')!r}, "
            "which the denoised pass would replace; the denoised pass needs a name of its own"
        )


def _marked(header: dict, written: str) -> dict:
    """``header`` with ``written`` ("layer.pass") added to the passes mcdenoise wrote into its
    part."""
    listed = [name for name in str(header.get(WRITTEN_BY, "")).splitlines() if name and name != written]
    return {**header, WRITTEN_BY: "\n".join([*listed, written])}


def write_with_pass(
    frame: Frame,
    out_path: str | os.PathLike,
    rgb: np.ndarray,
    pass_name: str = "Denoised",
) -> None:
    """Write a copy of ``frame``'s file with ``rgb`` added as pass ``pass_name`` in its layer.

    Multi-part files get a new part named like Blender's ("ViewLayer.Denoised"); single-part
    files get the channels added to the colour's part. An existing pass of the same name is
    replaced, so denoising twice does not stack passes, unless it is one of the passes the
    frame was read from (:func:`check_pass_name`). The pass uses the colour's pixel type.
    Multi-part scanline files (Blender's) keep the other parts' compressed bytes as they are
    (:mod:`mcdenoise.io.splice`); other files are decoded and re-encoded whole.
    """
    out_path = Path(out_path)
    check_pass_name(frame, pass_name)
    source = frame.source if frame.source is not None else open_exr(frame.path, header_only=True)
    (x0, y0), (x1, y1) = source.parts[frame.color_part].header["dataWindow"]
    h, w = int(y1 - y0 + 1), int(x1 - x0 + 1)
    if rgb.shape != (h, w, 3):
        raise PassShapeError(f"{out_path}: denoised image is {rgb.shape}, expected {(h, w, 3)}")
    pixels = [np.ascontiguousarray(rgb[..., i], dtype=frame.color_dtype) for i in range(3)]
    new_channels = {
        join_channel_name(frame.layer, pass_name, comp): OpenEXR.Channel(px) for comp, px in zip(RGB, pixels)
    }
    multipart = len(source.parts) > 1 or frame.layer != ""
    written = join_channel_name(frame.layer, pass_name, "")
    if multipart and _write_spliced(frame, source, out_path, new_channels, written):
        return
    if frame.source is None:
        source = open_exr(frame.path)
    parts = []
    for index, part in enumerate(source.parts):
        kept = {
            name: _channel_copy(ch)
            for name, ch in part.channels.items()
            if split_channel_name(name)[:2] != (frame.layer, pass_name)
        }
        header = _copy_header(part.header)
        if not multipart and index == frame.color_part:
            kept.update(new_channels)
            header = _marked(header, written)
        if kept:
            parts.append(OpenEXR.Part(header, kept, part.name()))
    if multipart:
        header = _copy_header(source.parts[frame.color_part].header)
        header["name"] = written
        header[WRITTEN_BY] = written
        parts.append(OpenEXR.Part(header, new_channels, written))
    _write_parts(parts, out_path)


def _write_spliced(frame: Frame, source: "OpenEXR.File", out_path: Path, new_channels: dict, written: str) -> bool:
    """Write the new pass (``written``: "layer.pass") as an extra part next to the source's
    untouched compressed parts; False (nothing written) when the file's layout needs the plain
    writer."""
    drop = set()
    for part in source.parts:
        names = [ch.name for ch in part.header.get("channels", [])]
        replaced = [n for n in names if join_channel_name(*split_channel_name(n)[:2], "") == written]
        if replaced and len(replaced) != len(names):
            return False  # the old pass shares a part with other channels
        if replaced:
            drop.add(part.name())
    try:
        with open(frame.path, "rb") as fh:
            splice.read_layout(fh)
    except (splice.NotSpliceable, struct.error, OSError):
        return False
    name = written
    header = {**_copy_header(source.parts[frame.color_part].header), "name": name, WRITTEN_BY: written}
    # OpenEXR writes chunkCount (which the splice needs) only in multi-part files: a 1-pixel
    # second part (sharing the attributes parts must agree on) makes the scratch file one.
    origin = np.asarray(header["dataWindow"][0], np.int32)
    spacer_header = {**header, "name": "spacer", "dataWindow": (origin, origin.copy()), "compression": OpenEXR.NO_COMPRESSION}
    spacer = OpenEXR.Part(spacer_header, {"spacer.Y": OpenEXR.Channel(np.zeros((1, 1), np.float16))}, "spacer")
    with atomic_output(out_path) as tmp:
        scratch = temp_path(out_path)  # a temp of the target too, so a killed run's is removed
        try:
            _write_parts_to(OpenEXR.File([OpenEXR.Part(header, new_channels, name), spacer]), scratch, out_path)
            splice.splice(frame.path, drop, scratch, tmp)
        except splice.NotSpliceable as exc:
            raise InputFileError(f"{frame.path}: {exc}; re-render or re-copy it") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
    return True


def write_exr(
    path: str | os.PathLike,
    layers: dict[str, np.ndarray],
    header: dict | None = None,
    multipart: bool = False,
) -> None:
    """Write named (H, W, C) or (H, W) arrays to a new EXR, atomically.

    ``layers`` maps a pass prefix to an array: ``{"ViewLayer.Combined": rgba, ...}`` gives
    channels "ViewLayer.Combined.R/G/B/A"; a key "" gives plain "R/G/B(/A)". With ``multipart``
    each pass gets its own part, like Blender's multilayer output. Components are RGBA for 3–4
    channels, XYZ for normals (keys containing "Normal"), Z/Y for single channels.
    """
    parts: list[tuple[str, dict]] = []
    for prefix, arr in layers.items():
        arr = np.asarray(arr)
        if arr.dtype not in (np.float16, np.float32, np.uint32):
            arr = arr.astype(np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        n = arr.shape[-1]
        if n == 1:
            comps: tuple[str, ...] = ("Z",) if "depth" in prefix.lower() else ("Y",)
        elif "normal" in prefix.lower() and n == 3:
            comps = XYZ
        else:
            comps = ("R", "G", "B", "A")[:n]
        chans = {(f"{prefix}.{c}" if prefix else c): np.ascontiguousarray(arr[..., i]) for i, c in enumerate(comps)}
        parts.append((prefix, chans))
    base = dict(header or {})
    base.setdefault("compression", OpenEXR.ZIP_COMPRESSION)
    if multipart:
        out = []
        for prefix, chans in parts:
            h = dict(base)
            h["name"] = prefix or "rgba"
            out.append(OpenEXR.Part(h, chans, prefix or "rgba"))
    else:
        merged: dict = {}
        for _, chans in parts:
            merged.update(chans)
        out = [OpenEXR.Part(base, merged, "")]
    _write_parts(out, Path(path))
