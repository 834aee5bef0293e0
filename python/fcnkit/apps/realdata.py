"""The real-photo tasks' data (`config.realdata.REAL_TASKS`): one reader per layout, and the train/val folders
the trainer reads.

Each `read_<task>(root, work, n_train, n_test, seed)` returns {"train": [Sample], "test": [Sample]} (labels
0/1) from the data set's own layout under ROOT (`../shared/realdata`, or what `prep` wrote from the public
originals), preparing what the layout lacks with the project's own `prep` library into WORK:

* portraits, DUTS: image + mask folders with the official train/test lists (`{split}/images`, `{split}/masks`);
* shoes: photos on white -> masks by the study's near-white rule (`prep masks`), a seeded 80/20 split;
* shoes_scenes: those shoes pasted onto BSDS500 scenes (`prep composite`), train/val scenes for the train
  composites, the test scenes (and the test shoes) for the test composites;
* COCO: the instance JSON -> prominent-object masks by ExtractNet's rules (`prep coco`), a seeded split;
* fashion: label maps (ids, `label_list.txt`) -> person = label > 0; the patch CNN sees only its box.
To read another copy of a data set (e.g. `prep` output elsewhere), point ROOT at it or change one reader.

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
from fcnkit.prep.coco import run_coco
from fcnkit.prep.composite import CompositeOptions, run_composite
from fcnkit.prep.masks import run_masks
from fcnkit.prep.realdata import SOURCES, find_source

TEST_FRACTION = 0.2  # ours: tasks without official lists hold out this share, by a seeded shuffle
SPLIT_MARKER = "split.json"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{path}: missing; {what} (see ../shared/realdata/README.md, or `prep fetch`)")
    return path


def _source(root: Path, name: str, what: str) -> Path:
    """ROOT's folder for data set NAME under any of the names it goes by (the shared copy's, `prep fetch`'s)."""
    found = find_source(root, name)
    if found is None:
        raise UserError(f"{root}: no {' or '.join(SOURCES[name])} folder; {what} (see ../shared/realdata/README.md, "
                        "or `prep fetch`)")
    return found


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


def _split(items: list, seed: int) -> tuple[list, list]:
    return hold_out(items, max(1, round(len(items) * TEST_FRACTION)), seed)


def _pairs_samples(pairs: list[common.Pair], foreground=lambda m: m > 127) -> list[Sample]:
    """The readable pairs as samples, label 1 where `foreground(mask values)` (0/255 masks: above half);
    unreadable files and masks of another size are passed over."""
    out = []
    for p in pairs:
        try:
            bgr, m = read_bgr(p.image), read_mask(p.mask)
        except ImageReadError:
            continue
        if bgr.shape[:2] == m.shape:
            out.append(Sample(p.name, bgr, foreground(m).astype(np.uint8)))
    return out


def _folder_task(base: Path, n_train, n_test, seed) -> dict[str, list[Sample]]:
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = _need(base / split / "images", f"{split} photos")
        pairs = _subset(common.pairs_from_folders(images, _need(base / split / "masks", f"{split} masks")), n, seed)
        out[split] = _pairs_samples(pairs)
    return out


def read_duts(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    return _folder_task(_source(root, "duts", "DUTS photos and masks"), n_train, n_test, seed)


def read_portraits(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    return _folder_task(_source(root, "portraits", "portraits and masks"), n_train, n_test, seed)


def _shoe_pairs(root: Path, work: Path) -> list[common.Pair]:
    """Every usable shoe photo with its near-white mask (`prep masks`, written once into WORK)."""
    out = work / "shoe_masks"
    if not (out / common.MANIFEST).is_file():
        run_masks(_source(root, "shoes", "shoe photos on white"), out, preview=False, quiet=True,
                  workers=1)
    return common.pairs_from_manifest(out)


def read_shoes(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    train, test = _split(_shoe_pairs(root, work), seed)
    return {"train": _pairs_samples(_subset(train, n_train, seed)), "test": _pairs_samples(_subset(test, n_test, seed))}


def read_shoes_scenes(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    """Train shoes on BSDS train+val scenes, test shoes on BSDS test scenes: no scene or shoe in both."""
    train, test = _split(_shoe_pairs(root, work), seed)
    scenes = _source(root, "scenes", "BSDS500 scene photos")
    out = {}
    for split, shoes, dirs, n in (("train", train, ("train", "val"), n_train or len(train)),
                                  ("test", test, ("test",), n_test or len(test))):
        folder = work / f"shoes_scenes_{split}_{n}"
        if not (folder / common.MANIFEST).is_file():
            backgrounds = [p for d in dirs for p in common.list_files(_need(scenes / d, f"BSDS500 {d} scenes"))]
            run_composite(shoes, backgrounds, folder, n, opts=CompositeOptions(size=REAL_STORE), seed=seed + 1,
                          workers=1, preview=False, quiet=True)
        out[split] = load_samples(folder / "images", masks=folder / "masks")
    return out


def read_coco(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    base = _source(root, "coco", "COCO images and instance annotations")
    anns = sorted((_need(base / "annotations", "COCO instance annotations")).glob("instances_*.json"))
    if not anns:
        raise UserError(f"{base / 'annotations'}: no instances_*.json; give COCO's instance annotations")
    out = work / "coco"
    if not (out / "coco.json").is_file():
        run_coco(anns[0], _need(base / "images", "COCO images"), out, quiet=True)
    train, test = _split(load_samples(out), seed)
    return {"train": _subset(train, n_train, seed), "test": _subset(test, n_test, seed)}


def read_fashion(root: Path, work: Path, n_train=None, n_test=None, seed=0) -> dict[str, list[Sample]]:
    """Photos and label maps (ids; `label_list.txt` names them, 0 = background): person = label > 0."""
    base = _source(root, "fashion", "fashion photos and label maps")
    _need(base / "label_list.txt", "the label list of the label maps")
    pairs = common.pairs_from_folders(_need(base / "photos", "fashion photos"), _need(base / "labels", "label maps"))
    train, test = _split(pairs, seed)
    return {"train": _pairs_samples(_subset(train, n_train, seed), lambda ids: ids > 0),
            "test": _pairs_samples(_subset(test, n_test, seed), lambda ids: ids > 0)}


READERS = {"shoes": read_shoes, "shoes_scenes": read_shoes_scenes, "portraits": read_portraits,
           "coco": read_coco, "fashion": read_fashion, "duts": read_duts}


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
