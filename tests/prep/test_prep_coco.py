"""`prep coco`: ExtractNet's prominent-object rules on a small COCO-format file written here (pycocotools
reads it exactly as it reads instances_train2014.json)."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest
from conftest import VENV_BIN
from fcnkit.config.seeds import COCO_MAJOR_OBJECT, COCO_MAX_MASK
from fcnkit.data.datasets import load_samples
from fcnkit.prep.coco import run_coco
from prep_util import realdata

CATS = [{"id": 1, "name": "person", "supercategory": "person"},
        {"id": 3, "name": "car", "supercategory": "vehicle"},
        {"id": 18, "name": "dog", "supercategory": "animal"}]


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


# image id -> (objects (category, x0, y0, x1, y1, iscrowd), expected outcome code); images are 100x100
CASES = {
    1: ([(1, 20, 10, 70, 90, 0)], "kept"),                                   # person 40 %
    2: ([(3, 0, 0, 40, 50, 0)], "no-major-object"),                          # car 20 % only
    3: ([(1, 1, 1, 99, 98, 0)], "too-large"),                                # person 95 %
    4: ([(18, 0, 0, 50, 100, 0)], "no-class"),                               # a dog
    5: ([(1, 0, 0, 35, 100, 0), (3, 35, 0, 65, 50, 0), (3, 65, 0, 100, 40, 0),  # person 35 %, cars 15/14 %,
         (3, 35, 50, 61, 100, 0), (3, 65, 60, 95, 100, 0)], "kept"),         # 13 %, 12 % (the 5th: left out)
    6: ([(1, 20, 10, 70, 90, 0)], "unreadable"),                             # image file missing
    7: ([(1, 0, 0, 60, 100, 1)], "no-class"),                                # a crowd region only
}


@pytest.fixture
def coco(tmp_path):
    images, anns = [], []
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for iid, (objs, _) in CASES.items():
        name = f"COCO_train2014_{iid:012d}.jpg"
        images.append({"id": iid, "file_name": name, "height": 100, "width": 100})
        if iid != 6:
            cv2.imwrite(str(tmp_path / "imgs" / name), rng.integers(0, 255, (100, 100, 3), dtype=np.uint8))
        for k, (cat, x0, y0, x1, y1, crowd) in enumerate(objs):
            anns.append({"id": iid * 100 + k, "image_id": iid, "category_id": cat, "iscrowd": crowd,
                         "segmentation": rect(x0, y0, x1, y1), "area": float((x1 - x0) * (y1 - y0)),
                         "bbox": [x0, y0, x1 - x0, y1 - y0]})
    ann = tmp_path / "instances_train2014.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return ann, tmp_path / "imgs"


def test_rules_and_outputs(coco, tmp_path):
    ann, imgs = coco
    r = run_coco(ann, imgs, tmp_path / "out", quiet=True)
    assert r["kept"] == 2 and r["images"] == len(CASES)
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    rows = {row["id"]: row for row in map(json.loads, lines)}
    assert {i: rows[i]["code"] for i in CASES} == {i: c for i, (_, c) in CASES.items()}
    m1 = cv2.imread(str(tmp_path / "out" / "masks" / "COCO_train2014_000000000001.png"), cv2.IMREAD_GRAYSCALE)
    assert m1.shape == (224, 224) and set(np.unique(m1)) == {0, 255}
    assert abs((m1 > 0).mean() - 0.40) < 0.03
    assert cv2.imread(str(tmp_path / "out" / "COCO_train2014_000000000001.jpg")).shape == (224, 224, 3)
    m5 = cv2.imread(str(tmp_path / "out" / "masks" / "COCO_train2014_000000000005.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert abs(m5.mean() - 0.77) < 0.03  # the largest + 3 more
    assert not m5[190, 180] and m5[190, 100] and m5[40, 40]  # the 12 % car (x 65-95, y 60-100) is left out
    assert len(load_samples(tmp_path / "out")) == 2  # what `evaluate` / `fcnkit train --val` read


def test_lmdb_option(coco, tmp_path):
    ann, imgs = coco
    run_coco(ann, imgs, tmp_path / "out", lmdb=True, val_fraction=0.5, quiet=True)
    assert len(load_samples(tmp_path / "out" / "lmdb", split="train")) + \
        len(load_samples(tmp_path / "out" / "lmdb", split="val")) == 2


def run(*args):
    return subprocess.run([str(VENV_BIN / "prep"), "coco", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_cli_and_bad_annotation_files(coco, tmp_path):
    ann, imgs = coco
    r = run(ann, imgs, "--out", tmp_path / "ok", "--quiet")
    assert r.returncode == 0 and "kept 2 of 7 images" in r.stdout, r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    for path, needle in ((bad, "not COCO instance annotations"), (tmp_path / "none.json", "no such annotation file")):
        r = run(path, imgs, "--out", tmp_path / "out")
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_the_real_val2017_subset(tmp_path):
    """`prep coco` as it stands on real COCO val2017 images and their original instance JSON (polygons + RLE)."""
    root = realdata("coco_val2017_subset")
    r = run(root / "annotations" / "instances_val2017_subset.json", root / "images", "--out", tmp_path / "coco",
            "--limit", "120", "--lmdb", "--quiet")
    assert r.returncode == 0 and "creating index" not in r.stdout, r.stdout + r.stderr
    rows = [json.loads(x) for x in (tmp_path / "coco" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and not [x for x in rows if x["code"] in ("unreadable", "size-mismatch", "bad-annotation")]
    kept = [x for x in rows if x["kept"]]
    assert kept and {x["code"] for x in rows} >= {"kept", "no-class", "no-major-object"}
    assert all(COCO_MAJOR_OBJECT * 0.9 <= x["foreground"] <= COCO_MAX_MASK for x in kept)  # after the 224 resize
    samples = load_samples(tmp_path / "coco")
    assert len(samples) == len(kept) and all(s.bgr.shape == (224, 224, 3) for s in samples)
    n = sum(len(load_samples(tmp_path / "coco" / "lmdb", split=s)) for s in ("train", "val"))
    assert n == len(kept)
