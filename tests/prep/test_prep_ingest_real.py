"""`prep ingest` on real shoe photos on white (../shared/realdata, a --limit subset): masks by the study's
near-white rule, a held-out test split of the shoes, and composites over real BSDS500 scenes with the scene
splits kept apart (train/val composites over BSDS train/val, test composites over BSDS test only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fcnkit.cli.prep import main
from fcnkit.data.datasets import load_samples
from fcnkit.errors import UserError
from fcnkit.prep.ingest import ingest_folder, split_backgrounds
from fcnkit.prep.lmdb_build import read_pair_arrays, verify_lmdbs
from prep_util import realdata


@pytest.fixture(scope="module")
def shoes(tmp_path_factory):
    photos, scenes = realdata("sneakers_white/photos"), realdata("scenes_bsds500")
    out = tmp_path_factory.mktemp("real") / "shoes"
    rc = main(["ingest", str(photos), "--out", str(out), "--backgrounds", str(scenes), "--test-fraction", "0.2",
               "--limit", "50", "-n", "30", "--quiet", "--workers", "1"])
    assert rc == 0
    return out, scenes


def _objects(folder):
    rows = [json.loads(x) for x in (folder / "manifest.jsonl").read_text().splitlines()]
    return {o["object"] for r in rows if r["status"] == "ok" for o in r["objects"]}, \
        {r["background"] for r in rows if r["status"] == "ok"}


def test_white_split_holds_out_test_shoes(shoes):
    out, _ = shoes
    info = json.loads((out / "dataset.json").read_text())
    assert info["masks"]["total"] == 50 and info["masks"]["ok"] >= 40  # the near-white rule on real photos
    counts = {s: v["count"] for s, v in verify_lmdbs(out / "white", quiet=True).items()}
    assert set(counts) == {"train", "val", "test"} and sum(counts.values()) == info["masks"]["ok"]
    assert counts["test"] == round(info["masks"]["ok"] * 0.2)
    names = json.loads((out / "white" / "manifest.json").read_text())["names"]
    assert not set(names["test"]) & (set(names["train"]) | set(names["val"]))
    test_imgs, test_labels = read_pair_arrays(out / "white", "test")
    train_imgs, _ = read_pair_arrays(out / "white", "train")
    assert not any((t == train_imgs).all(axis=(1, 2, 3)).any() for t in test_imgs)  # no test shoe in training
    assert 0.05 < test_labels.mean() < 0.7  # shoes, not empty or all-foreground masks
    assert len(load_samples(out / "white", split="test")) == counts["test"]  # `evaluate DIR --split test`


def test_composites_keep_scene_and_shoe_splits_apart(shoes):
    out, scenes = shoes
    comp = out / "composite"
    objs = {s: _objects(comp / f"{s}_pairs") for s in ("train", "val", "test")}
    assert all(bg.startswith(str(scenes / "train")) for bg in objs["train"][1])
    assert all(bg.startswith(str(scenes / "val")) for bg in objs["val"][1])
    assert all(bg.startswith(str(scenes / "test")) for bg in objs["test"][1]) and objs["test"][1]
    white_names = json.loads((out / "white" / "manifest.json").read_text())["names"]
    test_shoes = {o.rsplit("/", 1)[1].rsplit(".", 1)[0] for o in objs["test"][0]}
    assert test_shoes <= set(white_names["test"])  # test composites paste held-out shoes only
    assert not test_shoes & {o.rsplit("/", 1)[1].rsplit(".", 1)[0] for o in objs["train"][0] | objs["val"][0]}
    counts = {s: v["count"] for s, v in verify_lmdbs(comp, quiet=True).items()}
    assert counts == {"train": 22, "val": 2, "test": 6}
    _, labels = read_pair_arrays(comp, "test")
    assert 0.01 < labels.mean() < 0.5 and np.unique(labels).tolist() == [0, 1]


def test_scene_split_folders_and_refusals(tmp_path):
    scenes = realdata("scenes_bsds500")
    train, val, test = split_backgrounds(scenes)
    assert len(train) == 200 and len(val) == 100 and len(test) == 200
    assert not {p.name for p in test} & {p.name for p in train + val}
    photos = realdata("sneakers_white/photos")
    with pytest.raises(UserError, match="test composites need scenes unseen in training"):
        ingest_folder(photos, tmp_path / "x", backgrounds="builtin", test_fraction=0.2, limit=10, quiet=True)
    with pytest.raises(UserError, match="also train/val backgrounds"):
        ingest_folder(photos, tmp_path / "x", backgrounds=str(scenes), test_backgrounds=str(scenes / "val"),
                      test_fraction=0.2, limit=10, quiet=True)
    assert not (tmp_path / "x").exists()
