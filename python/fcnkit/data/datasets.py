"""Evaluation data: images with their true labels, from an LMDB pair or a photo folder + mask folder.

DATA is a dataset directory holding {split}_image_lmdb/{split}_label_lmdb (what `prep lmdb` and
`make demo` write), an image LMDB whose label LMDB is its sibling (`*image*` -> `*label*`), or a folder of
photos with masks in DATA/masks (or `masks=`), paired by file stem.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnkit.errors import UserError
from fcnkit.io.images import IMAGE_EXTS, ImageReadError, mask_to_label, read_bgr, read_mask
from fcnkit.io.lmdb_io import REBUILD, check_lmdb, decode_datum, read_lmdb


@dataclass
class Sample:
    name: str
    bgr: np.ndarray  # (H, W, 3) uint8
    label: np.ndarray  # (H, W) uint8, 0/1/255


def _lmdb_pair(data: Path, split: str) -> tuple[Path, Path] | None:
    if (data / f"{split}_image_lmdb" / "data.mdb").is_file():
        return data / f"{split}_image_lmdb", data / f"{split}_label_lmdb"
    if (data / "data.mdb").is_file() and "image" in data.name:
        return data, data.with_name(data.name.replace("image", "label"))
    return None


def load_samples(data: str | Path, *, split: str = "val", masks: str | Path | None = None,
                 limit: int | None = None) -> list[Sample]:
    """Images and labels from an LMDB pair or a photo folder + mask folder (see the module doc)."""
    data = Path(data)
    if not data.exists():
        raise UserError(f"{data}: no such dataset directory")
    pair = _lmdb_pair(data, split)
    out: list[Sample] = []
    if pair is not None:
        if not (pair[1] / "data.mdb").is_file():
            raise UserError(f"{pair[1]}: label LMDB missing next to {pair[0]}")
        n_img, n_lab = check_lmdb(pair[0]).entries, check_lmdb(pair[1]).entries
        if n_img == 0:
            raise UserError(f"{pair[0]}: the LMDB holds no records, nothing to evaluate; {REBUILD}")
        if n_img != n_lab:
            raise UserError(f"{pair[0]} has {n_img} records but {pair[1]} has {n_lab}; {REBUILD}")
        for (k1, v1), (k2, v2) in zip(read_lmdb(pair[0]), read_lmdb(pair[1]), strict=False):
            if k1 != k2:
                raise UserError(f"{pair[0]} and {pair[1]} disagree on keys ({k1!r} vs {k2!r})")
            try:
                img, lab = decode_datum(v1)[0], decode_datum(v2)[0]
            except ValueError as exc:
                raise UserError(f"{pair[0]}: record {k1!r} is corrupt ({exc}); {REBUILD}") from None
            if img.shape[1:] != lab.shape[1:]:
                raise UserError(f"{pair[0]}: record {k1!r} is {img.shape[1]}x{img.shape[2]} but its label is "
                                f"{lab.shape[1]}x{lab.shape[2]}; {REBUILD}")
            out.append(Sample(k1.decode(errors="replace"), img.transpose(1, 2, 0), lab[0]))
            if limit and len(out) >= limit:
                break
        return out

    mask_dir = Path(masks) if masks else data / "masks"
    if not mask_dir.is_dir():
        raise UserError(f"{data}: neither an LMDB dataset ({split}_image_lmdb) nor a photo folder with "
                        f"{mask_dir}; pass --masks DIR")
    by_stem = {p.stem: p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    photos = sorted(q for q in data.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
    unmasked = [p.name for p in photos if p.stem not in by_stem]
    if unmasked and len(unmasked) < len(photos):  # never silently: say how many are not scored
        some = ", ".join(unmasked[:3]) + (", ..." if len(unmasked) > 3 else "")
        print(f"evaluate: note: {len(unmasked)} of {len(photos)} photos in {data} have no mask of the same stem "
              f"in {mask_dir} ({some}); they are left out of every score", file=sys.stderr)
    for p in photos:
        if p.stem not in by_stem:
            continue
        try:
            bgr, label = read_bgr(p), mask_to_label(read_mask(by_stem[p.stem]))
        except (ImageReadError, ValueError) as exc:
            print(f"evaluate: skipping {p.name}: {exc}", file=sys.stderr)
            continue
        if bgr.shape[:2] != label.shape:
            print(f"evaluate: skipping {p.name}: image {bgr.shape[:2]} and mask {label.shape} sizes differ",
                  file=sys.stderr)
            continue
        out.append(Sample(p.name, bgr, label))
        if limit and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{data}: no photo has a mask of the same stem in {mask_dir}")
    return out
