"""Adding a part to a multi-part scanline EXR by copying the other parts' compressed chunks.

Writing a denoised pass back through OpenEXR means decoding and re-compressing every pass of
the file (on a 1080p Blender frame with ZIP: ~1 s of CPU, next to ~2 s for the network), time
the batch pipeline takes from the model on a small machine. Blender writes multi-part scanline
files, in which each part's chunks are self-contained, so the untouched parts can be copied
byte for byte and only the new pass is compressed (by OpenEXR, into a scratch file).

Each part's chunk (multi-part scanline) is ``int32 part, int32 y, int32 size, data``; the headers
and offset tables are parsed by :mod:`mcdenoise.io.header`. Anything else (single-part, tiled,
deep) goes through the plain writer.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from mcdenoise.io import header
from mcdenoise.io.header import LONG_NAMES, MAGIC, MULTIPART, NON_IMAGE, SINGLE_TILED

_HEAD = 12  # bytes before a multi-part scanline chunk's data: part, y, data size


class NotSpliceable(Exception):
    """The file is not a multi-part scanline image; use the plain writer."""


def read_layout(fh: BinaryIO) -> tuple[int, list[header.Part]]:
    """Version flags and per-part attributes and chunk offsets of a multi-part scanline file."""
    try:
        layout = header.read_layout(fh)
    except header.HeaderError as exc:
        raise NotSpliceable(str(exc)) from exc
    if not layout.version & MULTIPART or layout.version & (NON_IMAGE | SINGLE_TILED):
        raise NotSpliceable("not a multi-part scanline file")
    for part in layout.parts:
        if part.kind != "scanlineimage" or part.offsets is None:
            raise NotSpliceable(f"part {part.name!r} is {part.kind!r}, not a scanline image")
    return layout.version, layout.parts


def _chunk_sizes(fh: BinaryIO, part: header.Part) -> list[int]:
    sizes = []
    for offset in part.offsets:
        fh.seek(offset + 8)
        (size,) = struct.unpack("<i", fh.read(4))
        sizes.append(_HEAD + size)
    return sizes


def splice(src: Path, drop: set[str], extra: Path | None, out: Path, extra_parts: int = 1) -> None:
    """Write ``out``: ``src``'s parts except those named in ``drop``, byte for byte, then the
    first ``extra_parts`` parts of ``extra`` (a multi-part file written by OpenEXR) if given."""
    with open(src, "rb") as fs, open(extra or src, "rb") as fe:
        version, src_parts = read_layout(fs)
        sources = [(fs, p) for p in src_parts if p.name not in drop]
        extra_version = 0
        if extra is not None:
            extra_version, added = read_layout(fe)
            sources += [(fe, part) for part in added[:extra_parts]]
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
            fo.write(MAGIC + struct.pack("<i", 2 | MULTIPART | flags) + headers + tables)
            for index, ((fh, part), part_sizes) in enumerate(zip(sources, sizes)):
                for offset, size in zip(part.offsets, part_sizes):
                    fh.seek(offset)
                    chunk = bytearray(fh.read(size))
                    if len(chunk) != size:
                        raise NotSpliceable(f"chunk of part {part.name!r} cut off")
                    chunk[0:4] = struct.pack("<i", index)
                    fo.write(chunk)
