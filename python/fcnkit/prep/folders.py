"""`prep import`: a dataset of image + mask (or label map) folders -> the layouts the trainers and `evaluate` read.

Source layouts (found under ROOT; the folder names can be given with `images=` / `masks=`):

    ROOT/{train,val,test}/{images,masks}/   split folders as published (portraits, DUTS): kept as they are
    ROOT/{images,masks}/                    one pool (e.g. ROOT/photos + ROOT/labels): split here by seed

Image i pairs with the mask of the same relative path and stem (any extension). Masks are binary, 0/255
or 0/1 (`threshold=T` binarises soft masks: value >= T is foreground), or label maps when a label list is
known (`label_list=FILE`, or ROOT/label_list.txt): then the foreground is what a rule selects
(`foreground="label > 0"` by default; see `parse_rule`), and the box of its extent is recorded.

Output (OUT appears only when complete; replaced as a whole on a rerun):

    OUT/{train,val,test}/<name>.<ext>       the images (copied as they are, or re-encoded when resized)
    OUT/{train,val,test}/masks/<name>.png   0/255 masks of the same size (`evaluate OUT/test` reads this)
    OUT/{train,val,test}/boxes.json         {name: [x, y, w, h]}: the box of each mask's foreground
    OUT/lmdb/{train,val,test}_{image,label}_lmdb, manifest.json   with `lmdb=S` (S x S records)
    OUT/manifest.jsonl                      one row per source image: its split, files, box, or why skipped
    OUT/dataset.json                        written last: counts, source, options

A source without a val split gets one drawn from its train split (`val_fraction`, seeded); a source without
a test split gets one drawn first (`test_fraction`). Bad pairs (no mask, unreadable, a mask of another
size, a non-binary mask, ids missing from the label list) are skipped with their reason in manifest.jsonl;
when more than `max_bad` of them are bad (a wrong folder or a missing option, not a stray file), or with
`strict`, nothing is written and one line names the first bad file and its fix.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fcnkit.config.paper import VAL_FRACTION
from fcnkit.errors import UserError
from fcnkit.io.boxes import BOXES_JSON, box_of, boxes_text
from fcnkit.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTS,
    ImageReadError,
    encode_jpeg,
    encode_png,
    histogram,
    read_bgr,
    read_mask,
)
from fcnkit.prep import common
from fcnkit.prep.lmdb_build import build_lmdbs, split_pairs

MARKER = "dataset.json"  # written last: its presence marks a complete `prep import` folder
FORMAT = "fcnkit-import/1"
SPLIT_NAMES = ("train", "val", "test")
IMAGE_DIRS = ("images", "photos", "imgs", "JPEGImages")
MASK_DIRS = ("masks", "labels", "gt", "SegmentationClass")
LABEL_LIST = "label_list.txt"
DEFAULT_RULE = "label > 0"
TEST_FRACTION = 0.2  # only for a source that has no test split of its own
MAX_BAD = 0.05  # more bad pairs than this is a wrong folder or a missing option, not a stray file


# ----------------------------------------------------------------------------------------- label rules
def read_label_list(path: str | os.PathLike) -> dict[int, str]:
    """{id: name} from a label list: `ID NAME` per line, or one NAME per line (id = line number from 0)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such label list; give the file naming each label id (`ID NAME` per line)")
    labels: dict[int, str] = {}
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        head, _, rest = line.partition(" ")
        if head.isdigit() and rest.strip():
            labels[int(head)] = rest.strip()
        else:
            labels[i] = line
    if not labels:
        raise UserError(f"{path}: empty label list; give one `ID NAME` per line")
    return labels


_RULE = re.compile(r"^\s*label\s*(>=|<=|==|!=|>|<|not\s+in|in)\s*(.+?)\s*$")


def parse_rule(rule: str, labels: dict[int, str]) -> np.ndarray:
    """A 256-entry foreground lookup table from a rule: `label > 0`, `label >= N`, `label != N`,
    `label == N`, `label in 1,2,skin` or `label not in 0,hair` (names from the label list)."""
    m = _RULE.match(rule)
    if not m:
        raise UserError(f"--foreground {rule!r}: write `label > 0`, `label != N`, `label in 1,2,3` or "
                        "`label not in NAME,...` (names from the label list)")
    op, arg = re.sub(r"\s+", " ", m.group(1)), m.group(2)
    ids = np.arange(256)
    if op in ("in", "not in"):
        by_name = {v: k for k, v in labels.items()}
        chosen = []
        for tok in (t.strip() for t in arg.split(",")):
            if tok.isdigit():
                chosen.append(int(tok))
            elif tok in by_name:
                chosen.append(by_name[tok])
            else:
                raise UserError(f"--foreground {rule!r}: {tok!r} is neither an id nor a name in the label list")
        lut = np.isin(ids, chosen)
        return ~lut if op == "not in" else lut
    if not arg.isdigit():
        raise UserError(f"--foreground {rule!r}: `{op}` needs a label id (a whole number)")
    n = int(arg)
    return {">": ids > n, ">=": ids >= n, "<": ids < n, "<=": ids <= n, "==": ids == n, "!=": ids != n}[op]


# ---------------------------------------------------------------------------------------- source layout
@dataclass(frozen=True)
class Source:
    split: str  # train / val / test, or "all" for one pool to split here
    images: Path
    masks: Path


def _pick(folder: Path, given: str | None, names: tuple[str, ...]) -> Path | None:
    if given:
        return folder / given if (folder / given).is_dir() else None
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def find_sources(root: str | os.PathLike, images: str | None = None, masks: str | None = None) -> list[Source]:
    """The (split, images folder, masks folder) triples under ROOT; one line naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such dataset folder")
    splits = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    folders = [(s, root / s) for s in splits] if splits else [("all", root)]
    out = []
    for split, folder in folders:
        im = _pick(folder, images, IMAGE_DIRS)
        if im is None:
            want = images or "/".join(IMAGE_DIRS)
            raise UserError(f"{folder}: no {want} folder of images; pass --images NAME (the folder under "
                            f"{'each split' if splits else 'ROOT'} that holds the photos)")
        mk = _pick(folder, masks, MASK_DIRS)
        if mk is None:
            want = masks or "/".join(MASK_DIRS)
            raise UserError(f"{folder}: {im.name}/ has no {want} folder beside it, and every image needs its mask "
                            "(0/255 PNG of the same name); add the masks or pass --masks NAME")
        out.append(Source(split, im, mk))
    return out


def _key(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def pair_files(src: Source, limit: int | None = None) -> tuple[list[tuple[str, Path, Path | None]], list[Path]]:
    """([(name, image, mask or None)], masks without an image), images in sorted order (first `limit`)."""
    by_key: dict[str, Path] = {}
    for m in common.list_files(src.masks):
        if m.suffix.lower() in IMAGE_EXTS:
            by_key.setdefault(_key(m, src.masks), m)
    imgs = [p for p in common.list_files(src.images) if p.suffix.lower() in IMAGE_EXTS][:limit]
    if not imgs:
        raise UserError(f"{src.images}: no images ({', '.join(sorted(IMAGE_EXTS))}) in this folder")
    pairs = [(_key(p, src.images).replace("/", "__"), p, by_key.get(_key(p, src.images))) for p in imgs]
    used = {_key(p, src.images) for p in imgs}
    orphans = [m for k, m in by_key.items() if k not in used] if limit is None else []
    return pairs, orphans


# ---------------------------------------------------------------------------------------------- worker
_W: dict = {}


def _init(staging: str, lut, threshold: int | None, known_ids, max_side: int | None, max_pixels: int) -> None:
    _W.update(staging=Path(staging), lut=lut, threshold=threshold, known=known_ids, max_side=max_side,
              max_pixels=max_pixels)


def to_foreground(raw: np.ndarray, *, lut: np.ndarray | None, threshold: int | None,
                  known_ids: np.ndarray | None = None) -> np.ndarray:
    """0/1 foreground of a mask file's values; ValueError (with the fix) for a mask that is not binary."""
    present = np.flatnonzero(histogram(raw))
    if lut is not None:
        if known_ids is not None:
            unknown = np.setdiff1d(present, known_ids)
            if unknown.size:
                raise ValueError(f"label map holds ids {unknown[:5].tolist()} missing from the label list: "
                                 "fix the map or add them to the list")
        return lut[raw].astype(np.uint8)
    if set(present.tolist()) <= {0, 255} or set(present.tolist()) <= {0, 1}:
        return (raw > 0).astype(np.uint8)  # binary already (a 0/1 mask too, whatever the threshold)
    if threshold is not None:
        return (raw >= threshold).astype(np.uint8)
    raise ValueError(f"mask is not binary (values {present[:6].tolist()}{' ...' if present.size > 6 else ''}): "
                     "write 0/255 masks, pass --threshold T to binarise soft masks, or --label-list FILE "
                     "if these are label maps")


def _one(task: tuple[str, str, str, str | None]) -> dict:
    split, name, image, mask = task
    row = {"split": split, "name": name, "source": image, "source_mask": mask}
    if mask is None:
        return row | {"status": "skipped", "code": "no-mask", "file": image,
                      "reason": "no mask of the same name: add it (0/255 PNG) or remove the image"}
    try:
        bgr = read_bgr(image, max_pixels=_W["max_pixels"])
    except ImageReadError as exc:
        return row | {"status": "skipped", "code": exc.code, "file": image,
                      "reason": f"unreadable image ({exc.reason}): replace or remove the file"}
    try:
        raw = read_mask(mask, max_pixels=_W["max_pixels"])
    except ImageReadError as exc:
        return row | {"status": "skipped", "code": "unreadable-mask", "file": mask,
                      "reason": f"unreadable mask ({exc.reason}): replace or remove it"}
    if raw.shape != bgr.shape[:2]:
        return row | {"status": "skipped", "code": "size-mismatch", "file": mask,
                      "reason": f"mask is {raw.shape[1]}x{raw.shape[0]} but the image is "
                                f"{bgr.shape[1]}x{bgr.shape[0]}: give a mask of the image's size"}
    try:
        fg = to_foreground(raw, lut=_W["lut"], threshold=_W["threshold"], known_ids=_W["known"])
    except ValueError as exc:
        return row | {"status": "skipped", "code": "bad-mask", "file": mask, "reason": str(exc)}
    h, w = fg.shape
    ms = _W["max_side"]
    resized = bool(ms) and max(h, w) > ms
    if resized:
        s = ms / max(h, w)
        w, h = max(1, round(w * s)), max(1, round(h * s))
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
    ext = Path(image).suffix.lower()
    out_dir = _W["staging"] / split
    if resized or ext not in (".jpg", ".jpeg", ".png"):
        ext = ".png" if ext == ".png" else ".jpg"
        data = encode_png(bgr) if ext == ".png" else encode_jpeg(bgr)
        (out_dir / f"{name}{ext}").write_bytes(data)
    else:
        shutil.copyfile(image, out_dir / f"{name}{ext}")
    (out_dir / "masks" / f"{name}.png").write_bytes(encode_png(fg * 255, binary=True))
    return row | {"status": "ok", "image": f"{split}/{name}{ext}", "mask": f"{split}/masks/{name}.png",
                  "width": w, "height": h, "foreground": round(float(fg.mean()), 4), "box": box_of(fg)}


# ------------------------------------------------------------------------------------------------- run
def _assign_splits(sources: list[Source], named: dict[str, list], val_fraction: float,
                   test_fraction: float | None, seed: int) -> dict[str, list]:
    """split -> [(name, image, mask)]: the source's own splits, test then val drawn where it has none."""
    have = {s.split for s in sources}
    if "all" in have:
        pool = named["all"]
        tf = TEST_FRACTION if test_fraction is None else test_fraction
        cut = split_pairs(pool, tf, seed) if tf > 0 else {"val": [], "train": pool}
        out = {"test": cut["val"], "train": cut["train"]}
    else:
        if test_fraction is not None and "test" in have:
            raise UserError(f"--test-fraction: {sources[0].images.parent.parent} has its own test split; drop "
                            "--test-fraction")
        out = {s: named[s] for s in SPLIT_NAMES if s in named}
        if "test" not in out and test_fraction:
            cut = split_pairs(out["train"], test_fraction, seed)
            out.update(test=cut["val"], train=cut["train"])
    if "val" not in out:
        cut = split_pairs(out["train"], val_fraction, seed + 1) if val_fraction > 0 else {"val": [],
                                                                                        "train": out["train"]}
        out.update(val=cut["val"], train=cut["train"])
    if not out.get("train"):
        raise UserError("no train images left after drawing val/test; lower --val-fraction / --test-fraction")
    return {s: out[s] for s in SPLIT_NAMES if out.get(s)}


def import_folder(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    images: str | None = None,
    masks: str | None = None,
    label_list: str | os.PathLike | None = None,
    foreground: str | None = None,
    threshold: int | None = None,
    max_side: int | None = None,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float | None = None,
    seed: int = 0,
    limit: int | None = None,
    lmdb: int | None = None,
    max_bad: float = MAX_BAD,
    strict: bool = False,
    workers: int | None = None,
    force: bool = False,
    quiet: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict:
    """Validate and import ROOT's image/mask pairs into OUT (see the module doc); returns dataset.json's dict."""
    t0 = time.perf_counter()
    root, out = Path(root), Path(out)
    sources = find_sources(root, images, masks)
    common.refuse_inside(out, [root], "dataset folder")
    if root.resolve() in out.resolve().parents:
        raise UserError(f"{out}: the output folder must be outside the dataset folder {root}")
    if threshold is not None and not 1 <= threshold <= 255:
        raise UserError(f"--threshold {threshold}: must be 1..255 (mask value >= T is foreground)")
    if max_side is not None and max_side < 8:
        raise UserError(f"--max-side {max_side}: too small (at least 8)")
    if not 0 <= max_bad <= 1:
        raise UserError(f"--max-bad {max_bad}: must be a fraction between 0 and 1")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    for flag, v in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if v is not None and not 0 <= v < 1:
            raise UserError(f"{flag} {v}: must be a fraction in [0, 1)")
    if label_list is None and (root / LABEL_LIST).is_file():
        label_list = root / LABEL_LIST
    lut = known = labels = None
    if label_list is not None or foreground is not None:
        if label_list is None:
            raise UserError(f"{sources[0].masks}: label maps need their label list to say what each id means; "
                            f"no {LABEL_LIST} in {root}: pass --label-list FILE")
        if threshold is not None:
            raise UserError("--threshold is for soft masks; label maps take --foreground RULE instead")
        labels = read_label_list(label_list)
        lut = parse_rule(foreground or DEFAULT_RULE, labels)
        known = np.array(sorted(labels), np.int64)
    named: dict[str, list] = {}
    orphans: list[Path] = []
    for src in sources:
        pairs, extra = pair_files(src, limit)
        named[src.split] = pairs
        orphans += extra
    splits = _assign_splits(sources, named, val_fraction, test_fraction, seed)
    tasks = [(s, name, str(img), str(m) if m else None) for s, items in splits.items() for name, img, m in items]
    with common.staged_dir(out, marker=MARKER, force=force, step="import") as st:
        for s in splits:
            (st / s / "masks").mkdir(parents=True)
        rows = list(common.parallel_map(_one, tasks, workers=workers, desc="prep import", quiet=quiet,
                                        initializer=_init,
                                        initargs=(str(st), lut, threshold, known, max_side, max_pixels)))
        bad = [r for r in rows if r["status"] != "ok"]
        if bad and (strict or len(bad) > max_bad * len(rows) or len(bad) == len(rows)):
            first = min(bad, key=lambda r: r["file"])
            raise UserError(f"{first['file']}: {first['reason']}"
                            + (f" ({len(bad) - 1} more of {len(rows)} pairs unusable: "
                               f"{common.summarize_skips(bad)})" if len(bad) > 1 else "")
                            + ("; --strict refuses any" if strict and len(bad) <= max_bad * len(rows) else ""))
        counts = {}
        for s in splits:
            ok = [r for r in rows if r["split"] == s and r["status"] == "ok"]
            if not ok:
                raise UserError(f"the {s} split would be empty: all its pairs were skipped "
                                f"({common.first_reasons([r for r in rows if r['split'] == s], 2)})")
            (st / s / BOXES_JSON).write_text(boxes_text({r["name"]: r["box"] for r in ok}))
            counts[s] = len(ok)
        common.write_manifest(st, rows + [{"status": "skipped", "code": "no-image", "source_mask": str(m),
                                           "reason": "a mask without an image (ignored)"} for m in orphans])
        info = {
            "format": FORMAT,
            "source": str(root.resolve()),
            "layout": "given splits" if sources[0].split != "all" else "one pool, split here",
            "splits": counts,
            "skipped": len(bad),
            "skipped_by_reason": common.summarize_skips(bad),
            "orphan_masks": len(orphans),
            "masks": ("label maps: " + (foreground or DEFAULT_RULE) + f" ({label_list})") if lut is not None
            else (f"soft, >= {threshold}" if threshold is not None else "binary"),
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "seed": seed,
            "limit": limit,
            "max_side": max_side,
            "lmdb": None,
        }
        if lmdb:
            ok = {s: [common.Pair(str(st / r["image"]), str(st / r["mask"]), r["name"]) for r in rows
                      if r["split"] == s and r["status"] == "ok"] for s in splits}
            build_lmdbs(ok["train"], st / "lmdb", size=lmdb, seed=seed, workers=workers, quiet=quiet,
                        val_pairs=ok.get("val", []), test_pairs=ok.get("test"), sources=[str(root)],
                        mask_format="binary", max_pixels=max_pixels)
            info["lmdb"] = {"dir": "lmdb", "size": lmdb}
        info["seconds"] = round(time.perf_counter() - t0, 2)
        (st / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return {**info, "out": str(out)}
