"""`prep fetch voc2012`: download PASCAL VOC 2012 (trainval, 1.9 GB), check its checksum, extract it.

* The archive is downloaded by `fcnkit.io.download` (resumable, checksum-verified before it is renamed
  into place);
* Extraction goes to a hidden folder with tarfile's "data" filter (no absolute paths, no `..`, no links
  leaving the tree, no device files) and VOCdevkit/ is moved into DEST only when it is complete.

The reference MD5 of VOCtrainval_11-May-2012.tar is the one torchvision and others check against.
"""

from __future__ import annotations

import os
import shutil
import tarfile
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
}

def extract(archive: Path, dest: Path, *, top: str, check: str, quiet: bool = False) -> Path:
    """Extract `archive` and move its `top` folder into `dest` once complete; returns dest/top."""
    atomic.remove_stale(dest, ".extract-tmp-")
    tmp = dest / f".extract-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in tqdm(
                    members, desc=f"extract {archive.name}", unit="file", disable=quiet, leave=False
                ):
                    tf.extract(m, tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UserError(f"{archive}: cannot extract ({exc}); delete it and rerun `prep fetch`") from None
        if not (tmp / check).is_file():
            raise UserError(f"{archive}: does not contain {check}; is it the right archive?")
        atomic.replace_path(tmp / top, dest / top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / top


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
    """Download (unless already there and verified) and extract dataset `name` under `dest`."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    a = DATASETS[name]
    if url and not digest:
        raise UserError(
            "--url needs the archive's checksum too (--md5 or --sha256), or it cannot be verified"
        )
    algo, digest = (algo or a.algo), (digest or a.digest)
    dest = Path(dest)
    if (dest / a.check).is_file():
        return {"dataset": name, "root": str(dest / a.top), "status": "already present"}
    archive = dest / a.filename
    if archive.is_file():
        if file_digest(archive, algo) != digest.lower():
            raise UserError(f"{archive}: exists but its {algo} does not match {digest}; delete it and rerun")
    else:
        download(url or a.url, archive, algo=algo, digest=digest, quiet=quiet)
    root = extract(archive, dest, top=a.top, check=a.check, quiet=quiet)
    if not keep_archive:
        archive.unlink()
    return {
        "dataset": name,
        "root": str(root),
        "archive": str(archive) if keep_archive else None,
        "status": "downloaded and extracted",
    }
