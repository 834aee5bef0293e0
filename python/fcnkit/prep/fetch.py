"""`prep fetch voc2012`: download PASCAL VOC 2012 (trainval, 1.9 GB), check its checksum, extract it.

* The archive is streamed to DEST/NAME.part with a progress bar and hashed on the way; a partial file
  from an interrupted run is resumed with an HTTP Range request when the server allows it.
* Only a file whose checksum matches is renamed to DEST/NAME; a mismatch deletes the download.
* Extraction goes to a hidden folder with tarfile's "data" filter (no absolute paths, no `..`, no links
  leaving the tree, no device files) and VOCdevkit/ is moved into DEST only when it is complete.

The reference MD5 of VOCtrainval_11-May-2012.tar is the one torchvision and others check against.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fcnkit.errors import UserError
from fcnkit.prep import common


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

_CHUNK = 1 << 20


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str, dest: Path, *, algo: str, digest: str | None, quiet: bool = False, timeout: float = 60.0
) -> Path:
    """Download `url` to `dest` (via dest.part); verify `digest` (hex, `algo`) before renaming."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.new(algo)
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "fcnkit-prep/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already complete
            resp = None
        else:
            raise UserError(
                f"{url}: download failed, HTTP {exc.code} {exc.reason}; check the URL or pass --url "
                "with a mirror"
            ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"{url}: cannot connect ({reason}); check the network, or download the file yourself "
            f"into {dest.parent} and rerun"
        ) from None
    try:
        if resp is not None and have and resp.status != 206:
            have = 0  # the server ignored Range: start over
        mode = "ab" if have else "wb"
        if have:
            with open(part, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        total = None
        if resp is not None and resp.headers.get("Content-Length", "").isdigit():
            total = have + int(resp.headers["Content-Length"])
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=quiet,
                leave=False,
            ) as bar,
        ):
            while resp is not None and (chunk := resp.read(_CHUNK)):
                f.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    except OSError as exc:
        raise UserError(f"{url}: download interrupted ({exc}); rerun to resume") from None
    finally:
        if resp is not None:
            resp.close()
    got = h.hexdigest()
    if digest and got.lower() != digest.lower():
        part.unlink(missing_ok=True)
        raise UserError(
            f"{url}: checksum mismatch ({algo} {got}, expected {digest}); the download is corrupt or "
            "the server sent another file; it was deleted, rerun to retry"
        )
    os.replace(part, dest)
    return dest


def extract(archive: Path, dest: Path, *, top: str, check: str, quiet: bool = False) -> Path:
    """Extract `archive` and move its `top` folder into `dest` once complete; returns dest/top."""
    common.remove_stale(dest, ".extract-tmp-")
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
        common.replace_path(tmp / top, dest / top)
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
