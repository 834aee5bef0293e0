"""`prep ingest`: a user's own folder of sneaker photos on white -> the same layout as `prep sample`.

    OUT/white/{masks/, train_*_lmdb, val_*_lmdb, manifest.json}
    OUT/composite/{train_pairs/, val_pairs/, train_*_lmdb, val_*_lmdb, manifest.json}
    OUT/preview.png  OUT/dataset.json

Backgrounds: a VOCdevkit tree gives an honest split (train composites over VOC's Segmentation `train`
list, val composites over its `val` list); a plain folder or 'builtin' is split 4:1 by file order.
Like every step, OUT appears only when complete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fcnkit.config.paper import DATASET_SIZE, IMAGE_SIZE, VAL_FRACTION
from fcnkit.errors import UserError
from fcnkit.prep import common
from fcnkit.prep.composite import resolve_backgrounds, voc_root
from fcnkit.prep.masks import MaskOptions
from fcnkit.prep.sample import DATASET_JSON, build_two_stage


def split_backgrounds(spec: str | os.PathLike, voc_list: str = "trainval") -> tuple[list[Path], list[Path]]:
    """(train, val) background photos: VOC's own train/val lists, else every 5th file (from the 3rd) for val."""
    path = Path(spec)
    voc = voc_root(path) if str(spec) != "builtin" and path.is_dir() else None
    if voc is not None:
        return resolve_backgrounds(voc, "train"), resolve_backgrounds(voc, "val")
    bgs = resolve_backgrounds(spec, voc_list)
    val = bgs[2::5] if len(bgs) >= 5 else bgs
    return [b for b in bgs if b not in val] or bgs, val


def ingest_folder(
    input_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backgrounds: str = "builtin",
    voc_list: str = "trainval",
    n_composite: int = DATASET_SIZE,
    size: int = IMAGE_SIZE,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    mask_opts: MaskOptions | None = None,
    composite_opts=None,
    workers: int | None = None,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> dict:
    """Masks, white LMDBs, composites and composite LMDBs from the photos under `input_dir`."""
    src, out = Path(input_dir), Path(out)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder (give the folder of your sneaker photos on white)")
    common.refuse_inside(out, [src], "input folder")
    if src.resolve() in out.resolve().parents:
        raise UserError(f"{out}: the output folder must be outside the input folder {src}")
    train_bgs, val_bgs = split_backgrounds(backgrounds, voc_list)
    t0 = time.perf_counter()
    with common.staged_dir(out, marker=DATASET_JSON, force=force, step="ingest") as st:
        r = build_two_stage(
            st,
            out,
            src,
            train_bgs=train_bgs,
            val_bgs=val_bgs,
            n_composite=n_composite,
            size=size,
            seed=seed,
            val_fraction=val_fraction,
            workers=workers,
            quiet=quiet,
            preview=True,
            title=f"prep ingest: {src}",
            mask_opts=mask_opts,
            strict=strict,
            composite_opts=composite_opts,
        )
        r.update(kind="ingest", input=str(src.resolve()), seconds=round(time.perf_counter() - t0, 2))
        (st / DATASET_JSON).write_text(json.dumps(r, indent=1, default=str) + "\n")
    return r
