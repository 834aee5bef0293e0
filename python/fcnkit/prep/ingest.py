"""`prep ingest`: a user's own folder of sneaker photos on white -> the same layout as `prep sample`.

    OUT/white/{masks/, train_*_lmdb, val_*_lmdb [, test_*_lmdb], manifest.json}
    OUT/composite/{train_pairs/, val_pairs/ [, test_pairs/], train_*_lmdb, val_*_lmdb [, test_*_lmdb], manifest.json}
    OUT/preview.png  OUT/dataset.json

Backgrounds: a VOCdevkit tree gives an honest split (train composites over VOC's Segmentation `train`
list, val composites over its `val` list); a folder with train/ val/ test/ subfolders (BSDS500's layout)
gives each split its own scenes; any other folder or 'builtin' is split 4:1 by file order.
With `test_fraction`, that share of the photos is held out (white test split, never trained or validated
on) and pasted over the test scenes only (the test/ subfolder, or `test_backgrounds`).
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

SCENE_SPLITS = ("train", "val", "test")


def split_backgrounds(spec: str | os.PathLike, voc_list: str = "trainval"
                      ) -> tuple[list[Path], list[Path], list[Path] | None]:
    """(train, val, test or None) background photos: VOC's own train/val lists; a folder's train/ val/ test/
    subfolders (BSDS500); else every 5th file (from the 3rd) for val and no test scenes."""
    path = Path(spec)
    voc = voc_root(path) if str(spec) != "builtin" and path.is_dir() else None
    if voc is not None:
        return resolve_backgrounds(voc, "train"), resolve_backgrounds(voc, "val"), None
    if str(spec) != "builtin" and all((path / s).is_dir() for s in SCENE_SPLITS):
        return tuple(resolve_backgrounds(path / s) for s in SCENE_SPLITS)
    bgs = resolve_backgrounds(spec, voc_list)
    val = bgs[2::5] if len(bgs) >= 5 else bgs
    return [b for b in bgs if b not in val] or bgs, val, None


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
    test_fraction: float = 0.0,
    test_backgrounds: str | os.PathLike | None = None,
    limit: int | None = None,
    workers: int | None = None,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> dict:
    """Masks, white LMDBs, composites and composite LMDBs from the photos under `input_dir` (the first
    `limit`), with a held-out test split of photos and scenes when `test_fraction` > 0."""
    src, out = Path(input_dir), Path(out)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder (give the folder of your sneaker photos on white)")
    common.refuse_inside(out, [src], "input folder")
    if src.resolve() in out.resolve().parents:
        raise UserError(f"{out}: the output folder must be outside the input folder {src}")
    train_bgs, val_bgs, test_bgs = split_backgrounds(backgrounds, voc_list)
    if test_backgrounds is not None:
        test_bgs = resolve_backgrounds(test_backgrounds)
        seen = set(map(os.path.realpath, train_bgs + val_bgs)) & set(map(os.path.realpath, test_bgs))
        if seen:
            raise UserError(f"{test_backgrounds}: {len(seen)} test scenes are also train/val backgrounds (e.g. "
                            f"{sorted(seen)[0]}); give test scenes used nowhere else")
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
            test_fraction=test_fraction,
            test_bgs=test_bgs if test_fraction else None,
            limit=limit,
        )
        r.update(kind="ingest", input=str(src.resolve()), seconds=round(time.perf_counter() - t0, 2))
        (st / DATASET_JSON).write_text(json.dumps(r, indent=1, default=str) + "\n")
    return r
