"""Adding a part to a multi-part scanline EXR by copying the other parts' compressed chunks.

Writing a denoised pass back through OpenEXR means decoding and re-compressing every pass of
the file (on a 1080p Blender frame with ZIP: ~1 s of CPU, next to ~2 s for the network), time
the batch pipeline takes from the model on a small machine. Blender writes multi-part scanline
files, in which each part's chunks are self-contained, so the untouched parts can be copied
byte for byte and only the new pass is compressed (by OpenEXR, into a scratch file).

Layout (OpenEXR file format spec): magic, version (flag 0x1000 = multi-part, 0x400 = long
names), each part's header as attributes ``name\\0 type\\0 int32 size, value`` ended by a NUL,
one more NUL, then per part a table of uint64 chunk offsets, then chunks ``int32 part, int32 y,
int32 size, data``. Anything else (single-part, tiled, deep) goes through the plain writer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MULTIPART, LONG_NAMES, NON_IMAGE, SINGLE_TILED = 0x1000, 0x400, 0x800, 0x200
_HEAD = 12  # bytes before a multi-part scanline chunk's data: part, y, data size


class NotSpliceable(Exception):
    """The file is not a multi-part scanline image; use the plain writer."""


@dataclass
class PartLayout:
    attrs: list[tuple[bytes, bytes, bytes]]  # (name, type, raw value), in file order
    offsets: list[int]

    def attr(self, name: bytes) -> bytes | None:
        return next((v for n, _, v in self.attrs if n == name), None)

    @property
    def name(self) -> str:
        raw = self.attr(b"name")
        return raw.decode("latin-1") if raw is not None else ""

    def header_bytes(self) -> bytes:
        out = bytearray()
        for name, kind, value in self.attrs:
            out += name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value
        return bytes(out + b"\0")


def _cstr(fh: BinaryIO) -> bytes:
    out = bytearray()
    while (c := fh.read(1)) not in (b"\0", b""):
        out += c
    if c == b"":
        raise NotSpliceable("header runs past the end of the file")
    return bytes(out)


def read_layout(fh: BinaryIO) -> tuple[int, list[PartLayout]]:
    """Version flags and per-part attributes and chunk offsets of a multi-part scanline file."""
    fh.seek(0)
    head = fh.read(8)
    if len(head) < 8:
        raise NotSpliceable("file too short")
    (version,) = struct.unpack_from("<i", head, 4)
    if not version & MULTIPART or version & (NON_IMAGE | SINGLE_TILED):
        raise NotSpliceable("not a multi-part scanline file")
    parts: list[PartLayout] = []
    while True:
        attrs = []
        while name := _cstr(fh):
            kind = _cstr(fh)
            (size,) = struct.unpack("<i", fh.read(4))
            attrs.append((name, kind, fh.read(size)))
        if not attrs:  # the empty header that ends the list
            break
        parts.append(PartLayout(attrs, []))
    for part in parts:
        kind, count = part.attr(b"type"), part.attr(b"chunkCount")
        if kind != b"scanlineimage" or count is None:
            raise NotSpliceable(f"part {part.name!r} is {kind!r}, not a scanline image")
        (n,) = struct.unpack("<i", count)
        part.offsets = list(struct.unpack(f"<{n}Q", fh.read(8 * n)))
    return version, parts


def _chunk_sizes(fh: BinaryIO, part: PartLayout) -> list[int]:
    sizes = []
    for offset in part.offsets:
        fh.seek(offset + 8)
        (size,) = struct.unpack("<i", fh.read(4))
        sizes.append(_HEAD + size)
    return sizes


def splice(src: Path, drop: set[str], extra: Path | None, out: Path) -> None:
    """Write ``out``: ``src``'s parts except those named in ``drop``, byte for byte, then the
    first part of ``extra`` (a multi-part file written by OpenEXR) if given."""
    with open(src, "rb") as fs, open(extra or src, "rb") as fe:
        version, src_parts = read_layout(fs)
        sources = [(fs, p) for p in src_parts if p.name not in drop]
        extra_version = 0
        if extra is not None:
            extra_version, extra_parts = read_layout(fe)
            sources.append((fe, extra_parts[0]))
        if not sources:
            raise NotSpliceable("no part left to write")
        sizes = [_chunk_sizes(fh, p) for fh, p in sources]
        headers = b"".join(p.header_bytes() for _, p in sources) + b"\0"
        pos = 8 + len(headers) + 8 * sum(len(s) for s in sizes)
        tables = bytearray()
        for part_sizes in sizes:
            for size in part_sizes:
                tables += struct.pack("<Q", pos)
                pos += size
        flags = (version | extra_version) & LONG_NAMES
        with open(out, "wb") as fo:
            fo.write(b"\x76\x2f\x31\x01" + struct.pack("<i", 2 | MULTIPART | flags) + headers + tables)
            for index, ((fh, part), part_sizes) in enumerate(zip(sources, sizes)):
                for offset, size in zip(part.offsets, part_sizes):
                    fh.seek(offset)
                    chunk = bytearray(fh.read(size))
                    if len(chunk) != size:
                        raise NotSpliceable(f"chunk of part {part.name!r} cut off")
                    chunk[0:4] = struct.pack("<i", index)
                    fo.write(chunk)
