"""The real-photo tasks' data (`config.realdata.REAL_TASKS`), read from what `prep real` wrote: one import path
for the benchmark, the README's runs and a user's own `prep real` (`prep.realdata`, the layouts and options).

`prepare(root, work, tasks)` runs `prep real ROOT --out WORK` for the data sets the tasks need (kept when
already prepared with the same options). `READERS[task](work, n_train, n_test, seed, n_val)` then returns
{"train", "val", "test"} samples (labels 0/1) from WORK, a seeded random choice of at most n_train / n_val /
n_test (val drawn with seed + 1), only the chosen photos read:

* portraits, DUTS, fashion: `prep import`'s {train,val,test} folders (official test lists; fashion's person =
  label > 0, its test split drawn by `prep import`), every photo at its own size;
* shoes: `prep masks`' near-white masks of every photo at its own size, split as `prep ingest` split them
  (the white LMDBs' manifest names each split's photos);
* shoes_scenes: `prep ingest`'s composites, train/val shoes over BSDS train/val scenes, the test shoes over the
  test scenes only;
* COCO: `prep coco`'s prominent-object masks (ExtractNet's rules, 224 px), split here by a seeded shuffle.

`write_split` stores a train or val split as an image folder with masks/ (what `fcnkit train` reads),
squares at `REAL_STORE` px; test samples stay in memory at their own size and are scored there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.realdata import REAL_STORE
from fcnkit.data.datasets import Sample, load_samples
from fcnkit.errors import UserError
from fcnkit.io.atomic import write_text_atomic
from fcnkit.io.images import ImageReadError, encode_jpeg, encode_png, read_bgr, read_mask, write_bytes
from fcnkit.prep import common
from fcnkit.prep.lmdb_build import LMDB_MANIFEST
from fcnkit.prep.realdata import SOURCES, prepare_real

TEST_FRACTION = 0.2  # ours: tasks without official lists hold out this share, by a seeded shuffle
SPLIT_MARKER = "split.json"
SPLITS = ("train", "val", "test")
TASK_SET = {"duts": "duts", "portraits": "portraits", "fashion": "fashion", "coco": "coco", "shoes": "shoes",
            "shoes_scenes": "shoes"}  # the `prep real` set each task reads


def prepare(root: Path, work: Path, tasks: list[str], *, limit: int | None = None, seed: int = 0,
            log=print) -> Path:
    """`prep real ROOT --out WORK` for the sets TASKS read (one worker, no bars); returns WORK."""
    prepare_real(root, work, only=sorted({TASK_SET[t] for t in tasks}), limit=limit, seed=seed, workers=1,
                 quiet=True, log=log)
    return work


def _prepared(work: Path, task: str) -> Path:
    name = TASK_SET[task]
    folder = work / name
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; the data root has no {' or '.join(SOURCES[name])} folder for the "
                        f"{task} task (see ../shared/realdata/README.md, or `prep fetch`)")
    return folder


def _subset(items: list, n: int | None, seed: int) -> list:
    """At most n items, a seeded random choice kept in the original order (all when n is None)."""
    if n is None or n >= len(items):
        return list(items)
    return hold_out(items, n, seed)[1]


def hold_out(items: list, k: int, seed: int) -> tuple[list, list]:
    """(the rest, k items held out): a seeded random choice, both kept in the original order. Never the last k:
    folders list files by name, and names group by source (DUTS-TR's name-sorted tail is all SUN scenes)."""
    held = set(np.random.default_rng(seed).permutation(len(items))[:k].tolist())
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def _pairs_samples(pairs: list[common.Pair]) -> list[Sample]:
    """The readable pairs as samples, label 1 where the 0/255 mask is above half; unreadable files and masks
    of another size are passed over."""
    out = []
    for p in pairs:
        try:
            bgr, m = read_bgr(p.image), read_mask(p.mask)
        except ImageReadError:
            continue
        if bgr.shape[:2] == m.shape:
            out.append(Sample(p.name, bgr, (m > 127).astype(np.uint8)))
    return out


def _chosen(pairs: dict[str, list[common.Pair]], n_train, n_test, seed, n_val) -> dict[str, list[Sample]]:
    """Each split's pairs cut to n_train / n_val / n_test (val by seed + 1), read as samples."""
    cut = {"train": (n_train, seed), "val": (n_val, seed + 1), "test": (n_test, seed)}
    return {split: _pairs_samples(_subset(pairs.get(split, []), *cut[split])) for split in SPLITS}


def _import_pairs(folder: Path) -> dict[str, list[common.Pair]]:
    """`prep import`'s OUT/<split>/<photo> + OUT/<split>/masks/<stem>.png, per split present."""
    return {s: common.pairs_from_folders(folder / s, folder / s / "masks") for s in SPLITS
            if (folder / s / "masks").is_dir()}


def _import_task(task: str):
    def read(work: Path, n_train=None, n_test=None, seed=0, n_val=None) -> dict[str, list[Sample]]:
        return _chosen(_import_pairs(_prepared(work, task)), n_train, n_test, seed, n_val)
    read.__doc__ = f"The {task} photos `prep import` wrote under WORK/{TASK_SET[task]}."
    return read


def read_shoes(work: Path, n_train=None, n_test=None, seed=0, n_val=None) -> dict[str, list[Sample]]:
    """Each shoe photo at its own size with its near-white mask, in the split `prep ingest` gave it."""
    white = _prepared(work, "shoes") / "white"
    names = json.loads((white / LMDB_MANIFEST).read_text())["names"]
    by_name = {p.name: p for p in common.pairs_from_manifest(white / "masks")}
    return _chosen({s: [by_name[k] for k in names.get(s, []) if k in by_name] for s in SPLITS}, n_train, n_test,
                   seed, n_val)


def read_shoes_scenes(work: Path, n_train=None, n_test=None, seed=0, n_val=None) -> dict[str, list[Sample]]:
    """`prep ingest`'s composites: train/val shoes over BSDS train/val scenes, test shoes over the test scenes."""
    comp = _prepared(work, "shoes_scenes") / "composite"
    return _chosen({s: common.pairs_from_manifest(comp / f"{s}_pairs") for s in SPLITS
                    if (comp / f"{s}_pairs").is_dir()}, n_train, n_test, seed, n_val)


def read_coco(work: Path, n_train=None, n_test=None, seed=0, n_val=None) -> dict[str, list[Sample]]:
    """`prep coco`'s prominent-object photos, a seeded 80/20 split (COCO has no test list); no val split (the
    caller holds one out of train)."""
    rest, test = _split(load_samples(_prepared(work, "coco")), seed)
    return {"train": _subset(rest, n_train, seed), "val": [], "test": _subset(test, n_test, seed)}


def _split(items: list, seed: int) -> tuple[list, list]:
    return hold_out(items, max(1, round(len(items) * TEST_FRACTION)), seed)


READERS = {"shoes": read_shoes, "shoes_scenes": read_shoes_scenes, "portraits": _import_task("portraits"),
           "coco": read_coco, "fashion": _import_task("fashion"), "duts": _import_task("duts")}


def split_names(samples: list[Sample]) -> str:
    """The photos a written split holds, as one digest (its split.json: a reused folder is the same split)."""
    return hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]


def write_split(samples: list[Sample], folder: Path, size: int = REAL_STORE) -> Path:
    """SAMPLES as FOLDER/<name>.jpg + FOLDER/masks/<name>.png (0/255), size x size; written whole or not at all."""
    folder = Path(folder)
    with common.staged_dir(folder, marker=SPLIT_MARKER, force=False, step="compare") as tmp:
        (tmp / "masks").mkdir()
        for s in samples:
            stem = Path(s.name).stem
            img = cv2.resize(s.bgr, (size, size), interpolation=cv2.INTER_AREA)
            lab = cv2.resize(s.label, (size, size), interpolation=cv2.INTER_NEAREST)
            write_bytes(tmp / f"{stem}.jpg", encode_jpeg(img, 95))
            write_bytes(tmp / "masks" / f"{stem}.png", encode_png((lab == 1).astype(np.uint8) * 255, binary=True))
        write_text_atomic(tmp / SPLIT_MARKER, json.dumps({"images": len(samples), "size": size,
                                                         "names": split_names(samples)}) + "\n")
    return folder
