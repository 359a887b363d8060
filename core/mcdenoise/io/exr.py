"""The one EXR reader of mcdenoise (CLI, add-on, training, benchmarks all go through it).

Reading keeps the whole ``OpenEXR.File`` so that writing back (:mod:`mcdenoise.io.write`) can
reproduce every original part, channel, pixel type, compression and header attribute and only
*add* the denoised pass. Damaged files are refused here, never read as something else: OpenEXR
turns a file cut short into zeros and silently drops a part whose pixels fail to decode (only
printing a warning), which would make a broken frame black, or colour-only, or another layer's.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenEXR

from mcdenoise.errors import InputFileError, MissingPassError, PassShapeError
from mcdenoise.io import atomic, header, splice
from mcdenoise.features import AUX_FEATURES, COLOR, FEATURES
from mcdenoise.io.passes import PassNames, channel_view, file_views, join_channel_name, split_channel_name


# The largest side of a data window read: above any camera or render, below sizes whose
# offset tables and planes alone would exhaust a machine.
MAX_SIDE = 65536
# The low-memory read's temp copy is named by io.atomic's owner rule after this, in the system
# temp folder, so a run removes those a killed run left.
READ_TEMP_NAME = "mcdenoise-read.exr"
# A string attribute of each part mcdenoise writes a pass into: the passes in that part that
# mcdenoise wrote ("layer.pass", one a line). A later run may replace those, and no other pass:
# an AOV of the renderer's that happens to share the name (--pass-name Depth) is never lost,
# while denoising an output again replaces its own Denoised pass instead of refusing.
WRITTEN_BY = header.WRITTEN_BY


@dataclass
class Frame:
    """The passes the denoiser needs, as float32 (H, W, C) arrays, plus what is needed to write
    a new pass next to them. ``albedo``/``normal``/``vector`` (one field per input feature) are
    None when the file has no such pass or it was not asked for.
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
    vector: np.ndarray | None = None
    passes: dict[str, str] = field(default_factory=dict)  # feature -> the pass name read for it
    # (layer, pass name) of every pass in the file -> whether mcdenoise wrote it (WRITTEN_BY)
    file_passes: dict[tuple[str, str], bool] = field(default_factory=dict)
    view: str = ""  # the view of a stereo (multi-view) file the passes are of; "" in a file of one view
    samples: int | None = None  # samples per pixel Blender stamped for the colour's view layer (render_samples)

    def input_pass(self, pass_name: str) -> str | None:
        """The feature whose pass is named ``pass_name`` (as the lookup matches names: any
        case), or None."""
        return next((feature for feature, name in self.passes.items() if name.lower() == pass_name.lower()), None)

    @property
    def shape(self) -> tuple[int, int]:
        return self.color.shape[:2]


@dataclass
class _Pass:
    part: int
    layer: str
    name: str
    channels: dict[str, "OpenEXR.Channel"]  # component (upper-case) -> channel
    view: str = ""


# --------------------------------------------------------------------------- reading


def open_exr(path: str | os.PathLike, header_only: bool = False) -> "OpenEXR.File":
    """Open an EXR with all pixel data, refusing missing, non-EXR and truncated files.

    OpenEXR only prints a warning for a truncated file and hands back zeros or drops parts,
    which would silently turn a broken frame into a black one; the chunk tables are checked
    first so such a file is reported instead. ``header_only`` does the same checks without
    decoding pixels, which is how a batch tells a finished output from a broken one cheaply.
    """
    path = Path(path)
    check_regular_file(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if magic != header.MAGIC:
        raise InputFileError(f"{path}: not an OpenEXR file (wrong magic number); expected a .exr render")
    try:  # the headers, read once for the checks and a header-only open
        headers = OpenEXR.File(str(path), header_only=True)
    except Exception as exc:  # OpenEXR raises bare RuntimeError/ValueError
        raise InputFileError(f"{path}: file is incomplete or corrupted (unreadable header: {exc}); "
                             "re-render or re-copy it") from exc
    problem = _implausible_window(headers)
    if problem:
        raise InputFileError(f"{path}: {problem}; mcdenoise reads frames of at most {MAX_SIDE} pixels a side")
    problem = _truncation_problem(path)
    if problem:
        raise InputFileError(f"{path}: file is incomplete or corrupted ({problem}); re-render or re-copy it")
    return headers if header_only else _decode(path, path)


def check_regular_file(path: Path) -> None:
    """Refuse anything but a regular file (after links) before it is opened: opening a FIFO
    named ``*.exr`` waits for a writer forever, and a device never ends."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a folder we may not enter
        raise InputFileError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from exc
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory, expected an .exr file")
    if not stat.S_ISREG(mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file"
        raise InputFileError(f"{path}: is {kind}, not a regular file; expected an .exr file")


def _implausible_window(headers: "OpenEXR.File") -> str | None:
    """Why a part's data window is no render's, or None: checked from the header before any
    pixel is allocated, as a 2 KB file may declare gigapixels of zeros."""
    for part in headers.parts:
        (x0, y0), (x1, y1) = (int(v) for v in part.header["dataWindow"][0]), (int(v) for v in part.header["dataWindow"][1])
        if x1 - x0 + 1 > MAX_SIDE or y1 - y0 + 1 > MAX_SIDE:
            return f"declares a data window of {x1 - x0 + 1}x{y1 - y0 + 1} pixels"
    return None


def _decode(decodable: Path, path: Path, note: str = "") -> "OpenEXR.File":
    """Decode every part of ``decodable`` (``path`` itself, or the parts of it a low-memory read
    needs), refusing a file of which OpenEXR could decode only some parts.

    OpenEXR leaves a part whose pixel data fails to decode out of the file it returns and prints
    why on stdout; the parts and channels the header declares are compared with those decoded,
    and what it printed is kept off this process's output (a wrapper parses our stdout). The
    message names each lost part and its passes; ``note`` says why that part matters.
    """
    with _openexr_output_caught() as printed:
        try:
            source = OpenEXR.File(str(decodable), separate_channels=True)
        except Exception as exc:  # OpenEXR raises bare RuntimeError/ValueError
            raise InputFileError(f"{path}: cannot decode EXR ({exc})") from exc
    try:
        with open(decodable, "rb") as fh:
            declared = header.read_layout(fh).parts
    except (OSError, header.HeaderError) as exc:
        raise InputFileError(f"{path}: cannot decode EXR ({exc})") from exc
    decoded = {(part.name(), frozenset(part.channels)) for part in source.parts}
    lost = [p for p in declared if (p.name, frozenset(c.name for c in p.channels())) not in decoded]
    if lost:
        what = ", ".join(_part_label(p) for p in lost)
        why = "; ".join(printed) or "OpenEXR dropped it"
        raise InputFileError(
            f"{path}: the pixel data of {what} is damaged and cannot be decoded ({why})"
            + (f"; {note}" if note else "") + "; re-render or re-copy it"
        )
    return source


# OpenEXR's own reports while decoding: the Python binding's warning, printed through Python's
# sys.stdout, and OpenEXRCore's default error handler's lines on file descriptor 2
# ("<file>: (EXR_ERR_...) ...").
_WARNING = re.compile(r"^Warning: Exception raised reading pixel data for part \d+ - (?P<why>.*)$")
_CORE_ERROR = re.compile(rb"\(EXR_ERR_[A-Z_]+\)")
_OUTPUT_LOCK = threading.Lock()


class _ThreadCaught:
    """Stands in for ``sys.stdout`` during a decode: the decoding thread's writes are kept, every
    other thread's go on to the stream they were going to."""

    def __init__(self, stream):
        self.stream, self.thread, self.text = stream, threading.current_thread(), []

    def write(self, text: str) -> int:
        if threading.current_thread() is not self.thread:
            return self.stream.write(text)
        self.text.append(text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextlib.contextmanager
def _openexr_output_caught() -> Iterator[list[str]]:
    """Keep what OpenEXR prints while it decodes off this process's stdout and stderr, and give
    the reasons it printed (filled in when the block ends).

    The binding's warning goes through ``sys.stdout``, swapped for the time of the decode
    (other threads' writes pass through). OpenEXRCore writes to file descriptor 2 itself, so that
    is pointed at a temp file; whatever else lands there meanwhile (another thread's progress
    bar) is written on afterwards, so nothing of ours is lost. Decodes take turns, as the
    streams are the process's. Where descriptor 2 cannot be redirected (no console), OpenEXRCore
    prints as it would.
    """
    reasons: list[str] = []
    with _OUTPUT_LOCK, _stderr_fd_caught():
        stdout = sys.stdout
        caught = _ThreadCaught(stdout) if stdout is not None else None
        if caught is not None:
            sys.stdout = caught
        try:
            yield reasons
        finally:
            if caught is not None and sys.stdout is caught:
                sys.stdout = stdout
        for line in "".join(caught.text if caught is not None else []).splitlines():
            match = _WARNING.match(line)
            if match is None:
                print(line, file=stdout)  # not OpenEXR's: let it through
            else:
                reasons.append(match["why"].strip())


@contextlib.contextmanager
def _stderr_fd_caught() -> Iterator[None]:
    """Point file descriptor 2 at a temp file for the block, then write on what was not
    OpenEXRCore's error lines."""
    try:
        _flush_all()
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush_all()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True) if not _CORE_ERROR.search(line)]
            if kept:
                os.write(2, b"".join(kept))


def _flush_all() -> None:
    """Flush Python's stdout and stderr, so text written before a redirection goes where it was
    meant to and text written during one lands in it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()


def _part_label(part: header.Part) -> str:
    """A damaged part for messages: its passes, and its name where that is not the pass's."""
    passes = _pass_labels(c.name for c in part.channels())
    label = ", ".join(passes) or "a part without channels"
    return label if [part.name] == passes or not part.name else f"part {part.name!r} ({label})"


def _pass_labels(channel_names: Iterable[str]) -> list[str]:
    """``layer.pass`` of each pass among these channels, in order, for messages; channels of no
    pass are listed as they are ("(plain RGBA)", "(plain Y, RY, BY)" for a luminance/chroma file)."""
    labels: list[str] = []
    plain: list[str] = []
    for full in channel_names:
        lay, name, comp = split_channel_name(full)
        label = ".".join(x for x in (lay, name) if x)
        if not label:
            plain.append(comp)
            label = "(plain)"
        if label not in labels:
            labels.append(label)
    if plain:
        plain.sort(key=lambda c: ("RGBA".index(c) if c in "RGBA" and len(c) == 1 else 4, c))  # files store them sorted by name
        listed = "".join(plain) if all(len(c) == 1 for c in plain) and len(plain) > 1 else ", ".join(plain)
        labels[labels.index("(plain)")] = f"(plain {listed})"
    return labels


def _truncation_problem(path: Path) -> str | None:
    """Return why the file is not whole, or None if it is.

    Every chunk of every part is checked where the offset tables say it is: its leader must name
    the part, the line or tile the header puts there and a data size that fits the pixels and
    the file (:func:`mcdenoise.io.header.chunk_problem`). That catches a file cut short anywhere
    and one partly overwritten, reading a few bytes per chunk and no pixels.
    """
    try:
        with open(path, "rb") as fh:
            return header.chunk_problem(fh, header.read_layout(fh))
    except (header.HeaderError, struct.error) as exc:
        return f"unreadable chunk table: {exc}"


def part_views(header: dict) -> tuple[str, list[str]]:
    """A part's ``view`` attribute and ``multiView`` list, as :func:`channel_view` takes them."""
    return str(header.get("view", "") or ""), [str(v) for v in header.get("multiView", None) or ()]


def views(source: "OpenEXR.File") -> list[str]:
    """The views of a stereo (multi-view) file, default view first; [] for a file of one view."""
    return file_views(part_views(part.header) for part in source.parts)


def _find_pass(source: "OpenEXR.File", candidates: tuple[str, ...], layer: str | None,
               components: tuple[tuple[str, ...], ...], view: str = "") -> _Pass | None:
    """First pass (in candidate order) of ``view`` that has all of one of the ``components``
    namings, optionally in one layer."""
    found: dict[tuple[str, str, str], _Pass] = {}
    order: list[tuple[str, str, str]] = []
    for index, part in enumerate(source.parts):
        of_part = part_views(part.header)
        for full, channel in part.channels.items():
            of_view, unviewed = channel_view(full, *of_part)
            if of_view != view:
                continue
            lay, name, comp = split_channel_name(unviewed)
            key = (of_view, lay, name.lower())
            if key not in found:
                found[key] = _Pass(index, lay, name, {}, of_view)
                order.append(key)
            found[key].channels[comp.upper()] = channel
    for candidate in candidates:
        for key in order:
            p = found[key]
            if layer is not None and p.layer != layer:
                continue
            if p.name.lower() != candidate.lower():
                continue
            if any(all(c in p.channels for c in comps) for comps in components):
                return p
    return None


def _stack(p: _Pass, components: tuple[tuple[str, ...], ...], path: Path, keep_half: bool = False) -> np.ndarray:
    comps = next(trial for trial in components if all(c in p.channels for c in trial))
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


def available_passes(source: "OpenEXR.File", view: str | None = None) -> list[str]:
    """Human-readable list of the passes in a file (header-only or not), for error messages:
    those of ``view`` (named without it) when given, else every channel's as named."""
    names = []
    for part in source.parts:
        of_part = part_views(part.header)
        for ch in part.header.get("channels", []):
            of_view, unviewed = channel_view(ch.name, *of_part)
            if view is None:
                names.append(ch.name)
            elif of_view == view:
                names.append(unviewed)
    return _pass_labels(names)


def read_frame(path: str | os.PathLike, names: PassNames = PassNames(), *, low_memory: bool = False,
               features: Iterable[str] = AUX_FEATURES) -> Frame:
    """Read colour (required), alpha, and the optional passes ``features`` names (feature names
    of :mod:`mcdenoise.features`; by default the aux passes albedo and normal) of one frame: of
    the view ``names.view`` picks, or the file's default view.
    :func:`mcdenoise.features.passes_to_read` says which a model needs.

    ``low_memory`` keeps half-float passes as float16 (exact: every half is a float32, and the
    HDR transform converts tile by tile), skips alpha and drops the rest of the file until it
    is written back, so an 8K frame costs ~20 bytes a pixel instead of ~80 between read and write.
    The parts it does not read are still decoded, one at a time, since the output copies them
    (:func:`_check_unread_parts`).
    """
    return _read(Path(path), names, low_memory, tuple(features), every_view=False)[0]


def read_views(path: str | os.PathLike, names: PassNames = PassNames(), *, low_memory: bool = False,
               features: Iterable[str] = AUX_FEATURES) -> list[Frame]:
    """:func:`read_frame` of every view of a stereo (multi-view) file, in file order, from one
    read of it: the views' passes are in the same parts or parts decoded together, so reading
    the file once per view would decode it once per view. One frame for a file of one view, or
    for the view ``names.view`` picks."""
    return _read(Path(path), names, low_memory, tuple(features), every_view=names.view is None)


def _read(path: Path, names: PassNames, low_memory: bool, features: tuple[str, ...], every_view: bool) -> list[Frame]:
    """Open (or, ``low_memory``, decode the needed parts of) ``path`` once, and take the frame of
    each view asked for from it."""
    if low_memory:
        wanted = (*names.color, *(c for f in features for c in names.candidates(f)))
        with _needed_parts_only(path, wanted) as (decodable, headers, unread):  # checks the whole file's chunks
            _check_unread_parts(path, headers, unread)
            source = _decode(decodable, path)
        part_index = {part.name(): i for i, part in enumerate(headers.parts)}
    else:
        source, part_index = open_exr(path), None
        headers = source
    in_file = (views(headers) or [""]) if every_view else [_view_to_read(path, headers, names.view)]
    return [_frame_of_view(path, source, headers, part_index, names, view, low_memory, features) for view in in_file]


def _frame_of_view(path: Path, source: "OpenEXR.File", headers: "OpenEXR.File", part_index: dict[str, int] | None,
                   names: PassNames, view: str, low_memory: bool, features: tuple[str, ...]) -> Frame:
    """One view's frame from a file read by :func:`_read`: ``source`` holds the decoded parts
    (with ``part_index``, the parts of a low-memory read, whose numbers differ from the file's),
    ``headers`` every part's header."""
    color = _find_pass(source, names.color, names.layer, COLOR.components, view)
    if color is None:
        in_view = f" of view {view!r}" if view else ""
        raise MissingPassError(
            f"{path}: no colour pass found (looked for {', '.join(repr(c) for c in names.color)}"
            + (f" in layer {names.layer!r}" if names.layer else "") + in_view
            + f"); the file has{in_view}: {', '.join(available_passes(headers, view if view else None)) or 'no channels'}",
            fix="color_pass",
        )
    window = _data_window(source, color)
    color_dtype = np.dtype(next(iter(color.channels.values())).pixels.dtype)
    rgb = _stack(color, COLOR.components, path, low_memory)
    alpha = None
    if "A" in color.channels and not low_memory:
        alpha = _stack(_Pass(color.part, color.layer, color.name, {"A": color.channels["A"]}), (("A",),), path, low_memory)[..., 0]
    if low_memory:
        _release(source, color)
    optional: dict[str, np.ndarray | None] = {}
    passes = {"color": color.name}
    for name in (n for n in features if FEATURES[n].planes is None):
        found = _find_pass(source, names.candidates(name), color.layer, FEATURES[name].components, view)
        optional[name] = None
        if found is None:
            continue
        # Passes are aligned by their data windows; read as arrays, one of another size or
        # origin would put every guide pixel beside the wrong colour pixel.
        if (own := _data_window(source, found)) != window:
            raise PassShapeError(
                f"{path}: {name} pass" + (f" of view {view!r}" if view else "") + f" is {_describe_window(own)} but colour is {_describe_window(window)}; "
                "re-render so all passes share one data window"
            )
        optional[name] = _stack(found, FEATURES[name].components, path, low_memory)
        passes[name] = found.name
        if low_memory:
            _release(source, found)
    return Frame(
        path=path,
        source=None if low_memory else source,
        color=rgb,
        albedo=optional.get("albedo"),
        normal=optional.get("normal"),
        vector=optional.get("vector"),
        alpha=alpha,
        layer=color.layer,
        color_part=color.part if part_index is None else part_index[source.parts[color.part].name()],
        color_dtype=color_dtype,
        passes=passes,
        file_passes=file_passes(headers),
        view=view,
        samples=render_samples(headers, color.layer),
    )


_SAMPLES_STAMP = re.compile(r"cycles\.(?P<layer>.*)\.samples")


def render_samples(source: "OpenEXR.File", layer: str) -> int | None:
    """The samples per pixel Cycles rendered view layer ``layer`` with, from the
    ``cycles.<ViewLayer>.samples`` stamp Blender writes in every EXR; None where the file has no
    such stamp or it is unreadable (another renderer, a file rewritten without its header).
    A file of one layer (Blender's plain OpenEXR, whose channels carry no layer name) takes the
    one count its stamps agree on."""
    stamps: dict[str, int | None] = {}
    for part in source.parts:
        for key, value in part.header.items():
            if (m := _SAMPLES_STAMP.fullmatch(str(key))) is not None:
                try:
                    count = int(str(value).strip())
                except ValueError:
                    count = None
                stamps[m["layer"]] = count if count is not None and count > 0 else None
    if layer in stamps:
        return stamps[layer]
    counts = set(stamps.values())
    return counts.pop() if not layer and len(counts) == 1 else None


def _view_to_read(path: Path, source: "OpenEXR.File", wanted: str | None) -> str:
    """The view whose passes a read takes: ``wanted``, or the file's default (first) view; ""
    in a file of one view."""
    have = views(source)
    if wanted is None or wanted in have:
        return wanted if wanted is not None else (have[0] if have else "")
    raise MissingPassError(
        f"{path}: no view {wanted!r} in this file; "
        + (f"its views are {', '.join(repr(v) for v in have)}" if have else "it holds a single view (no stereo)")
    )


def file_passes(source: "OpenEXR.File") -> dict[tuple[str, str], bool]:
    """(layer, pass name) of every pass of a file (header-only or not) -> whether mcdenoise
    wrote it: listed in the :data:`WRITTEN_BY` attribute of the part holding it."""
    found: dict[tuple[str, str], bool] = {}
    for part in source.parts:
        marked = set(str(part.header.get(WRITTEN_BY, "")).splitlines())
        of_part = part_views(part.header)
        for channel in part.header.get("channels", []):
            layer, name, _ = split_channel_name(channel_view(channel.name, *of_part)[1])
            found[layer, name] = found.get((layer, name), True) and join_channel_name(layer, name, "") in marked
    return found


def _data_window(source: "OpenEXR.File", p: _Pass) -> tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = source.parts[p.part].header["dataWindow"]
    return int(x0), int(y0), int(x1), int(y1)


def _describe_window(window: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = window
    return f"{x1 - x0 + 1}x{y1 - y0 + 1} at ({x0}, {y0})"


@contextlib.contextmanager
def _needed_parts_only(path: Path, pass_names: Iterable[str]) -> Iterator[tuple[Path, "OpenEXR.File", set[str]]]:
    """The file to decode for a low-memory read, ``path``'s headers and the names of the parts
    left out of that file.

    A render with dozens of AOV parts (light groups, cryptomattes) would be decoded whole just to
    read three passes: on an 8K frame that is gigabytes and seconds. When the file is multi-part
    scanline, the parts that may hold one of ``pass_names`` (the candidates of the passes being
    read) are copied, still compressed, into a temp file and only that is decoded. Anything else
    decodes ``path``.
    """
    header = open_exr(path, header_only=True)
    index = {part.name(): i for i, part in enumerate(header.parts)}
    wanted = {n.lower() for n in pass_names}
    keep = {
        part.name() for part in header.parts
        if any(split_channel_name(ch.name)[1].lower() in wanted for ch in part.header.get("channels", []))
    }
    if len(header.parts) < 2 or not keep or len(keep) == len(header.parts):
        yield path, header, set()
        return
    with _parts_copied(path, set(index) - keep) as tmp:
        yield (path, header, set()) if tmp is None else (tmp, header, set(index) - keep)


@contextlib.contextmanager
def _parts_copied(path: Path, drop: set[str]) -> Iterator[Path | None]:
    """A temp copy of multi-part scanline ``path`` without the parts named in ``drop`` (their
    chunks copied still compressed), or None when the layout or the temp folder does not allow
    it. The temp is named by :mod:`mcdenoise.io.atomic`'s owner rule, so a run removes those a
    killed run left and never a live one's."""
    target = Path(tempfile.gettempdir()) / READ_TEMP_NAME
    atomic.remove_stale_temps(target)
    tmp = atomic.create_temp(target)
    try:
        try:
            splice.splice(path, drop, None, Path(tmp))
        except (splice.NotSpliceable, struct.error, OSError):  # odd layout, or no room in the temp folder
            yield None
            return
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _check_unread_parts(path: Path, headers: "OpenEXR.File", unread: set[str]) -> None:
    """Decode, one at a time and for nothing, the parts of ``path`` a low-memory read left out.

    Denoising does not need them, but the output copies them byte for byte
    (:mod:`mcdenoise.io.splice`), so a damaged one would reach the output of a run that exits 0.
    Such a frame fails, naming the file and the part, rather than being written without that
    part: the input itself is broken and needs a re-render or re-copy whatever the denoiser
    does, a farm log shows a failed frame where it would bury a warning, and an output that
    silently lacks an AOV breaks the comp that reads it later. One part at a time keeps the
    read's memory to the largest part, as the low-memory read promises.
    """
    if not unread:
        return
    names = [part.name() for part in headers.parts]
    note = "denoising does not read it, but the output would carry it"
    for name in (n for n in names if n in unread):
        with _parts_copied(path, set(names) - {name}) as tmp:
            if tmp is None:  # cannot copy one part alone: decode the file whole
                _decode(path, path, note)
                return
            _decode(tmp, path, note)
