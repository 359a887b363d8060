"""A deterministic fuzz corpus of damaged EXR files, built from whole ones.

Damage is placed where the header parser says things are (each attribute's size and value, each
part's offset table, each chunk's leader and data) rather than at random offsets only, so every
structure a reader trusts is hit in every part of a file; random flips and cuts (fixed seeds)
cover the rest. Each case is ``(label, bytes)``; the label says what was damaged where, so a
failing case can be rebuilt by hand.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from mcdenoise.io import header


@dataclass(frozen=True)
class Attr:
    part: int
    name: str
    size_at: int  # the int32 size before the value
    value_at: int
    size: int


@dataclass(frozen=True)
class Map:
    """Where things are in one file: attributes, offset tables, chunks (leader and data)."""

    attrs: list[Attr]
    tables: list[tuple[int, int]]  # per part: (first entry's offset, entries)
    chunks: list[list[tuple[int, int, int]]]  # per part, in table order: (leader at, data at, data size)


def file_map(data: bytes) -> Map:
    layout = header.read_layout(io.BytesIO(data))
    multipart = bool(layout.version & header.MULTIPART)
    at, attrs = 8, []
    for i, part in enumerate(layout.parts):
        for name, kind, value in part.attrs:
            size_at = at + len(name) + 1 + len(kind) + 1
            attrs.append(Attr(i, name.decode("latin-1"), size_at, size_at + 4, len(value)))
            at = size_at + 4 + len(value)
        at += 1  # the NUL ending this header
    at += multipart  # the NUL ending the headers
    tables, chunks = [], []
    for part in layout.parts:
        tables.append((at, len(part.offsets)))
        at += 8 * len(part.offsets)
        leader = 12 if multipart else 8
        chunks.append([(o, o + leader, struct.unpack_from("<i", data, o + leader - 4)[0]) for o in part.offsets])
    assert at == layout.tables_end, "the map disagrees with the parser about where the tables end"
    return Map(attrs, tables, chunks)


def _put(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def _i32(v: int) -> bytes:
    return struct.pack("<i", v)


def mutations(label: str, data: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    """Damaged copies of ``data`` (a whole EXR): about 40 for a four-part file."""
    rng = np.random.default_rng(seed)
    m = file_map(data)
    n = len(data)
    attrs = {(a.part, a.name): a for a in m.attrs}
    # Header attributes: a reader trusts their sizes and values before any pixel.
    for name in ("channels", "compression", "dataWindow", "chunkCount", "name", "type", "lineOrder"):
        a = attrs.get((0, name))
        if a is None:
            continue
        yield f"{label}: attr {name} size huge", _put(data, a.size_at, _i32(0x7FFFFFF0))
        yield f"{label}: attr {name} size negative", _put(data, a.size_at, _i32(-4))
        yield f"{label}: attr {name} value 0xFF", _put(data, a.value_at, b"\xff" * a.size)
    first = next(a for a in m.attrs if a.name == "channels")
    yield f"{label}: attr channels value zeroed", _put(data, first.value_at, bytes(first.size))
    # Huge and odd data windows, patched into the first part's header.
    dw = attrs[(0, "dataWindow")].value_at
    x0, y0, x1, y1 = struct.unpack_from("<4i", data, dw)
    for what, box in {"70000 wide": (x0, y0, x0 + 69999, y1), "inverted": (x1, y0, x0, y1),
                      "extreme origin": (-(2**31), y0, -(2**31) + x1 - x0, y1), "one pixel": (x0, y0, x0, y0),
                      "shifted": (x0 + 7, y0 + 3, x1 + 7, y1 + 3), "2^31 tall": (x0, y0, x1, 2**31 - 1)}.items():
        yield f"{label}: dataWindow {what}", _put(data, dw, struct.pack("<4i", *box))
    # Offset tables and chunks: one case of each kind in each part.
    for p, ((table, entries), chunks) in enumerate(zip(m.tables, m.chunks)):
        k = int(rng.integers(entries))
        entry = table + 8 * k
        yield f"{label}: part {p} offset[{k}] zero", _put(data, entry, bytes(8))
        yield f"{label}: part {p} offset[{k}] past end", _put(data, entry, struct.pack("<Q", n + 100))
        yield f"{label}: part {p} offset[{k}] into its chunk", _put(data, entry, struct.pack("<Q", chunks[k][0] + 3))
        yield f"{label}: part {p} offset[{k}] = offset[{(k + 1) % entries}]", _put(data, entry, data[table + 8 * ((k + 1) % entries):][:8])
        leader, at, size = chunks[k]
        yield f"{label}: part {p} chunk {k} size huge", _put(data, at - 4, _i32(0x7FFFFFF0))
        yield f"{label}: part {p} chunk {k} size -1", _put(data, at - 4, _i32(-1))
        yield f"{label}: part {p} chunk {k} line moved", _put(data, at - 8, _i32(struct.unpack_from("<i", data, at - 8)[0] + 1))
        if at - leader == 12:
            yield f"{label}: part {p} chunk {k} part number wrong", _put(data, leader, _i32(p + 1))
        yield f"{label}: part {p} chunk {k} data zeroed", _put(data, at, bytes(size))
        flip = at + int(rng.integers(size))
        yield f"{label}: part {p} chunk {k} data byte {flip} flipped", _put(data, flip, bytes([data[flip] ^ 0xFF]))
    # Cuts: in the magic, the version, the headers, every table and every part's chunks, the last byte.
    cuts = {0, 3, 6, 7, first.value_at + 5, m.tables[0][0] - 1, n - 1}
    cuts |= {t + 8 * int(rng.integers(e)) + 3 for t, e in m.tables}
    cuts |= {c[int(rng.integers(len(c)))][1] + 2 for c in m.chunks}
    for cut in sorted(cuts):
        yield f"{label}: cut at {cut}", data[:cut]
    # Zeroed ranges and flipped bytes anywhere, seeded.
    for _ in range(3):
        lo = int(rng.integers(8, n - 64))
        hi = lo + int(rng.integers(16, 4096))
        yield f"{label}: zeroed [{lo}, {hi})", _put(data, lo, bytes(min(hi, n) - lo))
    for _ in range(4):
        at = int(rng.integers(n))
        yield f"{label}: byte {at} flipped", _put(data, at, bytes([data[at] ^ (1 << int(rng.integers(8)))]))
