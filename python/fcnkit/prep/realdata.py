"""`prep real SRC --out OUT`: every real-photo dataset under SRC imported the one way the project uses it.

SRC holds the layouts of `../shared/realdata` (or of `prep fetch NAME --dest SRC`); each set found is
prepared under OUT by the step that owns its layout, with the options below (one place, so the benchmark,
the README and a user's run agree):

    OUT/shoes/      prep ingest  sneakers_white/photos, near-white masks, 10 % of the shoes held out as test;
                                 composites over scenes_bsds500 (or bsds500): train/val/test scenes kept apart
                                 -> white/{train,val,test}_*_lmdb, composite/{train,val,test}_*_lmdb
    OUT/portraits/  prep import  portraits_shen (or portraits): official train/test lists, val from train
    OUT/duts/       prep import  duts: DUTS-TR -> train/val, DUTS-TE -> test (soft masks thresholded at 128)
    OUT/fashion/    prep import  fashion_ccp (or ccp): person = label > 0 and its box; 20 % test
    OUT/coco/       prep coco    coco_val2017_subset: ExtractNet's prominent person/vehicle rules
    OUT/real.json   what was prepared from where, with which options (written last)

A set already prepared with the same source and options is kept (`force` rebuilds it); `limit` takes the
first N images of each source split (trials and tests).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fcnkit.config.paper import IMAGE_SIZE
from fcnkit.errors import UserError
from fcnkit.io.atomic import write_text_atomic
from fcnkit.prep.coco import MARKER as COCO_MARKER
from fcnkit.prep.coco import run_coco
from fcnkit.prep.folders import MARKER as IMPORT_MARKER
from fcnkit.prep.folders import import_folder
from fcnkit.prep.ingest import ingest_folder
from fcnkit.prep.sample import DATASET_JSON

REAL_JSON = "real.json"
SHOE_TEST_FRACTION = 0.1
DUTS_THRESHOLD = 128  # DUTS's published masks have soft edges: foreground from half up
SETS = ("shoes", "portraits", "duts", "fashion", "coco")
SOURCES = {  # set -> the folder names it may have under SRC (the shared copy's first, then `prep fetch`'s)
    "shoes": ("sneakers_white/photos",),
    "scenes": ("scenes_bsds500", "bsds500"),
    "portraits": ("portraits_shen", "portraits"),
    "duts": ("duts",),
    "fashion": ("fashion_ccp", "ccp"),
    "coco": ("coco_val2017_subset",),
}
MARKERS = {"shoes": DATASET_JSON, "portraits": IMPORT_MARKER, "duts": IMPORT_MARKER, "fashion": IMPORT_MARKER,
           "coco": COCO_MARKER}


def find_source(src: Path, name: str) -> Path | None:
    return next((src / c for c in SOURCES[name] if (src / c).is_dir()), None)


def _coco_files(root: Path) -> tuple[Path, Path]:
    anns = sorted((root / "annotations").glob("instances_*.json"))
    if not anns or not (root / "images").is_dir():
        raise UserError(f"{root}: expected annotations/instances_*.json and images/; give the COCO subset folder")
    return anns[0], root / "images"


def prepare_real(src: str | os.PathLike, out: str | os.PathLike, *, only: list[str] | None = None,
                 limit: int | None = None, size: int = IMAGE_SIZE, lmdb: int | None = None, seed: int = 0,
                 workers: int | None = None, force: bool = False, quiet: bool = False, log=print) -> dict:
    """Prepare every set found under SRC into OUT (see the module doc); returns real.json's dict."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder; give the folder holding the real-photo datasets "
                        "(../shared/realdata, or the --dest of `prep fetch`)")
    unknown = sorted(set(only or ()) - set(SETS))
    if unknown:
        raise UserError(f"--only {unknown[0]}: choose from {', '.join(SETS)}")
    wanted = list(only or SETS)
    found = {name: find_source(src, name) for name in wanted}
    if not any(found.values()):
        raise UserError(f"{src}: none of the real-photo datasets is here (looked for "
                        f"{', '.join(c for n in wanted for c in SOURCES[n])})")
    old = {}
    if (out / REAL_JSON).is_file():
        try:
            old = json.loads((out / REAL_JSON).read_text()).get("sets", {})
        except (ValueError, AttributeError):
            old = {}
    sets = {}
    for name in wanted:
        root = found[name]
        if root is None:
            log(f"prep real: {name}: no {' or '.join(SOURCES[name])} under {src}; skipped")
            continue
        opts = {"source": str(root.resolve()), "limit": limit, "size": size, "lmdb": lmdb, "seed": seed}
        dest = out / name
        if name == "shoes":
            scenes = find_source(src, "scenes")
            if scenes is None:
                log(f"prep real: shoes: no {' or '.join(SOURCES['scenes'])} under {src} for the composites; skipped")
                continue
            opts["scenes"] = str(scenes.resolve())
        if not force and old.get(name, {}).get("options") == opts and (dest / MARKERS[name]).is_file():
            sets[name] = old[name] | {"reused": True}
            log(f"prep real: {name}: kept {dest} (same source and options)")
            continue
        t0 = time.perf_counter()
        shared = {"seed": seed, "workers": workers, "force": force, "quiet": quiet}
        if name == "shoes":
            n_photos = sum(1 for _ in root.iterdir())
            r = ingest_folder(root, dest, backgrounds=opts["scenes"], n_composite=min(limit or n_photos, n_photos),
                              size=size, test_fraction=SHOE_TEST_FRACTION, limit=limit, **shared)
            counts = {k: {s: r[k][s]["count"] for s in ("train", "val", "test") if s in r[k]}
                      for k in ("white", "composite") if k in r}
        elif name == "coco":
            anns, images = _coco_files(root)
            r = run_coco(anns, images, dest, size=size, limit=limit, lmdb=True, seed=seed, force=force, quiet=quiet)
            counts = {"kept": r["kept"], "images": r["images"]}
        else:
            r = import_folder(root, dest, threshold=DUTS_THRESHOLD if name == "duts" else None, limit=limit, lmdb=lmdb,
                              **shared)
            counts = r["splits"]
        sets[name] = {"out": str(dest), "options": opts, "counts": counts,
                      "seconds": round(time.perf_counter() - t0, 1)}
        log(f"prep real: {name}: {counts} -> {dest} ({sets[name]['seconds']} s)")
    out.mkdir(parents=True, exist_ok=True)
    info = {"source": str(src.resolve()), "sets": {**{k: v for k, v in old.items() if k not in sets}, **sets}}
    write_text_atomic(out / REAL_JSON, json.dumps(info, indent=1) + "\n")
    return info
