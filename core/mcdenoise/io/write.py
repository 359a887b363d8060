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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.errors import InputFileError, OutputError, PassShapeError
from mcdenoise.io import splice
from mcdenoise.io.atomic import atomic_output, temp_path
from mcdenoise.io.exr import WRITTEN_BY, Frame, open_exr, part_views, views
from mcdenoise.io.passes import RGB, XYZ, channel_view, join_channel_name, split_channel_name

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
    write_with_passes([(frame, rgb)], out_path, pass_name)


def write_with_passes(
    results: list[tuple[Frame, np.ndarray]],
    out_path: str | os.PathLike,
    pass_name: str = "Denoised",
) -> None:
    """:func:`write_with_pass` for several frames read from one file (the views of a stereo
    file), all written at once, so the output never holds one view's new pass without the other's.

    Each view's pass goes where the file keeps that view's passes: a part of its own carrying the
    colour part's ``view`` attribute and named like Blender's ("ViewLayer.Denoised-left"), or, in
    a single-part file with a ``multiView`` list, channels named with the view
    ("ViewLayer.Denoised.left.R") in that part: Blender reads the list only from a file of one part.
    """
    out_path = Path(out_path)
    frame = results[0][0]
    if any(f.path != frame.path for f, _ in results):
        raise ValueError("write_with_passes: frames of different files")
    for f, _ in results:
        check_pass_name(f, pass_name)
    source = frame.source if frame.source is not None else open_exr(frame.path, header_only=True)
    in_part = bool(part_views(source.parts[frame.color_part].header)[1])  # single-part multi-view
    multipart = (len(source.parts) > 1 or frame.layer != "") and not in_part
    new = [_new_pass(f, source, rgb, pass_name, out_path, in_part) for f, rgb in results]
    if multipart and _write_spliced(frame.path, source, out_path, new):
        return
    if frame.source is None:
        source = open_exr(frame.path)
    replaced = {(f.view, f.layer, pass_name) for f, _ in results}
    parts = []
    for index, part in enumerate(source.parts):
        kept = {
            name: _channel_copy(ch)
            for name, ch in part.channels.items()
            if _pass_of(name, part.header) not in replaced
        }
        header = _copy_header(part.header)
        if not multipart and index == frame.color_part:
            for p in new:
                kept.update(p.channels)
                header = _marked(header, p.written)
        if kept:
            parts.append(OpenEXR.Part(header, kept, part.name()))
    if multipart:
        parts += [OpenEXR.Part(p.header, p.channels, p.header["name"]) for p in new]
    _write_parts(parts, out_path)


@dataclass
class _NewPass:
    channels: dict[str, "OpenEXR.Channel"]
    header: dict  # the header of its own part (multi-part files)
    written: str  # "layer.pass", as WRITTEN_BY lists it
    view: str  # the part's view attribute ("" for none)


def _new_pass(frame: Frame, source: "OpenEXR.File", rgb: np.ndarray, pass_name: str, out_path: Path,
              in_part: bool) -> _NewPass:
    color_header = source.parts[frame.color_part].header
    (x0, y0), (x1, y1) = color_header["dataWindow"]
    h, w = int(y1 - y0 + 1), int(x1 - x0 + 1)
    if rgb.shape != (h, w, 3):
        raise PassShapeError(f"{out_path}: denoised image is {rgb.shape}, expected {(h, w, 3)}")
    pixels = [np.ascontiguousarray(rgb[..., i], dtype=frame.color_dtype) for i in range(3)]
    view_in_name = frame.view if in_part else ""
    channels = {
        join_channel_name(frame.layer, pass_name, comp, view_in_name): OpenEXR.Channel(px) for comp, px in zip(RGB, pixels)
    }
    written = join_channel_name(frame.layer, pass_name, "")
    part_view = part_views(color_header)[0]
    name = f"{written}-{part_view}" if part_view else written
    return _NewPass(channels, {**_copy_header(color_header), "name": name, WRITTEN_BY: written}, written, part_view)


def _pass_of(channel: str, header: dict) -> tuple[str, str, str]:
    """(view, layer, pass) of a channel of a part with this header."""
    view, name = channel_view(channel, *part_views(header))
    return (view, *split_channel_name(name)[:2])


def _write_spliced(path: Path, source: "OpenEXR.File", out_path: Path, new: list[_NewPass]) -> bool:
    """Write the new passes as extra parts next to the source's untouched compressed parts;
    False (nothing written) when the file's layout needs the plain writer."""
    replaced = {(p.view, p.written) for p in new}
    drop = set()
    for part in source.parts:
        names = [ch.name for ch in part.header.get("channels", [])]
        view = part_views(part.header)[0]
        old = [n for n in names if (view, join_channel_name(*split_channel_name(n)[:2], "")) in replaced]
        if old and len(old) != len(names):
            return False  # the old pass shares a part with other channels
        if old:
            drop.add(part.name())
    try:
        with open(path, "rb") as fh:
            splice.read_layout(fh)
    except (splice.NotSpliceable, struct.error, OSError):
        return False
    # OpenEXR writes chunkCount (which the splice needs) only in multi-part files: a 1-pixel
    # extra part (sharing the attributes parts must agree on) makes the scratch file one.
    header = new[0].header
    origin = np.asarray(header["dataWindow"][0], np.int32)
    spacer_header = {**header, "name": "spacer", "dataWindow": (origin, origin.copy()), "compression": OpenEXR.NO_COMPRESSION}
    spacer = OpenEXR.Part(spacer_header, {"spacer.Y": OpenEXR.Channel(np.zeros((1, 1), np.float16))}, "spacer")
    with atomic_output(out_path) as tmp:
        scratch = temp_path(out_path)  # a temp of the target too, so a killed run's is removed
        try:
            parts = [OpenEXR.Part(p.header, p.channels, p.header["name"]) for p in new]
            _write_parts_to(OpenEXR.File([*parts, spacer]), scratch, out_path)
            splice.splice(path, drop, scratch, tmp, extra_parts=len(parts))
        except splice.NotSpliceable as exc:
            raise InputFileError(f"{path}: {exc}; re-render or re-copy it") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
    return True


def join_views(files: dict[str, Path], out_path: str | os.PathLike) -> None:
    """Write one stereo (multi-view) EXR from a file per view (``{view: path}``, the default
    view first): each part of each file becomes a part with a ``view`` attribute, named as
    Blender 5.0 names the parts of its stereo files ("ViewLayer.Combined-left").

    Blender's ``save_render`` writes a stereo Render Result only as a file per view; joined, the
    views are denoised as those of a stereo render saved as one file."""
    parts = []
    for view, path in files.items():
        source = open_exr(path)
        if views(source):
            raise InputFileError(f"{path}: already holds several views; expected one file per view")
        for part in source.parts:
            name = f"{part.name()}-{view}" if part.name() else view
            header = {**_copy_header(part.header), "name": name, "view": view}
            parts.append(OpenEXR.Part(header, {n: _channel_copy(ch) for n, ch in part.channels.items()}, name))
    _write_parts(parts, Path(out_path))


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
