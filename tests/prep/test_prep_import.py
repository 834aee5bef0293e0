"""`prep import`: real image+mask and label-map datasets (../shared/realdata, small --limit subsets) into the
layouts `evaluate` and the trainers read, and the bad folders users have (written here), each refused with
one line naming the file and the fix, or skipped with its reason in manifest.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import ROOT, one_error_line, run_cli, sigint_default
from fcnkit.cli.prep import main
from fcnkit.data.boxes import box_of, read_boxes
from fcnkit.data.datasets import load_samples
from fcnkit.io.images import read_mask
from fcnkit.prep.folders import import_folder, parse_rule, read_label_list, to_foreground
from fcnkit.prep.lmdb_build import verify_lmdbs
from prep_util import realdata


def _rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------- real data
def test_portraits_keep_their_official_split(tmp_path, capsys):
    src = realdata("portraits_shen")
    out = tmp_path / "portraits"
    assert main(["import", str(src), "--out", str(out), "--limit", "12", "--lmdb", "64", "--quiet"]) == 0
    assert "train 11, val 1, test 12 pairs" in capsys.readouterr().out
    info = json.loads((out / "dataset.json").read_text())
    assert info["layout"] == "given splits" and info["skipped"] == 0
    rows = _rows(out)
    test_sources = {r["source"] for r in rows if r["split"] == "test"}
    assert all("/test/images/" in s for s in test_sources) and len(test_sources) == 12  # the official test list
    assert not any("/test/" in r["source"] for r in rows if r["split"] != "test")
    for split, n in (("train", 11), ("val", 1), ("test", 12)):
        samples = load_samples(out / split)  # what `evaluate OUT/test` and `fcnkit train OUT/train --val` read
        assert len(samples) == n
        s = samples[0]
        src_mask = read_mask(next(r["source_mask"] for r in rows if r["name"] == s.name.rsplit(".", 1)[0]))
        assert np.array_equal(s.label, (src_mask > 127).astype(np.uint8))  # the hand mask, exactly
        assert s.bgr.shape == (400, 300, 3)
    assert {k: v["count"] for k, v in verify_lmdbs(out / "lmdb", quiet=True).items()} == \
        {"train": 11, "val": 1, "test": 12}
    assert len(load_samples(out / "lmdb", split="test")) == 12  # `evaluate OUT/lmdb --split test`


def test_duts_resized_and_binary(tmp_path):
    src = realdata("duts")
    r = import_folder(src, tmp_path / "duts", limit=10, max_side=160, quiet=True, workers=1)
    assert r["splits"] == {"train": 9, "val": 1, "test": 10}
    for split in ("train", "test"):
        for s in load_samples(tmp_path / "duts" / split):
            assert max(s.bgr.shape[:2]) == 160 and s.label.shape == s.bgr.shape[:2]
            assert set(np.unique(s.label)) <= {0, 1} and 0 < s.label.mean() < 1


def test_fashion_label_maps_give_person_masks_and_boxes(tmp_path):
    src = realdata("fashion_ccp")
    out = tmp_path / "fashion"
    r = import_folder(src, out, limit=15, quiet=True, workers=1)  # label_list.txt found in ROOT, rule label > 0
    assert r["layout"] == "one pool, split here" and r["splits"] == {"train": 11, "val": 1, "test": 3}
    assert "label > 0" in r["masks"]
    for row in (x for x in _rows(out) if x["status"] == "ok"):
        labels = read_mask(row["source_mask"])
        mask = cv2.imread(str(out / row["mask"]), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(mask > 0, labels > 0)
        assert tuple(row["box"]) == box_of((mask > 0).astype(np.uint8))  # the box of the person's extent
    boxes = read_boxes(out / "test")  # what the patch CNN's weak supervision takes: x, y, w, h
    assert len(boxes) == 3 and all(b[2] > 0 and b[3] > 0 for b in boxes.values())
    # a rule by names from the list: clothes only (no skin, hair, background)
    r2 = import_folder(src, tmp_path / "clothes", limit=15, foreground="label not in null,skin,hair", quiet=True,
                       workers=1)
    a = cv2.imread(str(tmp_path / "clothes" / "train/masks/0002.png"), 0)
    b = cv2.imread(str(out / "train/masks/0002.png"), 0)
    assert r2["splits"] == r["splits"] and 0 < (a > 0).sum() < (b > 0).sum()


def test_label_rules():
    labels = read_label_list(realdata("fashion_ccp") / "label_list.txt")
    assert labels[0] == "null" and len(labels) == 59
    assert parse_rule("label > 0", labels)[[0, 1, 58]].tolist() == [False, True, True]
    assert parse_rule("label in skin, 2", labels)[[2, 41, 3]].tolist() == [True, True, False]
    assert parse_rule("label != 41", labels)[[41, 0]].tolist() == [False, True]


# ------------------------------------------------------------------------------------------ bad input
def _write(root, n, size=(40, 30), *, split=None, mask_values=(0, 255)):
    """ROOT[/split]/{images,masks} of n noise photos with a rectangle mask; returns the folder."""
    folder = root / split if split else root
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(n)
    h, w = size
    for i in range(n):
        cv2.imwrite(str(folder / "images" / f"p{i:03d}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        m = np.full((h, w), mask_values[0], np.uint8)
        m[5:h - 5, 5:w - 5] = mask_values[1]
        cv2.imwrite(str(folder / "masks" / f"p{i:03d}.png"), m)
    return folder


def _refused(tmp_path, capsys, argv, *needles, out_name="out"):
    out = tmp_path / out_name
    assert main(["import", *map(str, argv), "--out", str(out), "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("prep: error: "), err
    for n in needles:
        assert n in err, err
    assert not out.exists() and not list(tmp_path.glob(f".{out_name}.tmp-*"))  # nothing half-written
    return err


def test_missing_masks_folder(tmp_path, capsys):
    _write(tmp_path / "ds", 3)
    for m in (tmp_path / "ds" / "masks").iterdir():
        m.unlink()
    (tmp_path / "ds" / "masks").rmdir()
    _refused(tmp_path, capsys, [tmp_path / "ds"], "ds: images/ has no", "--masks NAME")


def test_missing_mask_of_one_image(tmp_path, capsys):
    _write(tmp_path / "ds", 4)
    (tmp_path / "ds" / "masks" / "p002.png").unlink()
    _refused(tmp_path, capsys, [tmp_path / "ds"], "p002.jpg: no mask of the same name")


def test_mask_of_another_size(tmp_path, capsys):
    _write(tmp_path / "ds", 4)
    cv2.imwrite(str(tmp_path / "ds" / "masks" / "p001.png"), np.zeros((20, 20), np.uint8))
    _refused(tmp_path, capsys, [tmp_path / "ds"], "p001.png: mask is 20x20 but the image is 30x40",
             "give a mask of the image's size")


def test_non_binary_masks_and_the_threshold_fix(tmp_path, capsys):
    _write(tmp_path / "ds", 4, mask_values=(0, 200))  # every mask 0/200: not a stray file, refused
    cv2.imwrite(str(tmp_path / "ds" / "masks" / "p000.png"), np.linspace(0, 255, 1200).reshape(40, 30)
                .astype(np.uint8))
    _refused(tmp_path, capsys, [tmp_path / "ds"], "p000.png: mask is not binary", "--threshold T")
    r = import_folder(tmp_path / "ds", tmp_path / "ok", threshold=128, quiet=True, workers=1)
    assert sum(r["splits"].values()) == 4


def test_threshold_leaves_binary_masks_alone():
    ones = np.zeros((4, 4), np.uint8)
    ones[1:3, 1:3] = 1
    soft = np.array([[0, 100, 130, 255]], np.uint8)
    assert to_foreground(ones, lut=None, threshold=128).sum() == 4  # a 0/1 mask is not "all below 128"
    assert to_foreground(soft, lut=None, threshold=128).tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match="not binary"):
        to_foreground(soft, lut=None, threshold=None)


def test_label_maps_without_a_label_list(tmp_path, capsys):
    _write(tmp_path / "ds", 4, mask_values=(0, 7))  # ids 0 and 7: a label map, not a 0/255 mask
    err = _refused(tmp_path, capsys, [tmp_path / "ds"], "mask is not binary", "--label-list FILE")
    assert "p000" in err
    _refused(tmp_path, capsys, [tmp_path / "ds", "--foreground", "label > 0"],
             "label maps need their label list", "--label-list FILE")
    (tmp_path / "ds" / "label_list.txt").write_text("0 background\n7 person\n")
    r = import_folder(tmp_path / "ds", tmp_path / "ok", quiet=True, workers=1)
    assert sum(r["splits"].values()) == 4
    (tmp_path / "ds" / "label_list.txt").write_text("0 background\n5 person\n")  # 7 is not in the list
    _refused(tmp_path, capsys, [tmp_path / "ds"], "ids [7] missing from the label list")


def test_unreadable_image(tmp_path, capsys):
    _write(tmp_path / "ds", 4)
    (tmp_path / "ds" / "images" / "p003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _refused(tmp_path, capsys, [tmp_path / "ds"], "p003.jpg: unreadable image", "replace or remove the file")


def test_one_bad_file_in_a_big_folder_is_skipped_and_recorded(tmp_path, capsys):
    _write(tmp_path / "ds", 30, split="train")
    _write(tmp_path / "ds", 10, split="test")
    (tmp_path / "ds" / "train" / "images" / "p007.jpg").write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["import", str(tmp_path / "ds"), "--out", str(out), "--quiet", "--workers", "1"]) == 0
    assert "1 skipped (1 " in capsys.readouterr().out
    bad = [r for r in _rows(out) if r["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["file"].endswith("p007.jpg") and "unreadable" in bad[0]["reason"]
    assert sum(len(load_samples(out / s)) for s in ("train", "val", "test")) == 39
    _refused(tmp_path, capsys, [tmp_path / "ds", "--strict"], "p007.jpg: unreadable image", "--strict",
             out_name="strict")


def test_an_existing_foreign_folder_is_not_replaced(tmp_path, capsys):
    _write(tmp_path / "ds", 3)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["import", str(tmp_path / "ds"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "not written by `prep import`" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, needle", [
    (["--foreground", "lbl > 0", "--label-list", "LIST"], "--foreground 'lbl > 0': write"),
    (["--threshold", "300"], "--threshold 300: must be 1..255"),
    (["--test-fraction", "1.5"], "--test-fraction 1.5: must be a fraction in [0, 1)"),
])
def test_bad_options_in_a_real_process(tmp_path, argv, needle):
    _write(tmp_path / "ds", 3)
    (tmp_path / "list.txt").write_text("0 bg\n1 fg\n")
    argv = [str(tmp_path / "list.txt") if a == "LIST" else a for a in argv]
    r = run_cli("prep", "import", tmp_path / "ds", "--out", tmp_path / "out", *argv)
    assert needle in one_error_line(r, "prep")
    assert not (tmp_path / "out").exists()


def test_ctrl_c_leaves_nothing(tmp_path):
    """Interrupted mid-import (the whole real DUTS, one worker): exit 130, no OUT, no staging folder."""
    src = realdata("duts")
    out = tmp_path / "duts"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    proc = subprocess.Popen([sys.executable, "-m", "fcnkit", "prep", "import", str(src), "--out", str(out),
                             "--workers", "1", "--quiet"], env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_default)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob(".duts.tmp-*/train/masks/*.png"))) < 20:
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err, err
    assert list(tmp_path.iterdir()) == []
