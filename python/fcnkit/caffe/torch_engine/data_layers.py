"""Caffe's Data layers as a PyTorch input pipeline: the same LMDBs, the same order, the same transform.

Each Data layer reads its LMDB in key order from the first record and wraps around at the end, exactly as
Caffe's DataLayer (through its DataReader) does, so the paired image and label LMDBs stay in step and both
engines see the same mini-batches. Caffe's DataTransformer for raw uint8 Datums is
`(value - mean) * scale` in float32, the mean from `mean_value` (one per channel, or one for all) or a
`mean_file`; a second top carries each Datum's `label`. Batches are assembled on a background thread
(Caffe prefetches too), in order. Random crops and mirroring draw from Caffe's RNG and are refused: use
the PairedMirror Python layer, which the torch engine reproduces draw for draw.

Under torchrun the TRAIN net's feeder reads only this rank's records, as Caffe's multi-GPU DataLayer does
(DataLayer::Skip): record i of the stream (counted across wrap-arounds) goes to rank i mod N, so the N
ranks' batches of B together are the N x B consecutive records one process with batch N x B would read.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import lmdb
import numpy as np
import torch

from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import read_mean_file
from fcnkit.io.lmdb_io import check_lmdb, decode_datum
from fcnkit.training.distributed import Dist

LMDB_BACKEND = 1  # DataParameter.DB


class DataLayerSource:
    """One Data layer: its LMDB, its transform, its batch size and top shapes."""

    def __init__(self, layer, net_path):
        p, tp = layer.data_param, layer.transform_param

        def bad(msg):
            raise UserError(f"{net_path}: layer '{layer.name}' (Data): {msg}")

        if p.backend != LMDB_BACKEND:
            bad("only LMDB sources are supported (backend: LMDB)")
        if tp.crop_size or tp.mirror or tp.force_color or tp.force_gray:
            bad("crop_size/mirror/force_color/force_gray draw from or depend on Caffe internals the torch engine "
                "does not reproduce; remove them (PairedMirror mirrors image and label together) or use "
                "--engine caffe")
        if len(layer.top) not in (1, 2):
            bad(f"has {len(layer.top)} tops; give data (and optionally label)")
        self.name, self.tops, self.batch = layer.name, list(layer.top), p.batch_size
        self.path = Path(p.source)
        info = check_lmdb(self.path)
        first, _ = decode_datum(info.first_value)
        self.item_shape = tuple(first.shape)
        c = self.item_shape[0]
        self.scale = np.float32(tp.scale)
        self.mean = None
        if tp.mean_file:
            if len(tp.mean_value):
                bad("give mean_file or mean_value, not both (Caffe's rule)")
            mean = read_mean_file(tp.mean_file)
            if mean.shape != self.item_shape:
                bad(f"mean_file {tp.mean_file} is {mean.shape}, the records are {self.item_shape}")
            self.mean = mean.astype(np.float32)
        elif len(tp.mean_value):
            values = list(tp.mean_value)
            if len(values) not in (1, c):
                bad(f"{len(values)} mean_value entries for {c} channels; give 1 or {c}")
            self.mean = np.asarray(values * (c if len(values) == 1 else 1), np.float32).reshape(c, 1, 1)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {self.tops[0]: (self.batch, *self.item_shape)}
        if len(self.tops) > 1:
            out[self.tops[1]] = (self.batch,)
        return out

    def transform(self, chw: np.ndarray) -> np.ndarray:
        x = chw.astype(np.float32)
        if self.mean is not None:
            x -= self.mean
        return x * self.scale


class NetFeeder:
    """Every Data layer of one net, batch after batch in Caffe's order, prefetched on a thread.

    next() -> {top: tensor on `device`}. Each feeder starts at each LMDB's first record (a resumed Caffe run
    starts its data there too)."""

    def __init__(self, sources: list[DataLayerSource], device: torch.device, depth: int = 3,
                 shard: Dist | None = None):
        self.sources, self.device, self.shard = sources, device, shard or Dist()
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, daemon=True, name="fcnkit-data")
        self.started = False

    def _produce(self):
        envs, cursors = [], []
        try:
            for s in self.sources:
                env = lmdb.open(str(s.path), readonly=True, lock=False, readahead=False, max_readers=8)
                txn = env.begin()
                cur = txn.cursor()
                cur.first()
                envs.append((env, txn))
                cursors.append(cur)
            offsets = [0] * len(self.sources)
            while not self.stop.is_set():
                batch = {}
                for k, (s, cur) in enumerate(zip(self.sources, cursors, strict=True)):
                    data = np.empty((s.batch, *s.item_shape), np.float32)
                    labels = np.empty((s.batch,), np.float32)
                    for i in range(s.batch):
                        while not self.shard.keeps(offsets[k]):  # another rank's record
                            offsets[k] += 1
                            if not cur.next():
                                cur.first()
                        offsets[k] += 1
                        chw, label = decode_datum(cur.value())
                        if chw.shape != s.item_shape:
                            raise UserError(f"{s.path}: record {bytes(cur.key())!r} is {chw.shape}, the first "
                                            f"record is {s.item_shape}; rebuild it with `prep lmdb`")
                        data[i] = s.transform(chw)
                        labels[i] = label
                        if not cur.next():
                            cur.first()
                    batch[s.tops[0]] = torch.from_numpy(data)
                    if len(s.tops) > 1:
                        batch[s.tops[1]] = torch.from_numpy(labels)
                self._put(batch)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        finally:
            for env, txn in envs:
                txn.abort()
                env.close()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def batch_size(self) -> int:
        return self.sources[0].batch if self.sources else 0

    def next(self) -> dict[str, torch.Tensor]:
        if not self.started:
            self.thread.start()
            self.started = True
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        if self.device.type == "cpu":
            return item
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in item.items()}

    def close(self):
        self.stop.set()
        if self.started:
            self.thread.join(timeout=5)
