"""`prep coco`: COCO instance annotations -> prominent-object masks by ExtractNet's rules (extractnet-report.txt §3).

For every image of the annotation file (pycocotools reads it, decodes polygons and RLE):
1. objects of the supercategories person and vehicle (non-crowd instances);
2. prominent objects: those whose mask covers at least 10 % of the image; the image is kept only if one
   of them covers at least 30 % (a "major" object); the largest and up to 3 more prominent objects
3. are combined into one binary mask;
4. masks covering more than 90 % of the image are rejected (too little background);
5. image and mask are resized to 224 x 224 (aspect ratio not kept; the mask by nearest neighbour).
Output (replaced as a whole when complete): OUT/<stem>.jpg, OUT/masks/<stem>.png (0/255), and
OUT/manifest.jsonl with every image's outcome and reason; with `lmdb=True` also the paired train/val LMDBs
in OUT/lmdb (what `fcnkit train` and `evaluate` read). A missing image file is skipped with its reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fcnkit.config.seeds import (
    COCO_EXTRA_OBJECTS,
    COCO_MAJOR_OBJECT,
    COCO_MAX_MASK,
    COCO_MIN_OBJECT,
    COCO_SIZE,
    COCO_SUPERCATEGORIES,
)
from fcnkit.errors import UserError
from fcnkit.io.images import DEFAULT_MAX_PIXELS, ImageReadError, encode_jpeg, encode_png, read_bgr
from fcnkit.prep import common
from fcnkit.prep.lmdb_build import build_lmdbs

MARKER = "coco.json"  # written last: its presence marks a complete `prep coco` folder


def load_coco(annotations: str | os.PathLike):
    """pycocotools' COCO index of an instances_*.json file; one clear line if it is not one."""
    from pycocotools.coco import COCO  # noqa: PLC0415  (only `prep coco` needs it)

    # pycocotools' mask decoding trips numpy 2's __array__ copy deprecation on every call; it is harmless
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
    path = Path(annotations)
    if not path.is_file():
        raise UserError(f"{path}: no such annotation file; download it with `prep fetch coco2014`")
    try:
        data = json.loads(path.read_text())
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply to be COCO annotations; give a COCO instances_*.json"
                        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc}); give a COCO instances_*.json") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        what = ", ".join(missing) or "lists of images, annotations and categories"
        raise UserError(f"{path}: not COCO instance annotations (no {what}); give "
                        "annotations/instances_train2014.json or instances_val2014.json")
    check_index(path, data)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..." to stdout
        coco.createIndex()
    return coco


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_index(path: Path, data: dict) -> None:
    """What pycocotools' index needs, or one line naming the entry and the fix: every image, annotation and
    category a JSON object with an integer id (image ids unique), every annotation naming its image and
    category. What is wrong inside one image's annotations (sizes, segmentations) skips that image instead."""
    fix = "fix or remove it (COCO's instances_*.json are well formed: re-download them with `prep fetch coco2014`)"
    seen: set[int] = set()
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise UserError(f"{path}: images[{i}] has no integer id; {fix}")
        if im["id"] in seen:
            raise UserError(f"{path}: image id {im['id']} appears twice (images[{i}]); {fix}")
        seen.add(im["id"])
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise UserError(f"{path}: image {im['id']} has no file_name; {fix}")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            raise UserError(f"{path}: annotations[{i}] has no integer id; {fix}")
        for key in ("image_id", "category_id"):
            if not _is_int(ann.get(key)):
                raise UserError(f"{path}: annotation {ann['id']} has no integer {key}; {fix}")
        ann.setdefault("iscrowd", 0)  # COCO: absent means a single object
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("supercategory", ""),
                                                                                   str):
            raise UserError(f"{path}: categories[{i}] has no integer id and supercategory name; {fix}")


def _rle_total(counts: str) -> int | None:
    """Sum of the run lengths of a COCO compressed RLE string (pycocotools' rleFrString), None if it is not
    one (a character outside its alphabet, a run that goes negative, a string cut mid-number)."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return sum(runs)


def segmentation_problem(ann: dict, h: int, w: int) -> str | None:
    """Why pycocotools must not decode this annotation's segmentation at h x w (it trusts every number, and a
    bad one crashes or allocates what it says), or None."""
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not seg:
            return "empty polygon list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                return "a polygon with fewer than 3 points (or an odd number of coordinates)"
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in poly):
                return "a polygon coordinate that is not a finite number"
        return None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if size != [h, w]:
            return f"RLE size {size!r}, the image is {h}x{w}"
        if isinstance(counts, list):
            if not all(_is_int(c) and c >= 0 for c in counts):
                return "RLE counts that are not non-negative integers"
            total = sum(counts)
        elif isinstance(counts, str):
            total = _rle_total(counts)
            if total is None:
                return "RLE counts that are not a compressed RLE string"
        else:
            return "RLE without counts"
        return None if total == h * w else f"RLE runs cover {total} pixels, the image has {h * w}"
    return "no segmentation (neither polygons nor RLE)"


def prominent_mask(coco, image: dict, cat_ids: list[int]) -> tuple[np.ndarray | None, str, str]:
    """(the report's union mask at the image's size or None, outcome code, reason in words)."""
    h, w = image.get("height"), image.get("width")
    if not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
        return None, "bad-image", f"height {h!r} and width {w!r} are not positive whole numbers"
    if h * w > DEFAULT_MAX_PIXELS:
        return None, "bad-image", (f"declares {w}x{h} = {w * h:,} pixels, over the {DEFAULT_MAX_PIXELS:,}-pixel "
                                   "limit of the image reader")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]], catIds=cat_ids, iscrowd=False))
    objects = []
    for ann in anns:
        problem = segmentation_problem(ann, h, w)
        if problem is not None:
            return None, "bad-annotation", f"annotation {ann.get('id')}: {problem}"
        m = coco.annToMask(ann).astype(bool)
        if m.shape != (h, w):
            return None, "bad-annotation", f"annotation {ann.get('id')} decodes to {m.shape}, the image is {h}x{w}"
        frac = m.mean()
        if frac >= COCO_MIN_OBJECT:
            objects.append((frac, m))
    if not anns:
        return None, "no-class", "no person or vehicle"
    if not objects or max(f for f, _ in objects) < COCO_MAJOR_OBJECT:
        return None, "no-major-object", f"no object covers {COCO_MAJOR_OBJECT:.0%} of the image"
    objects.sort(key=lambda o: -o[0])
    union = np.zeros((h, w), bool)
    for _, m in objects[:1 + COCO_EXTRA_OBJECTS]:
        union |= m
    if union.mean() > COCO_MAX_MASK:
        return None, "too-large", f"mask covers {union.mean():.0%} of the image (over {COCO_MAX_MASK:.0%})"
    return union.astype(np.uint8), "kept", f"{min(len(objects), 1 + COCO_EXTRA_OBJECTS)} prominent objects"


def run_coco(annotations, images_dir, out, *, size: int = COCO_SIZE, limit: int | None = None, lmdb: bool = False,
             val_fraction: float = 0.2, seed: int = 0, force: bool = False, quiet: bool = False) -> dict:
    coco = load_coco(annotations)
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"{images_dir}: no such image folder; give the folder holding the COCO images "
                        "(e.g. data/coco/train2014)")
    cat_ids = coco.getCatIds(supNms=list(COCO_SUPERCATEGORIES))
    if not cat_ids:
        raise UserError(f"{annotations}: no categories of the supercategories {', '.join(COCO_SUPERCATEGORIES)}")
    out = Path(out)
    common.refuse_inside(out, [annotations, images_dir], "input")
    infos = sorted(coco.dataset["images"], key=lambda im: im["id"])[:limit]
    rows, kept = [], 0
    with common.staged_dir(out, marker=MARKER, force=force, step="coco") as tmp:
        (tmp / "masks").mkdir()
        for im in tqdm(infos, desc="prep coco", unit="img", disable=quiet or None, leave=False):
            row = {"image": im.get("file_name"), "id": im["id"]}
            mask, code, why = prominent_mask(coco, im, cat_ids)
            if mask is None:
                rows.append({**row, "kept": False, "code": code, "reason": why})
                continue
            try:
                bgr = read_bgr(images_dir / im["file_name"])
            except (ImageReadError, OSError, ValueError) as exc:
                rows.append({**row, "kept": False, "code": "unreadable", "reason": f"unreadable image: {exc}"})
                continue
            if bgr.shape[:2] != mask.shape:
                why = f"image is {bgr.shape[1]}x{bgr.shape[0]}, annotations say {mask.shape[1]}x{mask.shape[0]}"
                rows.append({**row, "kept": False, "code": "size-mismatch", "reason": why})
                continue
            stem = Path(im["file_name"]).stem
            shrink = bgr.shape[0] * bgr.shape[1] > size * size
            small = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            m = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
            (tmp / f"{stem}.jpg").write_bytes(encode_jpeg(small))
            (tmp / "masks" / f"{stem}.png").write_bytes(encode_png(m * 255, binary=True))
            rows.append({**row, "kept": True, "code": code, "reason": why, "foreground": round(float(m.mean()), 4)})
            kept += 1
        common.write_manifest(tmp, rows)
        if not kept:
            raise UserError(f"{annotations}: no image passes the prominent-object rules "
                            f"({common.summarize_skips([r for r in rows if not r['kept']])})")
        info = {"annotations": str(annotations), "images": len(infos), "kept": kept, "size": size,
                "rules": {"supercategories": COCO_SUPERCATEGORIES, "min_object": COCO_MIN_OBJECT,
                          "major_object": COCO_MAJOR_OBJECT, "extra_objects": COCO_EXTRA_OBJECTS,
                          "max_mask": COCO_MAX_MASK}}
        if lmdb:
            pairs = [common.Pair(str(tmp / f"{Path(r['image']).stem}.jpg"),
                                 str(tmp / "masks" / f"{Path(r['image']).stem}.png"), Path(r["image"]).stem)
                     for r in rows if r["kept"]]
            build_lmdbs(pairs, tmp / "lmdb", size=size, val_fraction=val_fraction, seed=seed, quiet=True)
            info["lmdb"] = "lmdb"
        (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return {**info, "out": str(out), "skipped": len(infos) - kept}
