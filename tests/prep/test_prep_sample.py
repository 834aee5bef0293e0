"""The embedded sample dataset, the whole CLI chain on it, and a real Caffe Data-layer pair reading it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from fcnkit import cli as fcnkit_cli
from fcnkit.cli.prep import main
from fcnkit.io.images import mask_to_label, read_mask
from fcnkit.prep.lmdb_build import read_pair_arrays, verify_lmdbs
from fcnkit.prep.sample import build_sample_dataset, render_sneaker
from PIL import Image
from prep_util import iou


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "data"
    result = build_sample_dataset(root, n_white=60, n_composite=40, size=64, seed=0, workers=2, quiet=True)
    return root, result


def test_sample_layout_counts_and_contract(sample):
    root, r = sample
    for kind, n in (("white", 60), ("composite", 40)):
        d = root / kind
        for name in (
            "train_image_lmdb",
            "train_label_lmdb",
            "val_image_lmdb",
            "val_label_lmdb",
            "manifest.json",
        ):
            assert (d / name).exists(), (kind, name)
        rep = verify_lmdbs(d, quiet=True)
        assert rep["train"]["count"] + rep["val"]["count"] == n and rep["val"]["count"] == n // 10
        assert r[kind]["train"]["count"] == rep["train"]["count"]
        assert r[kind]["train"]["image_lmdb"] == str(d / "train_image_lmdb")
        imgs, labs = read_pair_arrays(d, "val")
        assert imgs.shape[1:] == (3, 64, 64) and labs.shape[1:] == (1, 64, 64)
        frac = (labs == 1).mean(axis=(1, 2, 3))
        assert frac.min() > 0.005 and frac.max() < 0.8  # every record has a sneaker, never the whole frame
    white_fg = (read_pair_arrays(root / "white", "train")[1] == 1).mean(axis=(1, 2, 3))
    assert 0.08 < white_fg.mean() < 0.5  # reasonably sized objects (learnable)
    assert json.loads((root / "dataset.json").read_text())["white"]["val"]["count"] == 6
    png = Image.open(root / "preview.png")
    assert png.format == "PNG" and min(png.size) > 400
    assert not list(root.parent.glob(".data.tmp-*"))


def test_sample_masks_come_from_the_rule_and_agree_with_the_renderer(sample):
    root, r = sample
    # at 64 px the rule's one-pixel anti-aliased rim weighs more than at 224 (0.97 there, see test_prep_masks)
    assert r["rule_vs_render_iou"]["mean"] > 0.88 and r["rule_vs_render_iou"]["min"] > 0.8, r[
        "rule_vs_render_iou"
    ]
    rows = [json.loads(x) for x in (root / "white" / "masks" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(row["method"] == "white" for row in rows)
    row = rows[5]  # the mask file is the rule's output on the saved JPEG, not the renderer's silhouette
    mask = mask_to_label(read_mask(root / "white" / "masks" / row["mask"])) == 1
    _, truth = render_sneaker(0, int(row["name"]), 64)
    assert 0.8 < iou(mask, truth) < 1.0


def test_composite_val_split_holds_out_sneakers_and_scenes(sample):
    root, r = sample
    bg = r["composite"]["backgrounds"]
    assert bg["val"] and not set(bg["val"]) & set(bg["train"])
    rows = [
        json.loads(x) for x in (root / "composite" / "val_pairs" / "manifest.jsonl").read_text().splitlines()
    ]
    val_objects = {o["object"].split("/")[-1] for row in rows for o in row["objects"]}
    train_rows = (root / "composite" / "train_pairs" / "manifest.jsonl").read_text().splitlines()
    train_objects = {
        o["object"].split("/")[-1] for row in map(json.loads, train_rows) for o in row["objects"]
    }
    assert val_objects and not val_objects & train_objects


def test_sample_is_reproducible(sample, tmp_path):
    root, _ = sample
    again = build_sample_dataset(
        tmp_path / "again", n_white=60, n_composite=40, size=64, seed=0, workers=1, quiet=True, preview=False
    )
    assert again["white"]["val"]["count"] == 6

    def digest(d):
        h = hashlib.sha256()
        for p in sorted(d.rglob("*.jpg")) + sorted(d.rglob("*.png")):
            h.update(p.read_bytes())
        return h.hexdigest()

    for sub in ("white/photos", "white/masks", "composite/train_pairs", "composite/val_pairs"):
        assert digest(root / sub) == digest(tmp_path / "again" / sub), sub
    for s in ("train", "val"):
        a, b = read_pair_arrays(root / "composite", s), read_pair_arrays(tmp_path / "again" / "composite", s)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cli_chain_masks_composite_lmdb_verify_on_the_sample(sample, tmp_path, capsys):
    root, _ = sample
    masks = tmp_path / "masks"
    assert main(["masks", str(root / "white" / "photos"), str(masks), "--quiet", "--workers", "2"]) == 0
    assert "60 masks written" in capsys.readouterr().out and (masks / "preview.png").is_file()
    comp = tmp_path / "comp"
    assert (
        fcnkit_cli.main(
            [
                "prep",
                "composite",
                str(masks),
                "--out",
                str(comp),
                "-n",
                "30",
                "--size",
                "64",
                "--seed",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert (comp / "preview.png").is_file() and len(list((comp / "masks").iterdir())) == 30
    out = tmp_path / "lmdb"
    assert (
        main(["lmdb", str(masks), str(comp), "--out", str(out), "--size", "48", "--verify", "--quiet"]) == 0
    )
    text = capsys.readouterr().out
    assert "train 81, val 9" in text and "--verify: OK" in text
    assert main(["lmdb", "--verify", "--out", str(out), "--quiet"]) == 0
    # the per-step script forwards to the same CLI
    r = subprocess.run(
        [sys.executable, str(ROOT / "data_prep" / "make_lmdb.py"), "--verify", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_sample_cli_and_its_bad_arguments(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "s"), "--n-white", "3"]) == 2
    assert "--n-white" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["sample", "--out", str(tmp_path / "mine"), "--n-white", "12", "--n-composite", "0"]) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").exists()
    assert (
        main(
            [
                "sample",
                "--out",
                str(tmp_path / "s"),
                "--n-white",
                "12",
                "--n-composite",
                "0",
                "--size",
                "32",
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "white 11+1" in capsys.readouterr().out
    assert not (tmp_path / "s" / "composite").exists()


def test_caffe_data_layers_read_the_pairs_in_step(sample, tmp_path):
    caffe = pytest.importorskip("caffe")
    from fcnkit.caffenet.pycaffe import load_caffe

    load_caffe()
    root, _ = sample
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Data(source=str(root / "composite" / "train_image_lmdb"), backend=P.Data.LMDB, batch_size=2)
    n.label = L.Data(source=str(root / "composite" / "train_label_lmdb"), backend=P.Data.LMDB, batch_size=2)
    path = tmp_path / "data.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    imgs, labs = read_pair_arrays(root / "composite", "train")
    for step in range(3):
        net.forward()
        assert net.blobs["data"].data.shape == (2, 3, 64, 64)
        np.testing.assert_array_equal(
            net.blobs["data"].data, imgs[2 * step : 2 * step + 2].astype(np.float32)
        )
        np.testing.assert_array_equal(
            net.blobs["label"].data, labs[2 * step : 2 * step + 2].astype(np.float32)
        )
    assert set(np.unique(net.blobs["label"].data)) <= {0.0, 1.0}


def test_ingest_a_users_folder_with_a_voc_tree(tmp_path, capsys):
    """`prep ingest`: own photos (some unusable) + VOC tree -> the sample's layout, VOC train/val honoured."""
    import tarfile

    from prep_util import save_jpeg, sneaker, write_voc_tar

    photos = tmp_path / "my shoes"
    photos.mkdir()
    for i in range(14):
        save_jpeg(photos / f"IMG_{i:04d}.jpg", sneaker(40 + i, 96)[0])
    (photos / "IMG_9999.jpg").write_bytes(b"")
    write_voc_tar(tmp_path / "voc.tar")
    with tarfile.open(tmp_path / "voc.tar") as tf:
        tf.extractall(tmp_path / "voc", filter="data")
    out = tmp_path / "mine"
    rc = main(
        [
            "ingest",
            str(photos),
            "--out",
            str(out),
            "--backgrounds",
            str(tmp_path / "voc" / "VOCdevkit"),
            "-n",
            "20",
            "--size",
            "48",
            "--quiet",
            "--workers",
            "2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "14 of 15 photos usable" in text and "1 empty-file" in text
    for kind in ("white", "composite"):
        rep = verify_lmdbs(out / kind, quiet=True)
        assert rep["train"]["count"] > rep["val"]["count"] > 0
    dataset = json.loads((out / "dataset.json").read_text())
    assert (
        dataset["composite"]["backgrounds"]["n_train"] == 2
        and dataset["composite"]["backgrounds"]["n_val"] == 1
    )
    val_bgs = {
        json.loads(x)["background"].split("/")[-1]
        for x in (out / "composite" / "val_pairs" / "manifest.jsonl").read_text().splitlines()
    }
    assert val_bgs == {"2007_000002.jpg"}  # VOC's own val list
    assert (out / "preview.png").is_file()
    assert main(["ingest", str(photos), "--out", str(photos / "out")]) == 2  # output inside the input


def test_cli_defaults_are_the_library_defaults():
    """The prep commands take their defaults from the same config values as the library functions."""
    import inspect

    from fcnkit.cli.prep import build_parser
    from fcnkit.prep.ingest import ingest_folder
    from fcnkit.prep.lmdb_build import build_lmdbs

    ingest = build_parser().parse_args(["ingest", "IN", "--out", "OUT"])
    lmdb = build_parser().parse_args(["lmdb", "P", "--out", "OUT"])
    sig = inspect.signature(ingest_folder).parameters
    assert (ingest.size, ingest.count, ingest.val_fraction) == (
        sig["size"].default, sig["n_composite"].default, sig["val_fraction"].default)
    sig = inspect.signature(build_lmdbs).parameters
    assert (lmdb.size, lmdb.val_fraction) == (sig["size"].default, sig["val_fraction"].default)
