"""`prep lmdb`: image/mask pairs -> the paired Caffe LMDBs the training nets read.

Layout under OUT (the contract with the training code):

    OUT/train_image_lmdb  OUT/train_label_lmdb  OUT/val_image_lmdb  OUT/val_label_lmdb  OUT/manifest.json
    (+ OUT/test_image_lmdb  OUT/test_label_lmdb when a held-out test split is given: `prep import`)

* image Datum: 3 x S x S uint8, BGR, CHW (what Caffe's Data layer and `caffe.io` expect);
* label Datum: 1 x S x S uint8 class ids: 0 background, 1 sneaker, 255 ignore;
* keys 00000000, 00000001, ... in both LMDBs of a split, in the same order: two `Data` layers with the
  same batch size read them in step (no `mirror`/`crop_size` on either: their RNGs would desynchronise);
* S = 224 by default (paper); images are resized with area averaging (linear when enlarging), labels
  with nearest neighbour so no new class ids appear; `fit=stretch` resizes the whole image (Caffe's
  convert_imageset does the same), `fit=pad` pads to a square first (white image, background label);
* split: the pairs, in source order, are shuffled by `seed`; the first round(n * val_fraction) go to val.
  Caffe's Data layer does not shuffle, so the shuffled order is also the order SGD sees them in;
* written into OUT/.lmdb-tmp-<pid>/ and moved into place only when all four are complete; manifest.json
  is written last, so its presence means the set is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
from tqdm import tqdm

from fcnkit.config.paper import IMAGE_SIZE, VAL_FRACTION
from fcnkit.errors import UserError
from fcnkit.io import atomic
from fcnkit.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    histogram,
    mask_to_label,
    read_bgr,
    read_mask,
)
from fcnkit.io.lmdb_io import LMDBWriter, check_lmdb, decode_datum, encode_datum, image_to_chw, read_lmdb
from fcnkit.prep import common

SPLITS = ("train", "val")
ALL_SPLITS = (*SPLITS, "test")  # test: only when given (`test_pairs`), never drawn from the pairs


def lmdb_names(splits=SPLITS) -> tuple[str, ...]:
    return tuple(f"{s}_{k}_lmdb" for s in splits for k in ("image", "label"))


LMDB_NAMES = lmdb_names()
LMDB_MANIFEST = "manifest.json"
FORMAT = "fcnkit-lmdb-pairs/1"


def fit_square(
    img: np.ndarray, label: np.ndarray, size: int, fit: str = "stretch"
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image and its label to size x size (area/linear for the image, nearest for labels)."""
    if fit == "pad":
        h, w = label.shape
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        if h != w:
            img = cv2.copyMakeBorder(
                img, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=(255, 255, 255)
            )
            label = cv2.copyMakeBorder(
                label, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0
            )
    elif fit != "stretch":
        raise UserError(f"--fit {fit}: choose stretch or pad")
    h, w = label.shape
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if h > size and w > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
        label = cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST)
    return img, label


_W: dict = {}


def _init(size: int, fit: str, mask_format: str, max_pixels: int) -> None:
    _W.update(size=size, fit=fit, mask_format=mask_format, max_pixels=max_pixels)


def _record(task: tuple[str, str, str, str]):
    split, image, mask, name = task
    try:
        bgr = read_bgr(image, max_pixels=_W["max_pixels"])  # Caffe's channel order
        try:
            raw = read_mask(mask, max_pixels=_W["max_pixels"])
        except ImageReadError as exc:
            raise ImageReadError(exc.code, f"mask {mask}: {exc.reason}") from None
        if raw.shape != bgr.shape[:2]:
            raise ImageReadError(
                "size-mismatch",
                f"mask is {raw.shape[1]}x{raw.shape[0]} but the image is {bgr.shape[1]}x{bgr.shape[0]}",
            )
        try:
            label = mask_to_label(raw, _W["mask_format"])
        except ValueError as exc:
            raise ImageReadError("bad-mask", f"mask {mask}: {exc}") from None
    except ImageReadError as exc:
        return split, None, None, {"name": name, "source": image, "code": exc.code, "reason": exc.reason}
    bgr, label = fit_square(bgr, label, _W["size"], _W["fit"])
    counts = histogram(label)
    stats = {"fg": int(counts[1]), "ignore": int(counts[255]), "bgr_sum": list(cv2.sumElems(bgr)[:3])}
    return split, encode_datum(image_to_chw(bgr)), encode_datum(label[None]), stats


def split_pairs(pairs: list[common.Pair], val_fraction: float, seed: int) -> dict[str, list[common.Pair]]:
    """Deterministic shuffle (numpy PCG64 seeded by `seed`), then the first round(n * f) pairs are val."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = int(round(len(pairs) * val_fraction))
    if val_fraction > 0 and len(pairs) >= 2:
        n_val = min(max(n_val, 1), len(pairs) - 1)
    return {"val": [pairs[i] for i in order[:n_val]], "train": [pairs[i] for i in order[n_val:]]}


def build_lmdbs(
    pairs: list[common.Pair],
    out_dir: str | os.PathLike,
    *,
    size: int = IMAGE_SIZE,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    fit: str = "stretch",
    mask_format: str = "auto",
    workers: int | None = None,
    strict: bool = False,
    quiet: bool = False,
    sources: list[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    val_pairs: list[common.Pair] | None = None,
    test_pairs: list[common.Pair] | None = None,
    on_record=None,
) -> dict:
    """Write the four LMDBs and manifest.json under `out_dir`; returns the manifest dict.

    With `val_pairs`, those form the val split as given and all of `pairs` (shuffled) the train split.
    With `test_pairs`, a third pair of LMDBs (test_*_lmdb) holds them in the order given.
    `on_record(n_written)` is called after each record (progress hooks, tests that interrupt a run).
    """
    out_dir = Path(out_dir)
    if size < 8:
        raise UserError(f"--size {size}: too small (at least 8)")
    if fit not in ("stretch", "pad"):
        raise UserError(f"--fit {fit}: choose stretch or pad")
    if not pairs:
        raise UserError("no image/mask pairs to write")
    if val_pairs is None:
        splits = split_pairs(pairs, val_fraction, seed)
    else:
        splits = {"train": split_pairs(pairs, 0.0, seed)["train"], "val": list(val_pairs)}
        val_fraction = round(len(val_pairs) / max(1, len(val_pairs) + len(pairs)), 4)
    if test_pairs:
        splits["test"] = list(test_pairs)
    names = lmdb_names(splits)
    tasks = [(s, p.image, p.mask, p.name) for s in splits for p in splits[s]]
    old = out_dir / LMDB_MANIFEST
    if old.is_file():
        try:
            ours = json.loads(old.read_text()).get("format") == FORMAT
        except (ValueError, AttributeError):
            ours = False
        if not ours:
            raise UserError(f"{old}: exists and was not written by `prep lmdb`; choose another --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale(out_dir, ".lmdb-tmp-")
    staging = out_dir / f".lmdb-tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    t0 = time.perf_counter()
    try:
        writers = {name: LMDBWriter(staging / name) for name in names}
        for w in writers.values():
            w.__enter__()
        counts = dict.fromkeys(splits, 0)
        fg = dict.fromkeys(splits, 0)
        ignore = dict.fromkeys(splits, 0)
        written = {s: [] for s in splits}
        bgr_sum = np.zeros(3, np.float64)
        skipped = []
        exc_info = (None, None, None)
        try:
            for n, (split, img, lbl, stats) in enumerate(
                common.parallel_map(
                    _record,
                    tasks,
                    workers=workers,
                    desc="lmdb",
                    quiet=quiet,
                    unit="rec",
                    initializer=_init,
                    initargs=(size, fit, mask_format, max_pixels),
                )
            ):
                if img is None:
                    skipped.append(stats | {"split": split})
                    continue
                key = f"{counts[split]:08d}"
                writers[f"{split}_image_lmdb"].put(key, img)
                writers[f"{split}_label_lmdb"].put(key, lbl)
                counts[split] += 1
                written[split].append(tasks[n][3])
                fg[split] += stats["fg"]
                ignore[split] += stats["ignore"]
                if split == "train":
                    bgr_sum += stats["bgr_sum"]
                if on_record is not None:
                    on_record(n + 1)
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            raise
        finally:
            for w in writers.values():
                w.__exit__(*exc_info)
        total = sum(counts.values())
        if total == 0:
            raise UserError(
                f"no usable image/mask pair: all {len(tasks)} skipped "
                f"({common.summarize_skips(skipped)}): {common.first_reasons(skipped, 3)}"
            )
        if strict and skipped:
            raise UserError(
                f"--strict: {len(skipped)} of {len(tasks)} pairs unusable "
                f"({common.summarize_skips(skipped)}): {common.first_reasons(skipped, 3)}"
            )
        expected_empty = {"val"} if not splits["val"] else set()
        for split in splits:
            if counts[split] == 0 and split not in expected_empty:
                lost = [r for r in skipped if r["split"] == split]
                raise UserError(
                    f"the {split} split would be empty: all {len(lost)} of its pairs were skipped "
                    f"({common.summarize_skips(lost)}): {common.first_reasons(lost, 3)}; fix them"
                    + (" or pass --val-fraction 0" if split == "val" else "")
                )
        px = size * size
        manifest = {
            "format": FORMAT,
            "size": size,
            "channels": 3,
            "channel_order": "BGR",
            "layout": "CHW",
            "classes": {"0": "background", "1": "sneaker", "255": "ignore"},
            "splits": {
                s: {
                    "count": counts[s],
                    "image_lmdb": f"{s}_image_lmdb",
                    "label_lmdb": f"{s}_label_lmdb",
                    "sneaker_fraction": round(fg[s] / max(1, counts[s] * px), 5),
                    "ignore_fraction": round(ignore[s] / max(1, counts[s] * px), 5),
                }
                for s in splits
            },
            "mean_bgr": [round(v / max(1, counts["train"] * px), 3) for v in bgr_sum],
            "keys": "8-digit zero-padded, identical and in the same order in a split's image and label LMDB",
            "names": written,  # the pair behind each key, in key order
            "val_fraction": val_fraction,
            "split": "random (seeded shuffle)" if val_pairs is None else "given (val sources)",
            "seed": seed,
            "fit": fit,
            "mask_format": mask_format,
            "interpolation": {"image": "area (linear when enlarging)", "label": "nearest"},
            "sources": sources or [],
            "pairs_in": len(tasks),
            "skipped": skipped,
            "seconds": round(time.perf_counter() - t0, 2),
            "created_by": "fcnkit prep lmdb",
        }
        # Swap in: old manifest first (its absence marks the set incomplete), then the LMDBs, manifest last.
        (out_dir / LMDB_MANIFEST).unlink(missing_ok=True)
        for name in names:
            atomic.replace_path(staging / name, out_dir / name)
        for name in set(lmdb_names(ALL_SPLITS)) - set(names):  # a test split of an earlier build
            shutil.rmtree(out_dir / name, ignore_errors=True)
        atomic.write_text_atomic(out_dir / LMDB_MANIFEST, json.dumps(manifest, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _open_env(path: Path):
    check_lmdb(path)  # present and whole: a truncated file would be a SIGBUS below
    return lmdb.open(str(path), readonly=True, lock=False, readahead=False)


def verify_lmdbs(out_dir: str | os.PathLike, *, quiet: bool = False) -> dict:
    """Re-read the four LMDBs: counts (vs manifest.json), key alignment, Datum shapes and label values.

    Returns {split: {count, sneaker_fraction, ...}}; raises UserError naming the first problem.
    """
    out_dir = Path(out_dir)
    mpath = out_dir / LMDB_MANIFEST
    if not mpath.is_file():
        raise UserError(
            f"{out_dir}: no {LMDB_MANIFEST}, so the LMDB set is missing or incomplete; "
            "rebuild it with `prep lmdb SOURCE... --out DIR`"
        )
    try:
        manifest = json.loads(mpath.read_text())
        size = int(manifest["size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{mpath}: unreadable manifest ({exc}); rebuild with `prep lmdb`") from exc
    report = {}
    for split in [s for s in ALL_SPLITS if s in SPLITS or s in manifest.get("splits", {})]:
        ip, lp = out_dir / f"{split}_image_lmdb", out_dir / f"{split}_label_lmdb"
        ienv, lenv = _open_env(ip), _open_env(lp)
        try:
            ni, nl = ienv.stat()["entries"], lenv.stat()["entries"]
            want = manifest.get("splits", {}).get(split, {}).get("count")
            if ni != nl:
                raise UserError(f"{split}: {ip.name} has {ni} records but {lp.name} has {nl}; rebuild")
            if want is not None and ni != want:
                raise UserError(f"{split}: {ni} records but {mpath.name} says {want}; rebuild")
            if ni == 0 and (split == "train" or manifest.get("val_fraction", 1) > 0):
                raise UserError(f"{split}: the split is empty; `solve` and `evaluate` cannot use it: rebuild")
            hist = np.zeros(256, np.int64)
            with ienv.begin() as it, lenv.begin() as lt:
                bar = tqdm(
                    zip(it.cursor(), lt.cursor(), strict=True),
                    total=ni,
                    desc=f"verify {split}",
                    unit="rec",
                    disable=quiet,
                    leave=False,
                )
                for k, ((ik, iv), (lk, lv)) in enumerate(bar):
                    if ik != lk:
                        raise UserError(f"{split}: record {k}: image key {ik!r} != label key {lk!r}; rebuild")
                    if ik != f"{k:08d}".encode():
                        raise UserError(f"{split}: record {k} has key {ik!r}, expected {k:08d}; rebuild")
                    img, _ = decode_datum(iv)
                    lab, _ = decode_datum(lv)
                    if img.shape != (3, size, size):
                        raise UserError(
                            f"{split}: {ik.decode()}: image Datum is {img.shape}, "
                            f"expected (3, {size}, {size})"
                        )
                    if lab.shape != (1, size, size):
                        raise UserError(
                            f"{split}: {ik.decode()}: label Datum is {lab.shape}, "
                            f"expected (1, {size}, {size})"
                        )
                    h = histogram(lab[0])
                    present = np.flatnonzero(h)
                    bad = present[~np.isin(present, [0, 1, 255])]
                    if bad.size:
                        raise UserError(
                            f"{split}: {ik.decode()}: label values {bad[:5].tolist()} outside "
                            "0/1/255; rebuild"
                        )
                    hist += h
        finally:
            ienv.close()
            lenv.close()
        px = max(1, hist.sum())
        report[split] = {
            "count": ni,
            "sneaker_fraction": round(hist[1] / px, 5),
            "ignore_fraction": round(hist[255] / px, 5),
        }
    return report


def read_pair_arrays(out_dir: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """All records of a split as (N, 3, S, S) BGR and (N, 1, S, S) label arrays (small sets, tests)."""
    out_dir = Path(out_dir)
    imgs = [decode_datum(v)[0] for _, v in read_lmdb(out_dir / f"{split}_image_lmdb")]
    labs = [decode_datum(v)[0] for _, v in read_lmdb(out_dir / f"{split}_label_lmdb")]
    return np.stack(imgs), np.stack(labs)
