"""`prep fetch NAME`: download a public dataset, check each archive's checksum, extract it.

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

The real-photo sets (`REAL`) are rearranged after extraction into the folders `prep import` / `prep ingest`
read, under DEST/NAME (replaced as a whole, only when complete):

* duts:      DUTS-TR.zip + DUTS-TE.zip (saliencydetection.net) -> duts/{train,test}/{images,masks}
             (DUTS masks have soft edges: import them with --threshold 128);
* bsds500:   BSR_bsds500.tgz (Berkeley) -> bsds500/{train,val,test}/*.jpg (backgrounds for `prep ingest`);
* portraits: Shen et al. 2016's portrait set as kept in bio-punk/AutoPortraitMatting (images_data_crop/,
             images_mask/*_mask.mat, trainlist.mat / testlist.mat) -> portraits/{train,test}/{images,masks};
* ccp:       Clothing Co-Parsing (bearpaw/clothing-co-parsing: photos/, annotations/pixel-level/*.mat,
             label_list.mat) -> ccp/{photos,labels}/ + label_list.txt (ids 0..58, 0 = null).

No published checksum exists for these archives (the authors publish none; GitHub builds its archives on
demand), so none is pinned here rather than one invented: the first download's SHA-256 is printed and
recorded in DEST/<archive>.sha256, and every later use of that archive is checked against it. Pin it on
other machines with --sha256 (or --url MIRROR --sha256 HEX).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fcnkit.errors import UserError
from fcnkit.io import atomic
from fcnkit.io.download import download, file_digest
from fcnkit.io.images import IMAGE_EXTS, encode_png


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    algo: str
    digest: str | None  # None: no published checksum (recorded on first download, see the module doc)
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

def _unpack(archive: Path, tmp: Path, quiet: bool) -> None:
    """Extract a .zip or a tar (any compression) into `tmp`, refusing members that would leave it."""
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
                for m in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=quiet, leave=False):
                    tf.extract(m, tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{archive}: cannot extract ({exc}); delete it and rerun `prep fetch`") from None


def extract(archive: Path, dest: Path, *, top: str, check: str, quiet: bool = False) -> Path:
    """Extract `archive` and move its `top` folder into `dest` once complete; returns dest/top."""
    atomic.remove_stale(dest, ".extract-tmp-")
    tmp = dest / f".extract-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _unpack(archive, tmp, quiet)
        if not (tmp / check).exists():
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
    if name in REAL:
        if algo not in (None, "sha256"):
            raise UserError(f"{name}: give its checksum as --sha256")
        return fetch_real(name, dest, url=url, digest=digest, keep_archive=keep_archive, quiet=quiet)
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join([*DATASETS, *REAL])}")
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


# --------------------------------------------------------------------------- real photographs, rearranged
def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _find(tmp: Path, pattern: str, archive: str) -> Path:
    """The one folder matching `pattern` under the extraction (archives differ in their top folder)."""
    hits = sorted(p for p in tmp.glob(pattern) if p.is_dir())
    if not hits:
        raise UserError(f"{archive}: no {pattern.split('/')[-1]} folder inside; is it the right archive?")
    return hits[0]


def _move_images(src: Path, dst: Path) -> int:
    dst.mkdir(parents=True, exist_ok=True)
    files = _images(src)
    for f in files:
        f.rename(dst / f.name)
    return len(files)


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat  # noqa: PLC0415  (only the .mat-based sets need scipy, a scikit-image dependency)

    try:
        return {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    except (ValueError, OSError, NotImplementedError) as exc:
        raise UserError(f"{path}: not a readable MATLAB file ({exc}); delete the archive and rerun") from None


def _mat_array(path: Path, name: str | None = None) -> np.ndarray:
    """Variable `name` of a .mat file, or its only 2-D numeric array."""
    data = _load_mat(path)
    if name is not None and name in data:
        return np.asarray(data[name])
    arrays = [v for v in data.values() if isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype.kind in "uifb"]
    if len(arrays) != 1:
        raise UserError(f"{path}: expected one 2-D array{f' named {name}' if name else ''}, found {sorted(data)}")
    return arrays[0]


def _arrange_duts(tmp: Path, out: Path, archive: str) -> dict:
    counts = {}
    for split, tag in (("train", "TR"), ("test", "TE")):
        n = _move_images(_find(tmp, f"**/DUTS-{tag}-Image", archive), out / split / "images")
        m = _move_images(_find(tmp, f"**/DUTS-{tag}-Mask", archive), out / split / "masks")
        counts[split] = {"images": n, "masks": m}
    return counts


def _arrange_bsds(tmp: Path, out: Path, archive: str) -> dict:
    images = _find(tmp, "**/BSDS500/data/images", archive)
    return {split: _move_images(_find(images, split, archive), out / split) for split in ("train", "val", "test")}


def _arrange_portraits(tmp: Path, out: Path, archive: str) -> dict:
    data = _find(tmp, "**/images_data_crop", archive).parent
    masks = data / "images_mask"
    counts = {}
    for split in ("train", "test"):
        lst = data / f"{split}list.mat"
        if not lst.is_file():
            raise UserError(f"{archive}: no {lst.name} (the official {split} list); is it the right archive?")
        ids = sorted({int(i) for i in _mat_array(lst, f"{split}list").ravel()})
        (out / split / "images").mkdir(parents=True)
        (out / split / "masks").mkdir()
        n = 0
        for i in ids:
            img, mat, png = data / "images_data_crop" / f"{i:05d}.jpg", masks / f"{i:05d}_mask.mat", \
                masks / f"{i:05d}_mask.png"
            if not img.is_file() or not (mat.is_file() or png.is_file()):
                continue  # listed, but its photo was gone from Flickr when the set was collected
            m = _mat_array(mat, "mask") if mat.is_file() else cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
            img.rename(out / split / "images" / img.name)
            (out / split / "masks" / f"{i:05d}.png").write_bytes(encode_png(((m > 0) * 255).astype(np.uint8),
                                                                            binary=True))
            n += 1
        counts[split] = n
    return counts


def _arrange_ccp(tmp: Path, out: Path, archive: str) -> dict:
    pixel = _find(tmp, "**/annotations/pixel-level", archive)
    root = pixel.parent.parent
    names = _load_mat(root / "label_list.mat") if (root / "label_list.mat").is_file() else {}
    cells = np.asarray(next(iter(names.values()), [])).ravel()
    if not cells.size:
        raise UserError(f"{archive}: no label_list.mat naming the label ids; is it the right archive?")
    lines = [f"{i} {str(np.asarray(c).ravel()[0]) if np.asarray(c).size else ''}" for i, c in enumerate(cells)]
    (out / "photos").mkdir(parents=True)
    (out / "labels").mkdir()
    (out / "label_list.txt").write_text("\n".join(lines) + "\n")
    n = 0
    for mat in sorted(pixel.glob("*.mat")):
        photo = root / "photos" / f"{mat.stem}.jpg"
        if not photo.is_file():
            continue
        gt = _mat_array(mat, "groundtruth")
        if gt.max() >= len(cells):
            raise UserError(f"{mat}: label id {int(gt.max())} beyond label_list.mat's {len(cells)} names")
        (out / "labels" / f"{mat.stem}.png").write_bytes(encode_png(gt.astype(np.uint8)))
        photo.rename(out / "photos" / photo.name)
        n += 1
    return {"labelled": n, "labels": len(cells)}


@dataclass(frozen=True)
class RealSet:
    archives: tuple[Archive, ...]
    arrange: Callable[[Path, Path, str], dict]  # (extraction folder, output folder, archive names) -> counts
    check: str  # a path under DEST/NAME that marks a complete arrangement
    note: str


_GH = "https://github.com/{}/archive/{}.zip"
_PORTRAIT_COMMIT = "5c89932069955ccf18a81ba824e466f8135aced4"
_CCP_COMMIT = "cbc8deae85f65178394eded0817a5c1b1019b63d"

REAL = {
    "duts": RealSet(
        (Archive("http://saliencydetection.net/duts/download/DUTS-TR.zip", "DUTS-TR.zip", "sha256", None, "DUTS-TR",
                 "DUTS-TR"),
         Archive("http://saliencydetection.net/duts/download/DUTS-TE.zip", "DUTS-TE.zip", "sha256", None, "DUTS-TE",
                 "DUTS-TE")),
        _arrange_duts, "test/masks", "import with `prep import DEST/duts --out OUT --threshold 128`"),
    "bsds500": RealSet(
        (Archive("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
                 "BSR_bsds500.tgz", "sha256", None, "BSR", "BSR"),),
        _arrange_bsds, "test", "use as `prep ingest PHOTOS --backgrounds DEST/bsds500 --test-fraction 0.1`"),
    "portraits": RealSet(
        (Archive(_GH.format("bio-punk/AutoPortraitMatting", _PORTRAIT_COMMIT),
                 f"AutoPortraitMatting-{_PORTRAIT_COMMIT[:7]}.zip", "sha256", None,
                 f"AutoPortraitMatting-{_PORTRAIT_COMMIT}", f"AutoPortraitMatting-{_PORTRAIT_COMMIT}"),),
        _arrange_portraits, "test/masks", "import with `prep import DEST/portraits --out OUT`"),
    "ccp": RealSet(
        (Archive(_GH.format("bearpaw/clothing-co-parsing", _CCP_COMMIT), f"clothing-co-parsing-{_CCP_COMMIT[:7]}.zip",
                 "sha256", None, f"clothing-co-parsing-{_CCP_COMMIT}", f"clothing-co-parsing-{_CCP_COMMIT}"),),
        _arrange_ccp, "label_list.txt", "import with `prep import DEST/ccp --out OUT` (person = label > 0)"),
}


def _recorded(archive: Path) -> Path:
    return archive.with_name(archive.name + ".sha256")


def _get(a: Archive, dest: Path, url: str | None, digest: str | None, quiet: bool) -> tuple[Path, str]:
    """Download (or reuse) one archive of a real set; returns (path, its sha256). With no pinned or given
    checksum, the first download's digest is recorded beside it and checked on every later use."""
    archive = dest / a.filename
    rec = _recorded(archive)
    want = (digest or a.digest or (rec.read_text().split()[0] if rec.is_file() else None) or "").lower() or None
    if archive.is_file():
        got = file_digest(archive, "sha256")
        if want and got != want:
            raise UserError(f"{archive}: exists but its sha256 {got} does not match {want}; delete it and rerun")
    else:
        download(url or a.url, archive, algo="sha256", digest=want, quiet=quiet)
        got = file_digest(archive, "sha256")
    if not rec.is_file():
        atomic.write_text_atomic(rec, f"{got}  {a.filename}\n")
    return archive, got


def fetch_real(name: str, dest: str | os.PathLike, *, url: str | None = None, digest: str | None = None,
               keep_archive: bool = True, quiet: bool = False) -> dict:
    """Download, check, extract and rearrange real-photo set `name` into DEST/NAME (see the module doc).

    `url`: the archive's address (a mirror), or for a set of several archives the folder holding them;
    `digest`: its sha256 (single-archive sets only)."""
    spec, dest = REAL[name], Path(dest)
    final = dest / name
    if (final / spec.check).exists():
        return {"dataset": name, "root": str(final), "status": "already present", "note": spec.note}
    if digest and len(spec.archives) > 1:
        raise UserError(f"{name} has {len(spec.archives)} archives; --sha256 applies to single-archive sets only "
                        f"(their digests are recorded in DEST/<archive>.sha256 on first download)")
    dest.mkdir(parents=True, exist_ok=True)
    got = {}
    archives = []
    for a in spec.archives:
        where = (f"{url.rstrip('/')}/{a.filename}" if len(spec.archives) > 1 else url) if url else None
        path, got[a.filename] = _get(a, dest, where, digest, quiet)
        archives.append(path)
    atomic.remove_stale(dest, ".extract-tmp-")
    tmp = dest / f".extract-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for path in archives:
            _unpack(path, tmp, quiet)
        prefix = f".{name}.tmp-"
        atomic.remove_stale(dest, prefix)
        out = dest / f"{prefix}{os.getpid()}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        try:
            counts = spec.arrange(tmp, out, ", ".join(a.filename for a in spec.archives))
            if not (out / spec.check).exists():
                raise UserError(f"{name}: the archives did not give {spec.check}; are they the right ones?")
            atomic.replace_path(out, final)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        for path in archives:
            path.unlink()
    return {"dataset": name, "root": str(final), "status": "downloaded and extracted", "counts": counts,
            "sha256": got, "note": spec.note}
