"""Caffe `Datum` records in LMDB, written atomically.

Datums are encoded on the wire by hand (seven fields, see caffe.proto `message Datum`; primitives in
`protowire`): it needs no pycaffe, is several times faster than building protobuf objects, and the
tests check the bytes against Caffe's own parser and its `Data` layer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np

from fcnkit.errors import UserError
from fcnkit.io.atomic import replace_path
from fcnkit.io.protowire import encode_varint, fields, key, signed64

# Datum field numbers (caffe.proto).
_CHANNELS, _HEIGHT, _WIDTH, _DATA, _LABEL, _FLOAT_DATA, _ENCODED = 1, 2, 3, 4, 5, 6, 7


def encode_datum(chw: np.ndarray, label: int = 0) -> bytes:
    """A uint8 (C, H, W) array (BGR for images, class ids for labels) as a serialized Datum."""
    if chw.ndim != 3 or chw.dtype != np.uint8:
        raise ValueError(f"encode_datum wants a uint8 CHW array, got {chw.dtype} {chw.shape}")
    c, h, w = chw.shape
    data = np.ascontiguousarray(chw).tobytes()
    return b"".join((
        key(_CHANNELS, 0), encode_varint(c),
        key(_HEIGHT, 0), encode_varint(h),
        key(_WIDTH, 0), encode_varint(w),
        key(_DATA, 2), encode_varint(len(data)), data,
        key(_LABEL, 0), encode_varint(label),
    ))


def decode_datum(buf: bytes) -> tuple[np.ndarray, int]:
    """Inverse of encode_datum for raw uint8 Datums -> ((C, H, W) uint8 array, label)."""
    values = {_CHANNELS: 0, _HEIGHT: 0, _WIDTH: 0, _LABEL: 0}
    data = b""
    for num, wt, val in fields(buf, 0, len(buf)):
        if wt == 0:
            if num == _ENCODED and val:
                raise ValueError("encoded (JPEG/PNG) Datums are not supported here")
            values[num] = val
        elif num == _DATA:
            data = buf[val[0]:val[1]]
        elif num == _FLOAT_DATA:
            raise ValueError("float_data Datums are not supported here")
    c, h, w = values[_CHANNELS], values[_HEIGHT], values[_WIDTH]
    if len(data) != c * h * w:
        raise ValueError(f"Datum says {c}x{h}x{w} but holds {len(data)} bytes")
    label = signed64(values[_LABEL])
    if label >= 1 << 31:
        label -= 1 << 32  # int32 written without sign extension by other encoders
    return np.frombuffer(data, np.uint8).reshape(c, h, w), label


def image_to_chw(bgr_hwc: np.ndarray) -> np.ndarray:
    """OpenCV-style (H, W, 3) BGR or (H, W) gray uint8 -> Caffe's (C, H, W)."""
    if bgr_hwc.ndim == 2:
        return bgr_hwc[None]
    return bgr_hwc.transpose(2, 0, 1)


class LMDBWriter:
    """Write key/value records to `path` via `path.tmp-<pid>`, renamed into place only on success.

    The map starts small and doubles on MapFullError, so no huge sparse file is reserved up front.
    Used as a context manager; an exception (or Ctrl-C) removes the temporary directory.
    """

    def __init__(self, path: str | os.PathLike, map_size: int = 64 << 20, commit_every: int = 256):
        self.path = Path(path)
        self.tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self.map_size = map_size
        self.commit_every = commit_every
        self.count = 0
        self._pending: list[tuple[bytes, bytes]] = []
        self._env = None

    def __enter__(self) -> LMDBWriter:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            self._env = lmdb.open(str(self.tmp), map_size=self.map_size, subdir=True, meminit=False)
        return self

    @contextlib.contextmanager
    def _errors(self):
        """LMDB reports a full or read-only disk as lmdb.Error (EIO on commit): say so in one line."""
        try:
            yield
        except lmdb.MapFullError:
            raise
        except lmdb.Error as exc:
            raise UserError(f"{self.path}: cannot write the LMDB ({exc}); the disk may be full or read-only: free "
                            "space or write elsewhere") from None

    def put(self, key: str | bytes, value: bytes) -> None:
        self._pending.append((key.encode() if isinstance(key, str) else key, value))
        if len(self._pending) >= self.commit_every:
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            try:
                with self._errors(), self._env.begin(write=True) as txn:
                    for k, v in self._pending:
                        txn.put(k, v)
                self.count += len(self._pending)
                self._pending.clear()
            except lmdb.MapFullError:
                self.map_size *= 2
                self._env.set_mapsize(self.map_size)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
                with self._errors():
                    self._env.sync()
        finally:
            self._env.close()
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        replace_path(self.tmp, self.path)


REBUILD = "rebuild it with `prep lmdb` (or `prep sample` for the demo data)"


@dataclass(frozen=True)
class LmdbInfo:
    path: Path
    entries: int
    first_key: bytes | None
    first_value: bytes | None


def check_lmdb(path: str | os.PathLike) -> LmdbInfo:
    """Open an LMDB read-only and prove it is whole before anyone maps it.

    LMDB maps data.mdb into memory; a page beyond the end of a truncated file is a SIGBUS that kills the
    process (Caffe's Data layer, evaluate, --verify) with nothing printed. The meta page records the last
    page in use, so the file must hold at least (last page + 1) x page size bytes.
    """
    path = Path(path)
    data = path / "data.mdb"
    if not data.is_file():
        raise UserError(f"{path}: not an LMDB directory (no data.mdb); {REBUILD}")
    size = data.stat().st_size
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, max_readers=4)
    except lmdb.Error as exc:
        raise UserError(f"{data}: not a readable LMDB ({exc}); {REBUILD}") from None
    try:
        need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if size < need:
            raise UserError(f"{data}: truncated ({size} bytes, its header says {need}); {REBUILD}")
        entries = env.stat()["entries"]
        first = None
        if entries:
            with env.begin() as txn:
                cur = txn.cursor()
                if cur.first():
                    first = (bytes(cur.key()), bytes(cur.value()))
    except lmdb.Error as exc:
        raise UserError(f"{data}: corrupt LMDB ({exc}); {REBUILD}") from None
    finally:
        env.close()
    return LmdbInfo(path, entries, first[0] if first else None, first[1] if first else None)


def read_lmdb(path: str | os.PathLike):
    """Yield (key, value) pairs of an LMDB in key order (checked whole first: see check_lmdb)."""
    path = Path(path)
    check_lmdb(path)
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            yield from txn.cursor()
    finally:
        env.close()
