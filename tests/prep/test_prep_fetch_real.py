"""`prep fetch duts|bsds500|portraits|ccp`: small archives of each public layout (built here: real JPEGs, real
PNG and MATLAB files), served from 127.0.0.1, downloaded, checksummed, extracted and rearranged into the
folders `prep import` / `prep ingest` read, then imported."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
from fcnkit.cli.prep import main
from fcnkit.errors import UserError
from fcnkit.prep import fetch as F
from fcnkit.prep.folders import import_folder
from fcnkit.prep.ingest import split_backgrounds
from scipy.io import savemat

H, W = 48, 40


def _jpg(i: int) -> bytes:
    img = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _labels(i: int) -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    lab[8 + i:30, 10:30] = 1 + i % 2  # two garments
    lab[4:8, 15:25] = 2
    return lab


def _png(a: np.ndarray) -> bytes:
    return cv2.imencode(".png", a)[1].tobytes()


def _mat(**arrays) -> bytes:
    buf = io.BytesIO()
    savemat(buf, arrays)
    return buf.getvalue()


def _zip(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tgz(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _soft_mask(i: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[10:40, 8 + i:30] = 255
    return cv2.GaussianBlur(m, (5, 5), 0)  # DUTS's soft edges


def test_duts(http_dir, tmp_path, capsys):
    www, url = http_dir
    for tag, n in (("TR", 3), ("TE", 2)):
        _zip(www / f"DUTS-{tag}.zip", {**{f"DUTS-{tag}/DUTS-{tag}-Image/im{i}.jpg": _jpg(i) for i in range(n)},
                                       **{f"DUTS-{tag}/DUTS-{tag}-Mask/im{i}.png": _png(_soft_mask(i))
                                          for i in range(n)}})
    dest = tmp_path / "real"
    assert main(["fetch", "duts", "--dest", str(dest), "--url", url, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "downloaded and extracted" in out and "DUTS-TR.zip sha256 " in out and "--threshold 128" in out
    assert sorted(p.name for p in (dest / "duts" / "train" / "images").iterdir()) == ["im0.jpg", "im1.jpg", "im2.jpg"]
    recorded = (dest / "DUTS-TE.zip.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256((www / "DUTS-TE.zip").read_bytes()).hexdigest()
    assert not list(dest.glob(".*tmp-*"))
    with pytest.raises(UserError, match="not binary"):  # soft masks need the threshold the note names
        import_folder(dest / "duts", tmp_path / "x", quiet=True, workers=1)
    r = import_folder(dest / "duts", tmp_path / "imported", threshold=128, quiet=True, workers=1)
    assert r["splits"] == {"train": 2, "val": 1, "test": 2}
    assert main(["fetch", "duts", "--dest", str(dest), "--url", url]) == 0
    assert "already present" in capsys.readouterr().out


def test_a_recorded_checksum_guards_later_uses(http_dir, tmp_path):
    www, url = http_dir
    _zip(www / "DUTS-TR.zip", {"DUTS-TR/DUTS-TR-Image/a.jpg": _jpg(0), "DUTS-TR/DUTS-TR-Mask/a.png": b"x"})
    _zip(www / "DUTS-TE.zip", {"DUTS-TE/readme.txt": b"no images"})  # the wrong archive
    dest = tmp_path / "real"
    with pytest.raises(UserError, match="no DUTS-TE-Image folder inside"):
        F.fetch("duts", dest, url=url, quiet=True)
    assert not (dest / "duts").exists() and not list(dest.glob(".*tmp-*"))
    (dest / "DUTS-TR.zip").write_bytes(b"tampered")  # the archive changes after its digest was recorded
    with pytest.raises(UserError, match="does not match"):
        F.fetch("duts", dest, url=url, quiet=True)


def test_bsds500(http_dir, tmp_path):
    www, url = http_dir
    members = {}
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        members |= {f"BSR/BSDS500/data/images/{split}/{split}{i}.jpg": _jpg(i) for i in range(n)}
        members[f"BSR/BSDS500/data/images/{split}/Thumbs.db"] = b"windows thumbnails"
    members["BSR/BSDS500/data/groundTruth/train/x.mat"] = b"unused"
    digest = _tgz(www / "BSR_bsds500.tgz", members)
    dest = tmp_path / "real"
    r = F.fetch("bsds500", dest, url=f"{url}/BSR_bsds500.tgz", algo="sha256", digest=digest, quiet=True)
    assert r["counts"] == {"train": 3, "val": 2, "test": 2}
    train, val, test = split_backgrounds(dest / "bsds500")  # what `prep ingest --backgrounds` takes
    assert [len(train), len(val), len(test)] == [3, 2, 2] and all(p.suffix == ".jpg" for p in train + val + test)
    with pytest.raises(UserError, match="checksum mismatch"):
        F.fetch("bsds500", tmp_path / "other", url=f"{url}/BSR_bsds500.tgz", digest="0" * 64, quiet=True)
    assert not (tmp_path / "other" / "bsds500").exists()


def test_portraits(http_dir, tmp_path):
    www, url = http_dir
    top = f"AutoPortraitMatting-{F._PORTRAIT_COMMIT}/data"
    members = {f"{top}/trainlist.mat": _mat(trainlist=np.array([[1, 2, 4]], np.float64)),  # 4: photo missing
               f"{top}/testlist.mat": _mat(testlist=np.array([[3]], np.float64))}
    for i in (1, 2, 3):
        mask = np.zeros((H, W), np.uint8)
        mask[10 + i:, 5:35] = 1
        members[f"{top}/images_data_crop/{i:05d}.jpg"] = _jpg(i)
        members[f"{top}/images_mask/{i:05d}_mask.mat"] = _mat(mask=mask.astype(np.float64))
    name = F.REAL["portraits"].archives[0].filename
    _zip(www / name, members)
    dest = tmp_path / "real"
    r = F.fetch("portraits", dest, url=f"{url}/{name}", quiet=True)
    assert r["counts"] == {"train": 2, "test": 1}
    m = cv2.imread(str(dest / "portraits" / "test" / "masks" / "00003.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(m)) == {0, 255} and (m > 0).sum() == (H - 13) * 30
    imp = import_folder(dest / "portraits", tmp_path / "imported", val_fraction=0, quiet=True, workers=1)
    assert imp["splits"] == {"train": 2, "test": 1}  # the official lists, as given


def test_ccp(http_dir, tmp_path):
    www, url = http_dir
    top = f"clothing-co-parsing-{F._CCP_COMMIT}"
    names = np.empty((1, 3), dtype=object)
    names[0, :] = ["null", "shirt", "hair"]
    members = {f"{top}/label_list.mat": _mat(label_list=names), f"{top}/photos/0003.jpg": _jpg(3)}  # no labels
    for i in (1, 2):
        members[f"{top}/photos/{i:04d}.jpg"] = _jpg(i)
        members[f"{top}/annotations/pixel-level/{i:04d}.mat"] = _mat(groundtruth=_labels(i))
    name = F.REAL["ccp"].archives[0].filename
    _zip(www / name, members)
    dest = tmp_path / "real"
    r = F.fetch("ccp", dest, url=f"{url}/{name}", quiet=True)
    assert r["counts"] == {"labelled": 2, "labels": 3}
    assert (dest / "ccp" / "label_list.txt").read_text() == "0 null\n1 shirt\n2 hair\n"
    lab = cv2.imread(str(dest / "ccp" / "labels" / "0002.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(lab, _labels(2))  # the ids, unchanged
    imp = import_folder(dest / "ccp", tmp_path / "imported", test_fraction=0.5, val_fraction=0, quiet=True,
                        workers=1)
    assert sum(imp["splits"].values()) == 2 and "label > 0" in imp["masks"]
    row = [ln for ln in (tmp_path / "imported" / "manifest.jsonl").read_text().splitlines() if "0002" in ln][0]
    assert '"box": [10, 4, 20, 26]' in row  # x, y, w, h of the person: the garments and the hair
