"""The one EXR reader/writer of mcdenoise (CLI, add-on, training, benchmarks all go through it).

Reading keeps the whole ``OpenEXR.File`` so that writing back can reproduce every original part,
channel, pixel type, compression and header attribute and only *add* the denoised pass: a
pipeline must never lose an AOV because it went through the denoiser. Every write goes to a
temp file in the destination folder and is renamed into place, so a killed process leaves
either the old file or the complete new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.io import splice
from mcdenoise.errors import InputFileError, MissingPassError, OutputError, PassShapeError
from mcdenoise.io.passes import RGB, XYZ, PassNames, join_channel_name, split_channel_name

EXR_MAGIC = b"\x76\x2f\x31\x01"
_HEADER_KEYS_SET_BY_WRITER = ("channels", "chunkCount")


@dataclass
class Frame:
    """The passes the denoiser needs, as float32 (H, W, C) arrays, plus what is needed to write
    a new pass next to them. ``albedo``/``normal`` are None when the file has no such pass.
    ``source`` is None for a frame read with ``low_memory`` (the file is re-read when writing)."""

    path: Path
    source: OpenEXR.File | None
    color: np.ndarray
    albedo: np.ndarray | None
    normal: np.ndarray | None
    alpha: np.ndarray | None
    layer: str
    color_part: int
    color_dtype: np.dtype

    @property
    def shape(self) -> tuple[int, int]:
        return self.color.shape[:2]


@dataclass
class _Pass:
    part: int
    layer: str
    name: str
    channels: dict[str, "OpenEXR.Channel"]  # component (upper-case) -> channel


# --------------------------------------------------------------------------- reading


def open_exr(path: str | os.PathLike, header_only: bool = False) -> "OpenEXR.File":
    """Open an EXR with all pixel data, refusing missing, non-EXR and truncated files.

    OpenEXR only prints a warning for a truncated file and hands back zeros or drops parts,
    which would silently turn a broken frame into a black one; the chunk tables are checked
    first so such a file is reported instead. ``header_only`` does the same checks without
    decoding pixels, which is how a batch tells a finished output from a broken one cheaply.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, expected an .exr file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if magic != EXR_MAGIC:
        raise InputFileError(f"{path}: not an OpenEXR file (wrong magic number); expected a .exr render")
    problem = _truncation_problem(path)
    if problem:
        raise InputFileError(f"{path}: file is incomplete or corrupted ({problem}); re-render or re-copy it")
    try:
        if header_only:
            return OpenEXR.File(str(path), header_only=True)
        return OpenEXR.File(str(path), separate_channels=True)
    except Exception as exc:  # OpenEXR raises bare RuntimeError/ValueError
        raise InputFileError(f"{path}: cannot decode EXR ({exc})") from exc


def _read_cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _truncation_problem(path: Path) -> str | None:
    """Return why the file's chunk offset table points outside the file, or None if it is whole.

    Layout (OpenEXR file format spec): magic, version, header(s) of attributes ending in a NUL,
    an extra NUL after the headers of a multi-part file, then one uint64 offset per chunk.
    """
    size = path.stat().st_size
    try:
        headers = OpenEXR.File(str(path), header_only=True).parts
    except Exception as exc:
        return f"unreadable header: {exc}"
    with open(path, "rb") as fh:
        data = fh.read(min(size, 1 << 20))
    try:
        (version,) = struct.unpack_from("<i", data, 4)
        multipart = bool(version & 0x1000)
        deep = bool(version & 0x800)
        pos = 8
        for _ in range(len(headers)):
            while True:
                name, pos = _read_cstr(data, pos)
                if not name:
                    break
                _, pos = _read_cstr(data, pos)
                (n,) = struct.unpack_from("<i", data, pos)
                pos += 4 + n
        if multipart:
            pos += 1
        for index, part in enumerate(headers):
            count = int(part.header.get("chunkCount", 0))
            if count <= 0:
                continue
            offsets = np.frombuffer(data, dtype="<u8", count=count, offset=pos)
            pos += 8 * count
            if np.any(offsets == 0) or np.any(offsets >= size):
                return f"part {index} has chunks past the end of the file"
            if deep or "deep" in str(part.header.get("type", "")):
                continue
            last = int(offsets.max())
            with open(path, "rb") as fh:
                fh.seek(last)
                lead = fh.read(28)
            skip = 4 if multipart else 0
            tiled = "tiled" in str(part.header.get("type", "")) or bool(version & 0x200)
            skip += 16 if tiled else 4
            if len(lead) < skip + 4:
                return f"part {index}: last chunk cut off"
            (n,) = struct.unpack_from("<i", lead, skip)
            if last + skip + 4 + n > size:
                return f"part {index}: last chunk cut off"
    except (ValueError, struct.error, IndexError):
        return "unreadable chunk table"
    return None


def _find_pass(source: "OpenEXR.File", candidates: tuple[str, ...], layer: str | None, components: tuple) -> _Pass | None:
    """First pass (in candidate order) that has all ``components``, optionally in one layer."""
    found: dict[tuple[str, str], _Pass] = {}
    order: list[tuple[str, str]] = []
    for index, part in enumerate(source.parts):
        for full, channel in part.channels.items():
            lay, name, comp = split_channel_name(full)
            key = (lay, name.lower())
            if key not in found:
                found[key] = _Pass(index, lay, name, {})
                order.append(key)
            found[key].channels[comp.upper()] = channel
    for candidate in candidates:
        for key in order:
            p = found[key]
            if layer is not None and p.layer != layer:
                continue
            if p.name.lower() != candidate.lower():
                continue
            for comps in (components, RGB, XYZ):
                if all(c in p.channels for c in comps):
                    return p
    return None


def _stack(p: _Pass, comps: tuple[str, ...], path: Path, keep_half: bool = False) -> np.ndarray:
    for trial in (comps, RGB, XYZ):
        if all(c in p.channels for c in trial):
            comps = trial
            break
    for c in comps:
        ch = p.channels[c]
        if ch.xSampling != 1 or ch.ySampling != 1:
            raise PassShapeError(f"{path}: pass {p.name!r} is subsampled; mcdenoise needs full-resolution passes")
    planes = [p.channels[c].pixels for c in comps]
    dtype = np.float16 if keep_half and all(px.dtype == np.float16 for px in planes) else np.float32
    return np.stack([np.asarray(px, dtype=dtype) for px in planes], axis=-1)


def _release(source: "OpenEXR.File", p: _Pass) -> None:
    """Drop a pass's pixels from ``source`` once they are copied out, so a low-memory read
    never holds a pass twice."""
    channels = source.parts[p.part].channels
    held = {id(ch) for ch in p.channels.values()}
    for name in [n for n, ch in channels.items() if id(ch) in held]:
        del channels[name]
    p.channels.clear()


def available_passes(source: "OpenEXR.File") -> list[str]:
    """Human-readable list of the passes in a file (header-only or not), for error messages."""
    names = []
    for part in source.parts:
        for full in (ch.name for ch in part.header.get("channels", [])):
            lay, name, _ = split_channel_name(full)
            label = ".".join(x for x in (lay, name) if x) or "(plain RGBA)"
            if label not in names:
                names.append(label)
    return names


def read_frame(path: str | os.PathLike, names: PassNames = PassNames(), *, low_memory: bool = False) -> Frame:
    """Read colour (required), alpha, albedo and normal (optional) of one frame.

    ``low_memory`` keeps half-float passes as float16 (exact: every half is a float32, and the
    HDR transform converts tile by tile), skips alpha and drops the rest of the file until it
    is written back, so an 8K frame costs ~20 bytes a pixel instead of ~80 between read and write.
    """
    path = Path(path)
    if low_memory:
        with _needed_parts_only(path, names) as (decodable, part_index):
            source = open_exr(path) if decodable == path else _decode(decodable, path)
    else:
        source, part_index = open_exr(path), None
    color = _find_pass(source, names.color, names.layer, RGB)
    if color is None:
        everything = source if part_index is None else open_exr(path, header_only=True)
        raise MissingPassError(
            f"{path}: no colour pass found (looked for {', '.join(repr(c) for c in names.color)}"
            + (f" in layer {names.layer!r}" if names.layer else "")
            + f"); the file has: {', '.join(available_passes(everything)) or 'no channels'}. "
            "Name the pass with --color-pass, or pick another --pass-preset"
        )
    color_dtype = np.dtype(next(iter(color.channels.values())).pixels.dtype)
    rgb = _stack(color, RGB, path, low_memory)
    alpha = None
    if "A" in color.channels and not low_memory:
        alpha = _stack(_Pass(color.part, color.layer, color.name, {"A": color.channels["A"]}), ("A",), path, low_memory)[..., 0]
    if low_memory:
        _release(source, color)
    albedo_pass = _find_pass(source, names.albedo, color.layer, RGB)
    albedo = _stack(albedo_pass, RGB, path, low_memory) if albedo_pass else None
    if low_memory and albedo_pass:
        _release(source, albedo_pass)
    normal_pass = _find_pass(source, names.normal, color.layer, XYZ)
    normal = _stack(normal_pass, XYZ, path, low_memory) if normal_pass else None
    if low_memory and normal_pass:
        _release(source, normal_pass)
    for label, arr in (("albedo", albedo), ("normal", normal)):
        if arr is not None and arr.shape[:2] != rgb.shape[:2]:
            raise PassShapeError(
                f"{path}: {label} pass is {arr.shape[1]}x{arr.shape[0]} but colour is "
                f"{rgb.shape[1]}x{rgb.shape[0]}; re-render so all passes share one data window"
            )
    return Frame(
        path=path,
        source=None if low_memory else source,
        color=rgb,
        albedo=albedo,
        normal=normal,
        alpha=alpha,
        layer=color.layer,
        color_part=color.part if part_index is None else part_index[source.parts[color.part].name()],
        color_dtype=color_dtype,
    )


def _decode(decodable: Path, path: Path) -> "OpenEXR.File":
    try:
        return OpenEXR.File(str(decodable), separate_channels=True)
    except Exception as exc:
        raise InputFileError(f"{path}: cannot decode EXR ({exc})") from exc


@contextlib.contextmanager
def _needed_parts_only(path: Path, names: PassNames) -> Iterator[tuple[Path, dict[str, int] | None]]:
    """The file to decode for a low-memory read, and part name -> index in ``path``.

    A render with dozens of AOV parts (light groups, cryptomattes) would be decoded whole just to
    read three passes: on an 8K frame that is gigabytes and seconds. When the file is multi-part
    scanline, the parts that may hold the colour, albedo or normal pass are copied, still
    compressed, into a temp file and only that is decoded. Anything else decodes ``path``.
    """
    header = open_exr(path, header_only=True)
    index = {part.name(): i for i, part in enumerate(header.parts)}
    wanted = {n.lower() for n in (*names.color, *names.albedo, *names.normal)}
    keep = {
        part.name() for part in header.parts
        if any(split_channel_name(ch.name)[1].lower() in wanted for ch in part.header.get("channels", []))
    }
    if len(header.parts) < 2 or not keep or len(keep) == len(header.parts):
        yield path, index
        return
    fd, tmp = tempfile.mkstemp(prefix="mcdenoise-read-", suffix=".exr")
    os.close(fd)
    try:
        try:
            splice.splice(path, set(index) - keep, None, Path(tmp))
        except (splice.NotSpliceable, struct.error, OSError):  # odd layout, or no room in the temp folder
            yield path, index
            return
        yield Path(tmp), index
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{path}: output folder {folder} is not writable; choose another --out-dir")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); the output must get the permissions any new
        # file would (umask), or those of the file it replaces, so farm users can read it.
        os.chmod(tmp_path, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); check free space and permissions") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def write_with_pass(
    frame: Frame,
    out_path: str | os.PathLike,
    rgb: np.ndarray,
    pass_name: str = "Denoised",
) -> None:
    """Write a copy of ``frame``'s file with ``rgb`` added as pass ``pass_name`` in its layer.

    Multi-part files get a new part named like Blender's ("ViewLayer.Denoised"); single-part
    files get the channels added to the colour's part. An existing pass of the same name is
    replaced, so denoising twice does not stack passes. The pass uses the colour's pixel type.
    Multi-part scanline files (Blender's) keep the other parts' compressed bytes as they are
    (:mod:`mcdenoise.io.splice`); other files are decoded and re-encoded whole.
    """
    out_path = Path(out_path)
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
    if multipart and _write_spliced(frame, source, out_path, new_channels, pass_name):
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
        if not multipart and index == frame.color_part:
            kept.update(new_channels)
        if kept:
            parts.append(OpenEXR.Part(_copy_header(part.header), kept, part.name()))
    if multipart:
        header = _copy_header(source.parts[frame.color_part].header)
        name = join_channel_name(frame.layer, pass_name, "")
        header["name"] = name
        parts.append(OpenEXR.Part(header, new_channels, name))
    _write_parts(parts, out_path)


def _write_spliced(frame: Frame, source: "OpenEXR.File", out_path: Path, new_channels: dict, pass_name: str) -> bool:
    """Write the new pass as an extra part next to the source's untouched compressed parts;
    False (nothing written) when the file's layout needs the plain writer."""
    drop = set()
    for part in source.parts:
        names = [ch.name for ch in part.header.get("channels", [])]
        replaced = [n for n in names if split_channel_name(n)[:2] == (frame.layer, pass_name)]
        if replaced and len(replaced) != len(names):
            return False  # the old pass shares a part with other channels
        if replaced:
            drop.add(part.name())
    try:
        with open(frame.path, "rb") as fh:
            splice.read_layout(fh)
    except (splice.NotSpliceable, struct.error, OSError):
        return False
    name = join_channel_name(frame.layer, pass_name, "")
    header = _copy_header(source.parts[frame.color_part].header)
    header["name"] = name
    # OpenEXR writes chunkCount (which the splice needs) only in multi-part files: a 1-pixel
    # second part (sharing the attributes parts must agree on) makes the scratch file one.
    origin = np.asarray(header["dataWindow"][0], np.int32)
    spacer_header = {**header, "name": "spacer", "dataWindow": (origin, origin.copy()), "compression": OpenEXR.NO_COMPRESSION}
    spacer = OpenEXR.Part(spacer_header, {"spacer.Y": OpenEXR.Channel(np.zeros((1, 1), np.float16))}, "spacer")
    with atomic_output(out_path) as tmp:
        scratch = tmp.with_name(tmp.name.replace(".tmp", ".pass.tmp"))  # matches the stale-temp pattern too
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
