"""`prep composite`: reproducible pastes over real photographs and a VOC-layout tree."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from fcnkit.cli.prep import main
from fcnkit.errors import UserError
from fcnkit.io.images import read_mask, read_rgb
from fcnkit.prep import common
from fcnkit.prep.composite import (
    CompositeOptions,
    builtin_backgrounds,
    resolve_backgrounds,
    run_composite,
)
from PIL import Image
from prep_util import save_jpeg, sneaker


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """A `prep masks` output folder made from drawn sneaker photos (the real step)."""
    root = tmp_path_factory.mktemp("objects")
    (root / "photos").mkdir()
    for i in range(6):
        save_jpeg(root / "photos" / f"s{i}.jpg", sneaker(20 + i)[0])
    assert main(["masks", str(root / "photos"), str(root / "masks"), "--quiet", "--no-preview"]) == 0
    return root / "masks"


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A miniature VOCdevkit/VOC2012 tree: real photos as JPEGImages, Segmentation lists."""
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    ids = []
    for k, p in enumerate(builtin_backgrounds()[:6]):
        rgb = read_rgb(p)
        h, w = rgb.shape[:2]
        f = 500 / max(h, w)  # VOC-like 500 px long side
        rgb = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        ids.append(f"2007_{k:06d}")
        save_jpeg(root / "JPEGImages" / f"{ids[-1]}.jpg", rgb, 90)
    save_jpeg(root / "JPEGImages" / "2099_not_listed.jpg", np.zeros((50, 50, 3), np.uint8))
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[:4]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids[4:]) + "\n")
    return root.parent


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "preview.png":
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_byte_identical_composites_regardless_of_workers(objects, tmp_path):
    pairs = common.pairs_from_manifest(objects)
    bgs = builtin_backgrounds()
    opts = CompositeOptions(size=96)
    run_composite(pairs, bgs, tmp_path / "a", 24, opts=opts, seed=5, workers=1, quiet=True, preview=False)
    run_composite(pairs, bgs, tmp_path / "b", 24, opts=opts, seed=5, workers=2, quiet=True, preview=False)
    run_composite(pairs, bgs, tmp_path / "c", 24, opts=opts, seed=6, workers=2, quiet=True, preview=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert len(list((tmp_path / "a" / "images").iterdir())) == 24


def test_composites_paste_the_object_where_the_label_says(objects, tmp_path):
    pairs = common.pairs_from_manifest(objects)
    opts = CompositeOptions(size=128, feather=0.0, ext="png", flip=False, max_outside=0.25)
    s = run_composite(
        pairs, builtin_backgrounds(), tmp_path / "c", 16, opts=opts, seed=1, workers=1, quiet=True
    )
    rows = common.read_manifest(tmp_path / "c")
    assert s["ok"] == 16 and len(rows) == 16 and (tmp_path / "c" / "preview.png").is_file()
    outside = 0
    for r in rows:
        img = read_rgb(tmp_path / "c" / r["image"])
        lab = read_mask(tmp_path / "c" / r["mask"])
        assert img.shape == (128, 128, 3) and set(np.unique(lab)) <= {0, 255}
        o = r["objects"][0]
        fg = lab > 0
        assert 0 < fg.mean() == pytest.approx(r["fg_fraction"], abs=1e-4)
        ys, xs = np.nonzero(fg)  # the label lies inside the pasted box, clipped to the frame
        assert xs.min() >= max(0, o["x"]) and xs.max() < o["x"] + o["w"]
        assert ys.min() >= max(0, o["y"]) and ys.max() < o["y"] + o["h"]
        outside += o["x"] < 0 or o["y"] < 0 or o["x"] + o["w"] > 128 or o["y"] + o["h"] > 128
        assert 0.3 * 128 - 1 <= max(o["w"], o["h"]) <= 0.9 * 128 + 1
        # hard paste: under the label the pixels are the sneaker's, so never the background's white-ish
        assert np.abs(img[fg].astype(int) - 255).max() > 30
        assert (tmp_path / "c" / r["background"]).resolve().is_file() or r["background"].startswith("/")
    assert outside >= 1  # with 16 draws, some sneakers run off the edge (allowed, documented)


def test_voc_tree_backgrounds_follow_the_segmentation_list(objects, voc, tmp_path, capsys):
    assert len(resolve_backgrounds(voc, "train")) == 4
    assert len(resolve_backgrounds(voc / "VOC2012", "val")) == 2
    with pytest.raises(UserError, match="train, val"):
        resolve_backgrounds(voc, "test")
    out = tmp_path / "comp"
    rc = main(
        [
            "composite",
            str(objects),
            "--backgrounds",
            str(voc),
            "--voc-list",
            "train",
            "--out",
            str(out),
            "-n",
            "12",
            "--size",
            "64",
            "--quiet",
            "--workers",
            "2",
        ]
    )
    assert rc == 0 and "12 composites" in capsys.readouterr().out
    used = {r["background"].split("/")[-1] for r in common.read_manifest(out)}
    listed = {f"{i}.jpg" for i in (voc / "VOC2012/ImageSets/Segmentation/train.txt").read_text().split()}
    assert used <= listed and used


def test_unreadable_backgrounds_are_skipped_deterministically(objects, tmp_path):
    bgdir = tmp_path / "bgs"
    bgdir.mkdir()
    for k, p in enumerate(builtin_backgrounds()[:3]):
        save_jpeg(bgdir / f"ok{k}.jpg", read_rgb(p))
    (bgdir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (bgdir / "empty.png").write_bytes(b"")
    pairs = common.pairs_from_manifest(objects)
    bgs = resolve_backgrounds(bgdir)
    a = run_composite(
        pairs, bgs, tmp_path / "a", 20, opts=CompositeOptions(size=64), workers=2, quiet=True, preview=False
    )
    b = run_composite(
        pairs, bgs, tmp_path / "b", 20, opts=CompositeOptions(size=64), workers=1, quiet=True, preview=False
    )
    assert a["ok"] == b["ok"] == 20 and a["unusable_inputs"] == b["unusable_inputs"]
    assert set(a["unusable_inputs"]) == {"../bgs/broken.jpg", "../bgs/empty.png"}
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert all(
        not r["background"].endswith(("broken.jpg", "empty.png"))
        for r in common.read_manifest(tmp_path / "a")
    )


def test_composite_input_errors(objects, tmp_path, capsys):
    assert main(["composite", "--out", str(tmp_path / "o"), "-n", "3"]) == 2
    assert "no objects" in capsys.readouterr().err
    assert main(["composite", str(tmp_path), "--out", str(tmp_path / "o"), "-n", "3"]) == 2
    assert "manifest.jsonl" in capsys.readouterr().err
    assert (
        main(
            [
                "composite",
                str(objects),
                "--backgrounds",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
                "-n",
                "3",
            ]
        )
        == 2
    )
    assert "no such folder" in capsys.readouterr().err
    assert main(["composite", str(objects), "--out", str(tmp_path / "o"), "-n", "3", "--scale-min", "2"]) == 2
    assert not (tmp_path / "o").exists()
    # a mask that does not match its image: the object is skipped, the run still finishes
    bad = tmp_path / "bad"
    (bad / "masks").mkdir(parents=True)
    save_jpeg(bad / "a.jpg", sneaker(1)[0])
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(bad / "masks" / "a.png")
    common.write_manifest(bad, [{"image": "a.jpg", "mask": "masks/a.png", "status": "ok", "name": "a"}])
    pairs = common.pairs_from_manifest(bad) + common.pairs_from_manifest(objects)
    s = run_composite(
        pairs,
        builtin_backgrounds(),
        tmp_path / "mixed",
        10,
        opts=CompositeOptions(size=64),
        workers=1,
        quiet=True,
        preview=False,
    )
    assert s["ok"] == 10 and any("does not match" in v for v in s["unusable_inputs"].values())
    assert json.loads((tmp_path / "mixed" / "manifest.jsonl").read_text().splitlines()[0])["status"] == "ok"


def test_interrupted_composite_step_leaves_no_output_folder(objects, tmp_path, monkeypatch):
    import fcnkit.prep.composite as comp

    real, calls = comp._one, []

    def one_then_ctrl_c(i):
        calls.append(i)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(i)

    monkeypatch.setattr(comp, "_one", one_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_composite(
            common.pairs_from_manifest(objects),
            builtin_backgrounds(),
            tmp_path / "out",
            10,
            opts=CompositeOptions(size=32),
            workers=1,
            quiet=True,
        )
    assert list(tmp_path.iterdir()) == []
