"""`prep fetch voc2012|coco2014`: download a public dataset, check each archive's checksum, extract it.

* voc2012: PASCAL VOC 2012 trainval (one 1.9 GB tar);
* coco2014: COCO 2014 train and val images and their instance annotations (three zips, 19 GB in all), what
  ExtractNet trained on; `prep coco` turns them into prominent-object masks. The MD5s are the reference
  ones other loaders pin for these archives.

* The archive is downloaded by `fcnkit.io.download` (resumable, checksum-verified before it is renamed
  into place);
* Extraction goes to a hidden folder (tar: tarfile's "data" filter; zip: members whose paths leave the
  folder are refused) (no absolute paths, no `..`, no links
  leaving the tree, no device files) and VOCdevkit/ is moved into DEST only when it is complete.

The reference MD5 of VOCtrainval_11-May-2012.tar is the one torchvision and others check against.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fcnkit.errors import UserError
from fcnkit.io import atomic
from fcnkit.io.download import download, file_digest


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    algo: str
    digest: str
    top: str  # the folder the archive holds
    check: str  # a path inside it that proves the extraction is the expected dataset


DATASETS = {
    "voc2012": Archive(
        url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        filename="VOCtrainval_11-May-2012.tar",
        algo="md5",
        digest="6cd6e144f989b92b3379bac3b3de84fd",
        top="VOCdevkit",
        check="VOCdevkit/VOC2012/ImageSets/Segmentation/trainval.txt",
    ),
    "coco2014": (
        Archive("http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
                "annotations_trainval2014.zip", "md5", "0a379cfc70b0e71301e0f377548639bd", "annotations",
                "annotations/instances_train2014.json"),
        Archive("http://images.cocodataset.org/zips/train2014.zip", "train2014.zip", "md5",
                "0da8c0bd3d6becc4dcb32757491aca88", "train2014", "train2014/COCO_train2014_000000000009.jpg"),
        Archive("http://images.cocodataset.org/zips/val2014.zip", "val2014.zip", "md5",
                "a3d79f5ed8d289b7a7554ce06a5782b3", "val2014", "val2014/COCO_val2014_000000000042.jpg"),
    ),
}


def _extract_zip(archive: Path, tmp: Path, quiet: bool) -> None:
    root = tmp.resolve()
    with zipfile.ZipFile(archive) as zf:
        for m in tqdm(zf.infolist(), desc=f"extract {archive.name}", unit="file", disable=quiet, leave=False):
            target = (tmp / m.filename).resolve()
            if m.filename.startswith("/") or (target != root and root not in target.parents):
                raise UserError(f"{archive}: member {m.filename!r} would land outside the folder; refusing it")
            zf.extract(m, tmp)

def extract(archive: Path, dest: Path, *, top: str, check: str, quiet: bool = False) -> Path:
    """Extract `archive` and move its `top` folder into `dest` once complete; returns dest/top."""
    atomic.remove_stale(dest, ".extract-tmp-")
    tmp = dest / f".extract-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            if archive.suffix == ".zip":
                _extract_zip(archive, tmp, quiet)
            else:
                with tarfile.open(archive) as tf:
                    members = tf.getmembers()
                    for m in members:  # refused, not rewritten: an archive that tries this is not the dataset
                        parts = Path(m.name).parts
                        if m.name.startswith(("/", "\\")) or ".." in parts or m.issym() or m.islnk() \
                                or m.isdev() or m.isfifo():
                            raise UserError(f"{archive}: member {m.name!r} is an absolute path, climbs out with "
                                            "'..', or is a link or device; refusing the archive (delete it and "
                                            "rerun `prep fetch`)")
                    for m in tqdm(
                        members, desc=f"extract {archive.name}", unit="file", disable=quiet, leave=False
                    ):
                        tf.extract(m, tmp, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise UserError(f"{archive}: cannot extract ({exc}); delete it and rerun `prep fetch`") from None
        if not (tmp / check).is_file():
            raise UserError(f"{archive}: does not contain {check}; is it the right archive?")
        atomic.replace_path(tmp / top, dest / top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / top


def _fetch_archive(a: Archive, dest: Path, url: str | None, algo: str, digest: str, keep_archive: bool,
                   quiet: bool) -> tuple[Path, str]:
    if (dest / a.check).is_file():
        return dest / a.top, "already present"
    archive = dest / a.filename
    if archive.is_file():
        if file_digest(archive, algo) != digest.lower():
            raise UserError(f"{archive}: exists but its {algo} does not match {digest}; delete it and rerun")
    else:
        download(url or a.url, archive, algo=algo, digest=digest, quiet=quiet)
    root = extract(archive, dest, top=a.top, check=a.check, quiet=quiet)
    if not keep_archive:
        archive.unlink()
    return root, "downloaded and extracted"


def fetch(
    name: str,
    dest: str | os.PathLike,
    *,
    url: str | None = None,
    algo: str | None = None,
    digest: str | None = None,
    keep_archive: bool = True,
    quiet: bool = False,
) -> dict:
    """Download (unless already there and verified) and extract dataset `name` under `dest`.

    For a dataset of several archives (coco2014) `url` is a mirror folder holding them under their own
    names; they are still checked against the reference checksums."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    dest = Path(dest)
    if isinstance(DATASETS[name], tuple):
        if digest:
            raise UserError(f"{name} has one reference checksum per archive; --md5/--sha256 apply to single-"
                            "archive datasets only")
        parts = []
        for a in DATASETS[name]:
            root, status = _fetch_archive(a, dest, f"{url.rstrip('/')}/{a.filename}" if url else None, a.algo,
                                          a.digest, keep_archive, quiet)
            parts.append({"archive": a.filename, "root": str(root), "status": status})
        done = all(p["status"] == "already present" for p in parts)
        return {"dataset": name, "root": str(dest), "parts": parts,
                "status": "already present" if done else "downloaded and extracted"}
    a = DATASETS[name]
    if url and not digest:
        raise UserError(
            "--url needs the archive's checksum too (--md5 or --sha256), or it cannot be verified"
        )
    algo, digest = (algo or a.algo), (digest or a.digest)
    root, status = _fetch_archive(a, dest, url, algo, digest, keep_archive, quiet)
    return {
        "dataset": name,
        "root": str(root),
        "archive": str(dest / a.filename) if keep_archive and status != "already present" else None,
        "status": status,
    }
