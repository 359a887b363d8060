"""The one parser of an EXR file's bytes before its pixels: version flags, every part's
attributes and chunk offset tables.

Two readers need the bytes rather than OpenEXR's decoded header: the truncation check (OpenEXR
only warns about a file cut short and hands back zeros) and the splice, which copies headers and
chunks byte for byte. Headers have no size limit in practice (Blender writes whole cryptomatte
manifests, megabytes of JSON, into string attributes), so the file is read as a stream as far as
its headers and tables go. Every size read from the file is checked against what the file still
holds before anything is read, so a corrupted length is a :class:`HeaderError`, never a huge read.

Layout (OpenEXR file format spec): magic, int32 version (flag 0x200 single-part tiled, 0x400
long names, 0x800 deep, 0x1000 multi-part), each part's header as attributes ``name\\0 type\\0
int32 size, value`` ended by a NUL, one more NUL after the headers of a multi-part file, then per
part a table of uint64 chunk offsets. ``chunkCount`` is required in multi-part and deep files; a
single-part image omits it, and its count follows from the header: the data window and the
lines one chunk of its compression holds (scanline), or the tile description (tiled). Each chunk
starts with a leader: the part number (multi-part), its first line or its tile's coordinates and
level, and its data size; :func:`chunk_problem` checks every leader against the header, which is
how a whole file is told from one cut short or partly overwritten without decoding a pixel.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mcdenoise.io.passes import file_views

MAGIC = b"\x76\x2f\x31\x01"
# A string attribute of each part mcdenoise writes a pass into (see mcdenoise.io.exr): here, in
# pure Python, so the add-on can tell a finished frame in a Blender without OpenEXR.
WRITTEN_BY = "mcdenoisePasses"
SINGLE_TILED, LONG_NAMES, NON_IMAGE, MULTIPART = 0x200, 0x400, 0x800, 0x1000
_MAX_NAME = 255  # attribute names and type names: at most 31 bytes, 255 with LONG_NAMES
_BLOCK = 1 << 16
# Lines of a scanline chunk, indexed by the ``compression`` attribute: NONE, RLE, ZIPS 1; ZIP,
# PXR24 16; PIZ, B44, B44A, DWAA 32; DWAB 256 (the spec); then HTJ2K256, HTJ2K32, LJ2K, ZSTD as
# the OpenEXR mcdenoise depends on writes them.
LINES_PER_CHUNK = (1, 1, 1, 16, 32, 16, 32, 32, 32, 256, 256, 32, 256, 1)
_PIXEL_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
ONE_LEVEL, MIPMAP_LEVELS, RIPMAP_LEVELS = 0, 1, 2


class HeaderError(Exception):
    """The bytes are not a well-formed EXR header (wrong magic, cut short, impossible size)."""


@dataclass(frozen=True)
class Channel:
    name: str
    pixel_type: int  # 0 UINT, 1 HALF, 2 FLOAT
    x_sampling: int
    y_sampling: int


@dataclass(frozen=True)
class Chunk:
    """What one entry of a part's offset table must point at: a leader with these coordinates
    (the first line, or tile x, tile y, level x, level y), for pixels of ``unpacked`` bytes
    stored in at most ``largest`` bytes (a writer stores a chunk raw when compressing does not
    shrink it; for lines OpenEXR allows a full chunk's bytes, so the check does too)."""

    coords: tuple[int, ...]
    unpacked: int
    largest: int


@dataclass
class Part:
    """One part's attributes as ``(name, type, raw value)`` in file order, and its chunk offsets
    (filled in by :func:`read_layout`)."""

    attrs: list[tuple[bytes, bytes, bytes]]
    offsets: tuple[int, ...] | None = None

    def attr(self, name: bytes) -> bytes | None:
        return next((v for n, _, v in self.attrs if n == name), None)

    @property
    def name(self) -> str:
        raw = self.attr(b"name")  # UTF-8, as OpenEXR reads it (Blender allows any layer name)
        return raw.decode("utf-8", "replace") if raw is not None else ""

    @property
    def view(self) -> str:
        """The part's ``view`` attribute (a multi-part stereo file: Blender 5.0's), or ""."""
        raw = self.attr(b"view")
        return raw.decode("utf-8", "replace") if raw is not None else ""

    @property
    def multi_view(self) -> tuple[str, ...]:
        """The ``multiView`` attribute (a single-part stereo file: Blender 4.x's), or ()."""
        raw, out, at = self.attr(b"multiView") or b"", [], 0
        while at + 4 <= len(raw):
            (size,) = struct.unpack_from("<i", raw, at)
            out.append(raw[at + 4 : at + 4 + max(size, 0)].decode("utf-8", "replace"))
            at += 4 + max(size, 0)
        return tuple(out)

    @property
    def kind(self) -> str:
        """The ``type`` attribute (scanlineimage, tiledimage, deepscanline, deeptile), or ""."""
        raw = self.attr(b"type")
        return raw.rstrip(b"\0").decode("latin-1") if raw is not None else ""

    def chunk_count(self) -> int | None:
        raw = self.attr(b"chunkCount")
        if raw is None:
            return None
        if len(raw) != 4:
            raise HeaderError(f"part {self.name!r}: chunkCount is {len(raw)} bytes, expected 4")
        return struct.unpack("<i", raw)[0]

    def storage(self, version: int) -> str:
        """scanlineimage, tiledimage, deepscanline or deeptile (a single-part image may leave
        its ``type`` out; the version's tiled flag then says which)."""
        if self.kind:
            return self.kind
        return "tiledimage" if version & SINGLE_TILED else "scanlineimage"

    def _value(self, name: bytes, fmt: str) -> tuple:
        raw = self.attr(name)
        if raw is None or len(raw) != struct.calcsize(fmt):
            raise HeaderError(f"part {self.name!r}: {name.decode()} is missing or malformed")
        return struct.unpack(fmt, raw)

    def data_window(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), both corners inside the window."""
        x0, y0, x1, y1 = self._value(b"dataWindow", "<4i")
        if x1 < x0 or y1 < y0:
            raise HeaderError(f"part {self.name!r}: empty data window")
        return x0, y0, x1, y1

    def channels(self) -> list[Channel]:
        raw = self.attr(b"channels") or b""
        out, at = [], 0
        while at < len(raw) and raw[at]:
            end = raw.find(b"\0", at)
            if end < 0 or end + 17 > len(raw):
                raise HeaderError(f"part {self.name!r}: malformed channel list")
            pixel_type, _, xs, ys = struct.unpack_from("<iB3xii", raw, end + 1)
            if pixel_type not in _PIXEL_BYTES or xs < 1 or ys < 1:
                raise HeaderError(f"part {self.name!r}: channel {raw[at:end]!r} has an unknown type or sampling")
            out.append(Channel(raw[at:end].decode("utf-8", "replace"), pixel_type, xs, ys))
            at = end + 17
        return out

    def _levels(self) -> tuple[int, int, list[tuple[int, int, int, int]]]:
        """Tile width and height and, per level in offset-table order, (level x, level y, level
        width, level height) as OpenEXR's tile description defines them."""
        xs, ys, mode = self._value(b"tiles", "<IIB")
        level_mode, rounding = mode & 0x0F, mode >> 4
        if xs < 1 or ys < 1 or level_mode > RIPMAP_LEVELS or rounding > 1:
            raise HeaderError(f"part {self.name!r}: invalid tile description")
        x0, y0, x1, y1 = self.data_window()
        w, h = x1 - x0 + 1, y1 - y0 + 1

        def count(n: int) -> int:  # levels of a side of n pixels: 1 + log2(n), rounded down or up
            return (n - 1).bit_length() + 1 if rounding else n.bit_length()

        def size(n: int, level: int) -> int:  # n / 2**level, rounded down or up, at least 1
            return max(-(-n >> level) if rounding else n >> level, 1)

        if level_mode == ONE_LEVEL:
            pairs = [(0, 0)]
        elif level_mode == MIPMAP_LEVELS:
            pairs = [(lv, lv) for lv in range(count(max(w, h)))]
        else:
            pairs = [(lx, ly) for ly in range(count(h)) for lx in range(count(w))]
        return xs, ys, [(lx, ly, size(w, lx), size(h, ly)) for lx, ly in pairs]

    def expected_chunk_count(self, version: int) -> int | None:
        """How many chunks the header implies (None for deep parts, which must store it)."""
        storage = self.storage(version)
        if storage.startswith("deep"):
            return None
        if storage == "tiledimage":
            xs, ys, levels = self._levels()
            return sum(-(-lw // xs) * -(-lh // ys) for _, _, lw, lh in levels)
        _, y0, _, y1 = self.data_window()
        return -(-(y1 - y0 + 1) // self._lines_per_chunk())

    def _lines_per_chunk(self) -> int:
        (compression,) = self._value(b"compression", "<B")
        if compression >= len(LINES_PER_CHUNK):
            raise HeaderError(f"part {self.name!r}: unknown compression {compression}")
        return LINES_PER_CHUNK[compression]

    def expected_chunks(self, version: int) -> Iterator[Chunk]:
        """The chunks of an image part in offset-table order: lines from the top; tiles by
        level, then row, then column."""
        x0, y0, x1, y1 = self.data_window()
        channels = self.channels()
        if self.storage(version) == "tiledimage":
            xs, ys, levels = self._levels()
            texel = sum(_PIXEL_BYTES[c.pixel_type] for c in channels)
            for lx, ly, lw, lh in levels:
                for ty in range(-(-lh // ys)):
                    for tx in range(-(-lw // xs)):
                        tw, th = min(xs, lw - tx * xs), min(ys, lh - ty * ys)
                        yield Chunk((tx, ty, lx, ly), tw * th * texel, tw * th * texel)
            return
        lines = self._lines_per_chunk()
        row = {c: _PIXEL_BYTES[c.pixel_type] * _multiples(x0, x1, c.x_sampling) for c in channels}
        full = lines * sum(row.values())
        for first in range(y0, y1 + 1, lines):
            last = min(first + lines - 1, y1)
            yield Chunk((first,), sum(row[c] * _multiples(first, last, c.y_sampling) for c in channels), full)

    def header_bytes(self) -> bytes:
        """The header as it is stored, ending NUL included."""
        out = bytearray()
        for name, kind, value in self.attrs:
            out += name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value
        return bytes(out + b"\0")


def _multiples(lo: int, hi: int, step: int) -> int:
    """How many of lo..hi are multiples of ``step``: a subsampled channel's samples there."""
    return hi // step - -(-lo // step) + 1


@dataclass
class Layout:
    version: int
    parts: list[Part]
    size: int  # of the whole file, in bytes
    tables_end: int = 0  # where the offset tables end: no chunk can start before

    @property
    def multipart(self) -> bool:
        return bool(self.version & MULTIPART)

    def views(self) -> list[str]:
        """The views of a stereo (multi-view) file, default view first; [] for a file of one
        view (what :func:`mcdenoise.io.exr.views` says of the file opened by OpenEXR)."""
        return file_views((part.view, part.multi_view) for part in self.parts)

    def largest_part_pixels(self) -> int:
        """Pixels of the largest data window among the parts."""
        return max((x1 - x0 + 1) * (y1 - y0 + 1) for x0, y0, x1, y1 in (part.data_window() for part in self.parts))


class _Stream:
    """Sequential reads from a file that refuse to go past its end before reading anything."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        self.pos = 0  # file offset of buf[at]
        self.buf = b""
        self.at = 0

    def _fill(self, n: int) -> None:
        short = n - (len(self.buf) - self.at)
        if short > 0:
            self.buf = self.buf[self.at :] + self.fh.read(max(short, _BLOCK))
            self.at = 0
            if len(self.buf) < n:
                raise HeaderError("file ended while its header was read")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.size - self.pos:
            raise HeaderError(f"{what} ({n} bytes) does not fit in the rest of the file")
        self._fill(n)
        out = self.buf[self.at : self.at + n]
        self.at += n
        self.pos += n
        return out

    def cstr(self, what: str) -> bytes:
        window = min(_MAX_NAME + 1, self.size - self.pos)
        self._fill(window)
        end = self.buf.find(b"\0", self.at, self.at + window)
        if end < 0:
            raise HeaderError(f"{what} is not ended within {window} bytes")
        out = self.buf[self.at : end]
        self.pos += end + 1 - self.at
        self.at = end + 1
        return out


def _read_part(stream: _Stream) -> Part:
    attrs = []
    while name := stream.cstr("attribute name"):
        kind = stream.cstr(f"type of attribute {name!r}")
        (size,) = struct.unpack("<i", stream.take(4, f"size of attribute {name!r}"))
        attrs.append((name, kind, stream.take(size, f"attribute {name!r}")))
    return Part(attrs)


def read_layout(fh: BinaryIO) -> Layout:
    """Parse magic, version, every part's header and its chunk offsets (as many as its
    ``chunkCount`` says, or as the header implies where it has none, which must agree when it
    has one), reading no further than that. Raises :class:`HeaderError` on malformed bytes."""
    stream = _Stream(fh)
    if stream.take(4, "magic number") != MAGIC:
        raise HeaderError("not an OpenEXR file (wrong magic number)")
    (version,) = struct.unpack("<i", stream.take(4, "version"))
    parts = [_read_part(stream)]
    if not parts[0].attrs:
        raise HeaderError("the file has an empty header")
    if version & MULTIPART:
        while (part := _read_part(stream)).attrs:  # an empty header ends the list
            parts.append(part)
    for index, part in enumerate(parts):
        count = part.chunk_count()
        if count is None and (len(parts) > 1 or version & NON_IMAGE):
            raise HeaderError(f"part {index} has no chunkCount")
        if count is not None and count < 0:
            raise HeaderError(f"part {index} has a negative chunkCount")
        expected = part.expected_chunk_count(version)
        if count is None and expected is None:
            raise HeaderError(f"part {index} is deep and has no chunkCount")
        table = stream.take(8 * (count if count is not None else expected), f"chunk table of part {index}")
        if count is not None and expected is not None and count != expected:
            raise HeaderError(f"part {index} stores chunkCount {count} but its header implies {expected}")
        part.offsets = struct.unpack(f"<{len(table) // 8}Q", table)
    return Layout(version, parts, stream.size, stream.pos)


def chunk_problem(fh: BinaryIO, layout: Layout) -> str | None:
    """Why some chunk of the file is not what its part's header says, or None when every offset
    points inside the file, past the tables, at a leader with the part number, line or tile and
    a data size the header allows, whose data ends inside the file. Reads the leaders only
    (12 to 24 bytes a chunk), never pixels. Deep parts get the offset check only."""
    for index, part in enumerate(layout.parts):
        where = f"part {index}" + (f" ({part.name})" if part.name else "")
        if not part.offsets:
            continue
        if min(part.offsets) < layout.tables_end or max(part.offsets) >= layout.size:
            return f"{where} has chunks outside the file"
        storage = part.storage(layout.version)
        if storage.startswith("deep"):
            continue
        tiled = storage == "tiledimage"
        fmt = "<" + "i" * (layout.multipart + (4 if tiled else 1) + 1)
        lead = struct.calcsize(fmt)
        for number, (offset, chunk) in enumerate(zip(part.offsets, part.expected_chunks(layout.version))):
            fh.seek(offset)
            raw = fh.read(lead)
            if len(raw) < lead:
                return f"{where}: chunk {number} cut off"
            *fields, size = struct.unpack(fmt, raw)
            if layout.multipart and fields.pop(0) != index:
                return f"{where}: chunk {number} is not this part's (overwritten?)"
            if tuple(fields) != chunk.coords:
                return f"{where}: chunk {number} holds {'tile' if tiled else 'line'} {tuple(fields)}, expected {chunk.coords}"
            if size < 0 or size > chunk.largest or (size == 0 and chunk.unpacked):
                return f"{where}: chunk {number} has an impossible size ({size} bytes)"
            if offset + lead + size > layout.size:
                return f"{where}: chunk {number} cut off"
    return None
