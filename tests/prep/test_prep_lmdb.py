"""`prep lmdb`: paired Caffe LMDBs (contract with the training nets), --verify, and interrupted writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import lmdb
import numpy as np
import pytest
from conftest import ROOT, sigint_default
from fcnkit.cli.prep import main
from fcnkit.errors import UserError
from fcnkit.io.lmdb_io import LMDBWriter, decode_datum, encode_datum, read_lmdb
from fcnkit.prep import common
from fcnkit.prep.lmdb_build import LMDB_NAMES, build_lmdbs, read_pair_arrays, split_pairs, verify_lmdbs
from PIL import Image
from prep_util import save_jpeg


def _pairs_dir(folder, n=12, shape=(90, 120), seed=0):
    """n image/mask pairs with known content: a coloured rectangle (mask 255) on a noisy field, as PNG."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows, truth = [], {}
    h, w = shape
    for i in range(n):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        m = np.zeros((h, w), np.uint8)
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        m[y0 : y0 + h // 3, x0 : x0 + w // 3] = 255
        img[m > 0] = (250, 10, 20)  # pure-ish red in RGB
        Image.fromarray(img).save(folder / "images" / f"{i:03d}.png")
        Image.fromarray(m).save(folder / "masks" / f"{i:03d}.png")
        rows.append(
            {"image": f"images/{i:03d}.png", "mask": f"masks/{i:03d}.png", "status": "ok", "name": f"{i:03d}"}
        )
        truth[f"{i:03d}"] = (img, m)
    common.write_manifest(folder, rows)
    return truth


def test_lmdbs_follow_the_contract(tmp_path, capsys):
    truth = _pairs_dir(tmp_path / "pairs", n=12)
    out = tmp_path / "lmdb"
    rc = main(
        [
            "lmdb",
            str(tmp_path / "pairs"),
            "--out",
            str(out),
            "--size",
            "32",
            "--val-fraction",
            "0.25",
            "--seed",
            "3",
            "--verify",
            "--quiet",
            "--workers",
            "2",
        ]
    )
    assert rc == 0
    msg = capsys.readouterr().out
    assert "train 9, val 3" in msg and "--verify: OK" in msg
    assert sorted(p.name for p in out.iterdir()) == sorted([*LMDB_NAMES, "manifest.json"])
    man = json.loads((out / "manifest.json").read_text())
    assert man["size"] == 32 and man["splits"]["train"]["count"] == 9 and man["channel_order"] == "BGR"
    # expected order: the documented seeded shuffle of the source order
    pairs = common.pairs_from_manifest(tmp_path / "pairs")
    split = split_pairs(pairs, 0.25, 3)
    for s in ("train", "val"):
        imgs, labs = read_pair_arrays(out, s)
        keys = [k for k, _ in read_lmdb(out / f"{s}_image_lmdb")]
        assert keys == [k for k, _ in read_lmdb(out / f"{s}_label_lmdb")]
        assert keys == [f"{i:08d}".encode() for i in range(len(split[s]))]
        assert imgs.shape == (len(split[s]), 3, 32, 32) and labs.shape == (len(split[s]), 1, 32, 32)
        for k, p in enumerate(split[s]):
            rgb, m = truth[p.name]
            want_img = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)[..., ::-1].transpose(2, 0, 1)
            want_lab = cv2.resize((m > 0).astype(np.uint8), (32, 32), interpolation=cv2.INTER_NEAREST)
            assert np.array_equal(imgs[k], want_img), (s, k)  # BGR, CHW, area-resized
            assert np.array_equal(labs[k, 0], want_lab), (s, k)  # nearest: only 0/1, no blends
            assert set(np.unique(labs[k])) <= {0, 1}
    # the red patch really is in channel 2 (BGR)
    imgs, labs = read_pair_arrays(out, "train")
    fg = labs[:, 0] == 1
    assert imgs[:, 2][fg].mean() > 200 and imgs[:, 0][fg].mean() < 60


def test_split_is_deterministic_and_seed_dependent():
    pairs = [common.Pair(f"{i}.jpg", f"{i}.png", str(i)) for i in range(100)]
    a, b, c = split_pairs(pairs, 0.1, 0), split_pairs(pairs, 0.1, 0), split_pairs(pairs, 0.1, 1)
    assert a == b and a != c and len(a["val"]) == 10 and len(a["train"]) == 90
    assert {p.name for p in a["train"]} | {p.name for p in a["val"]} == {str(i) for i in range(100)}
    assert a["train"] != pairs[10:]  # shuffled: Caffe's Data layer reads in key order, it does not shuffle
    with pytest.raises(UserError):
        split_pairs(pairs, 1.0, 0)


def test_fit_pad_ids_and_ignore_labels(tmp_path):
    img = np.full((40, 80, 3), 200, np.uint8)
    ids = np.zeros((40, 80), np.uint8)
    ids[10:30, 20:60] = 1
    ids[:, :4] = 255  # ignore
    (tmp_path / "im").mkdir()
    (tmp_path / "mk").mkdir()
    Image.fromarray(img).save(tmp_path / "im" / "x.png")
    Image.fromarray(ids).save(tmp_path / "mk" / "x.png")
    pairs = common.pairs_from_folders(tmp_path / "im", tmp_path / "mk")
    build_lmdbs(pairs * 3, tmp_path / "out", size=40, val_fraction=0, fit="pad", workers=1, quiet=True)
    imgs, labs = read_pair_arrays(tmp_path / "out", "train")
    lab = labs[0, 0]
    assert set(np.unique(lab)) == {0, 1, 255}  # class ids kept, 255 = ignore survives nearest resize
    assert (lab[:10] == 0).all() and (imgs[0][:, :10] == 255).all()  # padded rows: white image, background
    assert (lab[10:30, :2] == 255).all() and (lab[10:30, 2:10] == 0).all()
    assert verify_lmdbs(tmp_path / "out", quiet=True)["val"]["count"] == 0


def test_bad_pairs_are_skipped_and_nothing_usable_fails(tmp_path, capsys):
    truth = _pairs_dir(tmp_path / "pairs", n=4)
    assert truth
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "pairs" / "masks" / "001.png")  # wrong size
    (tmp_path / "pairs" / "images" / "002.png").write_bytes(b"")  # zero bytes
    pairs = common.pairs_from_manifest(tmp_path / "pairs")
    bad = {"001", "002"}
    # seeds whose one val pair (of 4, val 0.25) is usable / is one of the bad pairs
    good_seed = next(k for k in range(50) if split_pairs(pairs, 0.25, k)["val"][0].name not in bad)
    bad_seed = next(k for k in range(50) if split_pairs(pairs, 0.25, k)["val"][0].name in bad)
    m = build_lmdbs(pairs, tmp_path / "out", size=16, val_fraction=0.25, seed=good_seed, workers=1, quiet=True)
    codes = sorted(s["code"] for s in m["skipped"])
    assert codes == ["empty-file", "size-mismatch"]
    assert (m["splits"]["train"]["count"], m["splits"]["val"]["count"]) == (1, 1)
    # every skipped val pair: an empty val LMDB is refused (solve and evaluate could not use it)
    with pytest.raises(UserError, match="the val split would be empty"):
        build_lmdbs(pairs, tmp_path / "out2", size=16, val_fraction=0.25, seed=bad_seed, workers=1, quiet=True)
    assert not (tmp_path / "out2" / "val_image_lmdb").exists()
    assert (
        main(["lmdb", str(tmp_path / "pairs"), "--out", str(tmp_path / "strict"), "--strict", "--quiet"]) == 2
    )
    assert "--strict" in capsys.readouterr().err and not (tmp_path / "strict" / "train_image_lmdb").exists()
    (tmp_path / "bad").mkdir()
    common.write_manifest(tmp_path / "bad", [{"image": "no.jpg", "mask": "no.png", "status": "ok"}])
    assert main(["lmdb", str(tmp_path / "bad"), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no usable image/mask pair" in err and "no such file" in err
    assert main(["lmdb", "--out", str(tmp_path / "o3")]) == 2
    assert main(["lmdb", "--verify", "--out", str(tmp_path / "o3")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_verify_catches_broken_sets(tmp_path):
    _pairs_dir(tmp_path / "pairs", n=6)
    out = tmp_path / "out"
    build_lmdbs(
        common.pairs_from_manifest(tmp_path / "pairs"), out, size=16, val_fraction=0.5, quiet=True, workers=1
    )
    assert verify_lmdbs(out, quiet=True)["train"]["count"] == 3
    with LMDBWriter(out / "val_label_lmdb") as w:  # a label LMDB with a stray class id
        for i in range(3):
            w.put(f"{i:08d}", encode_datum(np.full((1, 16, 16), 7 if i == 2 else 1, np.uint8)))
    with pytest.raises(UserError, match="label values \\[7\\]"):
        verify_lmdbs(out, quiet=True)
    with LMDBWriter(out / "val_label_lmdb") as w:  # one record short
        for i in range(2):
            w.put(f"{i:08d}", encode_datum(np.ones((1, 16, 16), np.uint8)))
    with pytest.raises(UserError, match="has 3 records but val_label_lmdb has 2"):
        verify_lmdbs(out, quiet=True)
    with LMDBWriter(out / "val_label_lmdb") as w:  # keys out of step
        for i in (0, 1, 5):
            w.put(f"{i:08d}", encode_datum(np.ones((1, 16, 16), np.uint8)))
    with pytest.raises(UserError, match="image key .* != label key"):
        verify_lmdbs(out, quiet=True)


def test_map_size_grows_instead_of_failing(tmp_path):
    big = np.random.default_rng(0).integers(0, 256, (3, 200, 200), dtype=np.uint8)  # 120 kB a record
    with LMDBWriter(tmp_path / "x_lmdb", map_size=1 << 20, commit_every=4) as w:
        for i in range(40):
            w.put(f"{i:08d}", encode_datum(big))
    assert w.map_size > 1 << 20
    assert len(list(read_lmdb(tmp_path / "x_lmdb"))) == 40


def test_interrupted_write_leaves_nothing_and_keeps_the_previous_set(tmp_path):
    _pairs_dir(tmp_path / "pairs", n=40)
    pairs = common.pairs_from_manifest(tmp_path / "pairs")
    out = tmp_path / "out"
    build_lmdbs(pairs[:6], out, size=16, val_fraction=0.5, quiet=True, workers=1)
    before = {n: [v for _, v in read_lmdb(out / n)] for n in LMDB_NAMES}

    def interrupt(n):
        if n == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_lmdbs(pairs, out, size=16, quiet=True, workers=2, on_record=interrupt)
    assert sorted(p.name for p in out.iterdir()) == sorted([*LMDB_NAMES, "manifest.json"])  # no temp dirs
    assert {n: [v for _, v in read_lmdb(out / n)] for n in LMDB_NAMES} == before
    verify_lmdbs(out, quiet=True)
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        build_lmdbs(pairs, fresh, size=16, quiet=True, workers=1, on_record=interrupt)
    assert list(fresh.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_leaves_no_lmdb(tmp_path):
    """A real SIGINT to a real `prep lmdb` process in the middle of writing."""
    img = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    (tmp_path / "p" / "masks").mkdir(parents=True)
    save_jpeg(tmp_path / "p" / "a.jpg", img)
    m = np.zeros((600, 600), np.uint8)
    m[100:300, 100:400] = 255
    Image.fromarray(m).save(tmp_path / "p" / "masks" / "a.png")
    row = {"image": "a.jpg", "mask": "masks/a.png", "status": "ok", "name": "a"}
    common.write_manifest(tmp_path / "p", [row] * 4000)  # the same real pair, many times: seconds of work
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fcnkit",
            "prep",
            "lmdb",
            str(tmp_path / "p"),
            "--out",
            str(out),
            "--workers",
            "1",
            "--quiet",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    deadline = time.time() + 30
    while time.time() < deadline and not list(out.glob(".lmdb-tmp-*/train_image_lmdb.tmp-*/data.mdb")):
        time.sleep(0.01)
    time.sleep(0.3)  # well inside the run: records are being written
    assert proc.poll() is None, "finished before it could be interrupted; make the input larger"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert list(out.iterdir()) == []
    # and a kill -9 leftover is ignored by --verify and removed by the next run
    stale = out / ".lmdb-tmp-999999999"
    stale.mkdir()
    with pytest.raises(UserError, match="no manifest.json"):
        verify_lmdbs(out)
    common.write_manifest(tmp_path / "p", [row] * 3)
    build_lmdbs(common.pairs_from_manifest(tmp_path / "p"), out, size=16, quiet=True, workers=1)
    assert not stale.exists()


def test_lmdb_env_records_are_plain_datums(tmp_path):
    """What Caffe's DataReader sees: raw (not encoded) uint8 Datums, label field 0."""
    _pairs_dir(tmp_path / "pairs", n=3)
    build_lmdbs(
        common.pairs_from_manifest(tmp_path / "pairs"),
        tmp_path / "o",
        size=8,
        val_fraction=0,
        quiet=True,
        workers=1,
    )
    env = lmdb.open(str(tmp_path / "o" / "train_image_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        arr, label = decode_datum(txn.get(b"00000000"))
    env.close()
    assert arr.shape == (3, 8, 8) and label == 0
