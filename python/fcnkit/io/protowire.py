"""Protocol-buffer wire primitives, for the two places that skip protobuf objects for speed: reading
caffemodels zero-copy (`caffe_schema.read_caffemodel`) and writing/reading Datum records (`lmdb_io`).

Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 (groups, 3 and 4, are not used by Caffe).
"""

from __future__ import annotations

from collections.abc import Iterator


class Corrupt(ValueError):
    """The bytes are not a well-formed message (truncated, overlong varint, bad wire type)."""


def encode_varint(n: int) -> bytes:
    """Base-128 varint; negative int32/int64 values are sign-extended to 10 bytes, as protobuf does."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    """The tag that precedes a field's value."""
    return encode_varint(field << 3 | wire_type)


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the varint at `pos`, which must end before `end`."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise Corrupt(f"varint runs past the end of its message at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Corrupt(f"varint longer than 10 bytes at byte {pos}")


def fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yield (field number, wire type, value) for one message; varints are ints, every other value is its
    (start, end) byte span in `buf`."""
    pos = start
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise Corrupt(f"field number 0 at byte {pos}")
        if wt == 0:
            val, pos = read_varint(buf, pos, end)
            yield num, wt, val
            continue
        if wt == 2:
            n, pos = read_varint(buf, pos, end)
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
        else:
            raise Corrupt(f"unsupported wire type {wt} at byte {pos}")
        if pos + n > end:
            raise Corrupt(f"a {n}-byte field at byte {pos} runs past the end of its message ({end})")
        yield num, wt, (pos, pos + n)
        pos += n


def signed64(v: int) -> int:
    """A varint read as int64/int32 (two's complement over 64 bits)."""
    return v - (1 << 64) if v >= 1 << 63 else v
