"""`prep fetch coco2014`: three zip archives, each checksummed, served from 127.0.0.1 (stand-ins for the real
19 GB; the reference MD5s are swapped for theirs)."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from fcnkit.errors import UserError
from fcnkit.prep import fetch as F


def make_zip(path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def coco_server(http_dir, monkeypatch):
    www, url = http_dir
    parts = []
    for a in F.DATASETS["coco2014"]:
        digest = make_zip(www / a.filename, {a.check: b"x", f"{a.top}/other.txt": b"y"})
        parts.append(F.Archive(f"{url}/{a.filename}", a.filename, "md5", digest, a.top, a.check))
    monkeypatch.setitem(F.DATASETS, "coco2014", tuple(parts))
    return www, url


def test_fetch_all_parts_then_already_present(coco_server, tmp_path):
    r = F.fetch("coco2014", tmp_path / "coco", quiet=True)
    assert [p["status"] for p in r["parts"]] == ["downloaded and extracted"] * 3
    for top in ("annotations", "train2014", "val2014"):
        assert (tmp_path / "coco" / top / "other.txt").read_bytes() == b"y"
    assert F.fetch("coco2014", tmp_path / "coco", quiet=True)["status"] == "already present"


def test_a_corrupt_part_is_refused_and_removed(coco_server, tmp_path, monkeypatch):
    www, _ = coco_server
    parts = list(F.DATASETS["coco2014"])
    (www / parts[1].filename).write_bytes(b"not the archive")
    with pytest.raises(UserError, match="checksum mismatch"):
        F.fetch("coco2014", tmp_path / "coco", quiet=True)
    assert not (tmp_path / "coco" / parts[1].filename).exists() and not (tmp_path / "coco" / "train2014").exists()


def test_zip_members_escaping_the_folder_are_refused(http_dir, tmp_path, monkeypatch):
    www, url = http_dir
    digest = make_zip(www / "evil.zip", {"../outside.txt": b"x", "annotations/instances_train2014.json": b"{}"})
    monkeypatch.setitem(F.DATASETS, "coco2014", (F.Archive(f"{url}/evil.zip", "evil.zip", "md5", digest,
                                                           "annotations", "annotations/instances_train2014.json"),))
    with pytest.raises(UserError, match="would land outside the folder"):
        F.fetch("coco2014", tmp_path / "coco", quiet=True)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "coco" / "annotations").exists()
