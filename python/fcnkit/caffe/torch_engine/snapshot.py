"""Write Caffe's binary snapshot files: `.caffemodel` (NetParameter) and `.solverstate` (SolverState).

The files are protobuf messages encoded field by field (`io.protowire`), the weight arrays streamed
straight from memory: a 537 MB FCN-8s never becomes a protobuf object. What is written is what Caffe's
Solver::Snapshot writes: the net's name and every layer's LayerParameter (phase set) with its blobs (shape
+ packed float data), and a SolverState {iter, learned_net, history blobs, current_step}. Caffe loads
both (`--weights`, `--resume`, `caffe train --snapshot`). Each file is written under a temporary name,
flushed and renamed (`io.atomic`), the caffemodel before the solverstate that names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fcnkit.io.atomic import atomic_path
from fcnkit.io.protowire import encode_varint, key

# caffe.proto field numbers
NET_NAME, NET_LAYER = 1, 100
LAYER_BLOBS, LAYER_PHASE = 7, 10
BLOB_DATA, BLOB_SHAPE, SHAPE_DIM = 5, 7, 1
STATE_ITER, STATE_LEARNED_NET, STATE_HISTORY, STATE_CURRENT_STEP = 1, 2, 3, 4
PHASES = {"TRAIN": 0, "TEST": 1}


def _length_delimited(field: int, length: int) -> bytes:
    return key(field, 2) + encode_varint(length)


def blob_parts(arr: np.ndarray) -> list:
    """A BlobProto {shape, data (packed)} as byte strings and the array itself (written without a copy)."""
    dims = b"".join(encode_varint(int(d)) for d in arr.shape)
    shape = _length_delimited(SHAPE_DIM, len(dims)) + dims if dims else b""
    parts: list = [_length_delimited(BLOB_SHAPE, len(shape)) + shape]
    data = np.ascontiguousarray(arr, dtype="<f4")
    if data.size:
        parts += [_length_delimited(BLOB_DATA, data.nbytes), data]
    return parts


def _size(parts) -> int:
    return sum(p.nbytes if isinstance(p, np.ndarray) else len(p) for p in parts)


def _write(fh, parts) -> None:
    for p in parts:
        fh.write(memoryview(p.reshape(-1)).cast("B") if isinstance(p, np.ndarray) else p)


def write_caffemodel(path: str | os.PathLike, net, phase: str,
                     blobs: Iterable[tuple[str, list[np.ndarray]]]) -> Path:
    """`net`: the phase-filtered NetParameter; `blobs`: (layer name, [array in Caffe's shape]) for the layers
    with parameters, produced lazily (one layer's arrays in memory at a time)."""
    by_layer = dict.fromkeys(lay.name for lay in net.layer)
    pending = iter(blobs)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        name = net.name.encode()
        if name:
            fh.write(_length_delimited(NET_NAME, len(name)) + name)
        nxt = next(pending, None)
        for lay in net.layer:
            param = type(lay)()
            param.CopyFrom(lay)
            param.ClearField("blobs")
            param.phase = PHASES[phase]
            head = param.SerializeToString()
            arrays: list[np.ndarray] = []
            if nxt is not None and nxt[0] == lay.name:
                arrays = nxt[1]
                nxt = next(pending, None)
            parts = [head]
            for a in arrays:
                bp = blob_parts(a)
                parts += [_length_delimited(LAYER_BLOBS, _size(bp))] + bp
            fh.write(_length_delimited(NET_LAYER, _size(parts)))
            _write(fh, parts)
        if nxt is not None:
            where = "not in the net" if nxt[0] not in by_layer else "out of the net's order"
            raise RuntimeError(f"torch engine bug: blobs for layer {nxt[0]!r} are {where}")
    return Path(path)


def write_solverstate(path: str | os.PathLike, *, iteration: int, learned_net: str, current_step: int,
                      history: Iterable[np.ndarray]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(key(STATE_ITER, 0) + encode_varint(iteration))
        name = learned_net.encode()
        fh.write(_length_delimited(STATE_LEARNED_NET, len(name)) + name)
        for arr in history:
            bp = blob_parts(arr)
            fh.write(_length_delimited(STATE_HISTORY, _size(bp)))
            _write(fh, bp)
        fh.write(key(STATE_CURRENT_STEP, 0) + encode_varint(current_step))
    return Path(path)
