"""`prep STEP ...`: data preparation for the sneaker FCNs (thin wrapper over fcnkit.prep).

    prep sample   [--out data/sample] [--n-white 600] [--n-composite 600] [--size 224]
    prep masks    PHOTOS_DIR OUT_DIR [--tolerance 20] [--no-fill-holes] [--keep-components 2] ...
    prep composite OBJECTS_DIR... --backgrounds builtin|VOCdevkit|DIR --out OUT_DIR -n 4500 [--seed 0]
    prep lmdb     PAIRS_DIR... --out LMDB_DIR [--size 224] [--val-fraction 0.1] [--verify]
    prep lmdb     --verify --out LMDB_DIR
    prep fetch    voc2012 --dest data/voc  |  prep fetch coco2014 --dest data/coco
    prep fetch    duts|bsds500|portraits|ccp [--dest data/real]   (then `prep import` / `prep ingest`)
    prep coco     ANNOTATIONS.json IMAGES_DIR --out data/coco/train [--lmdb] [--limit N]
    prep ingest   SNEAKERS_DIR --out data/mine [--backgrounds data/voc/VOCdevkit/VOC2012 | BSDS500_DIR]
                  [--test-fraction 0.1 [--test-backgrounds DIR]] [--limit N]
    prep import   ROOT --out OUT [--images NAME --masks NAME] [--label-list FILE --foreground 'label > 0']
                  [--threshold T] [--max-side N] [--lmdb [S]] [--limit N]
    prep real     ../shared/realdata --out data/real_prepared [--only SET...] [--limit N]   (all of the above)

Bad inputs are skipped with their reason in the step's manifest; the exit status is 2 when nothing
usable remains (or, with --strict, when anything was skipped), 130 / 143 when interrupted (Ctrl-C /
SIGTERM). Outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path

from fcnkit.cli import Parser
from fcnkit.cli.args import count, number
from fcnkit.config.paper import IMAGE_SIZE
from fcnkit.errors import UserError, cli_entry
from fcnkit.prep import common
from fcnkit.prep.coco import run_coco
from fcnkit.prep.composite import CompositeOptions, resolve_backgrounds, run_composite
from fcnkit.prep.fetch import DATASETS, REAL, fetch
from fcnkit.prep.folders import import_folder
from fcnkit.prep.ingest import ingest_folder
from fcnkit.prep.lmdb_build import build_lmdbs, verify_lmdbs
from fcnkit.prep.masks import MaskOptions, run_masks
from fcnkit.prep.realdata import SETS, prepare_real
from fcnkit.prep.sample import build_sample_dataset


def default(of, name: str):
    """The default of an option: a field of an options dataclass, or a keyword parameter of a function."""
    if dataclasses.is_dataclass(of):
        return next(f.default for f in dataclasses.fields(of) if f.name == name)
    return inspect.signature(of).parameters[name].default


# ------------------------------------------------------------------------------------- shared options
def _add_common(p: argparse.ArgumentParser, *, force: bool = True) -> None:
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--max-pixels", type=int, default=default(MaskOptions, "max_pixels"),
                   help="refuse images with more pixels than this (decompression-bomb guard; default %(default)s)")
    if force:
        p.add_argument("--force", action="store_true", help="replace an existing output folder not made by prep")


def _add_mask_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mask rule (paper: near-white -> 0, anything else -> 1)")
    g.add_argument("--tolerance", type=int, default=default(MaskOptions, "tolerance"),
                   help="background = every channel >= 255 - TOL (default %(default)s)")
    g.add_argument("--no-fill-holes", action="store_true",
                   help="keep enclosed white regions as background (default: fill them, so white sneakers stay whole)")
    g.add_argument("--min-component", type=float, default=default(MaskOptions, "min_component"),
                   help="drop blobs smaller than this fraction of the image (specks; default %(default)s)")
    g.add_argument("--keep-components", type=int, default=default(MaskOptions, "keep_components"),
                   help="keep the N largest blobs (2: a pair of shoes; 0: all; default %(default)s)")
    g.add_argument("--no-alpha", action="store_true", help="ignore alpha channels and use the white rule")
    g.add_argument("--min-fg", type=float, default=default(MaskOptions, "min_fg"),
                   help="skip as all-white below this (default %(default)s)")
    g.add_argument("--max-fg", type=float, default=default(MaskOptions, "max_fg"),
                   help="skip as 'no white background' above this (default %(default)s)")
    g.add_argument("--min-border-white", type=float, default=default(MaskOptions, "min_border_white"),
                   help="skip when less of the image border is near-white (default %(default)s)")
    p.add_argument("--strict", action="store_true", help="fail (write nothing) if any input is unusable")


def _mask_opts(a) -> MaskOptions:
    return MaskOptions(tolerance=a.tolerance, fill_holes=not a.no_fill_holes, min_component=a.min_component,
                       keep_components=a.keep_components, use_alpha=not a.no_alpha, min_fg=a.min_fg,
                       max_fg=a.max_fg, min_border_white=a.min_border_white, max_pixels=a.max_pixels)


def _add_composite_options(p: argparse.ArgumentParser, *, n_default: int | None) -> None:
    g = p.add_argument_group("compositing")
    g.add_argument("--backgrounds", default="builtin",
                   help="VOCdevkit[/VOC2012] (its ImageSets/Segmentation list), a folder of photos, or 'builtin' "
                   "(the photos scikit-image ships; default)")
    g.add_argument("--voc-list", default="trainval", help="VOC list to draw backgrounds from (default %(default)s)")
    if n_default is None:
        g.add_argument("-n", "--count", type=int, required=True, help="number of composites")
    else:
        g.add_argument("-n", "--n-composite", dest="count", type=int, default=n_default,
                       help="number of composites (default %(default)s)")
    g.add_argument("--scale-min", type=float, default=default(CompositeOptions, "scale_min"),
                   help="object long side / frame, min (default %(default)s)")
    g.add_argument("--scale-max", type=float, default=default(CompositeOptions, "scale_max"),
                   help="object long side / frame, max (default %(default)s)")
    g.add_argument("--max-outside", type=float, default=default(CompositeOptions, "max_outside"),
                   help="fraction of the object's width/height allowed past the frame edge (default %(default)s)")
    g.add_argument("--feather", type=float, default=default(CompositeOptions, "feather"),
                   help="inward edge blend, px sigma; 0 = hard (default %(default)s)")
    g.add_argument("--no-flip", action="store_true", help="no random mirroring")
    g.add_argument("--max-objects", type=int, default=default(CompositeOptions, "max_objects"),
                   help="sneakers per composite, 1..N (default %(default)s)")
    g.add_argument("--ext", choices=("jpg", "png"), default=default(CompositeOptions, "ext"),
                   help="composite image format (default jpg q95)")


def _comp_opts(a, size: int) -> CompositeOptions:
    return CompositeOptions(size=size, scale_min=a.scale_min, scale_max=a.scale_max, max_outside=a.max_outside,
                            feather=a.feather, flip=not a.no_flip, max_objects=a.max_objects, ext=a.ext,
                            max_pixels=a.max_pixels)


def _pairs(sources: list[str], images: str | None, masks: str | None):
    if bool(images) != bool(masks):
        raise UserError("--images and --masks go together (IMAGES/x.jpg pairs with MASKS/x.png)")
    pairs = []
    for s in sources:
        pairs += common.pairs_from_manifest(s)
    if images:
        pairs += common.pairs_from_folders(images, masks)
    return pairs


# ----------------------------------------------------------------------------------- one step each
# name -> (help, add its arguments, run it)
STEPS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def step(name: str, help_line: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the handler of `prep NAME` with its help line and its arguments."""

    def deco(run: Callable[[argparse.Namespace], int]):
        STEPS[name] = (help_line, arguments, run)
        return run

    return deco


def _sample_args(p):
    p.add_argument("--out", default="data/sample", help="dataset root (default %(default)s)")
    p.add_argument("--n-white", type=int, default=default(build_sample_dataset, "n_white"),
                   help="white-background photos (default %(default)s)")
    p.add_argument("--n-composite", type=int, default=default(build_sample_dataset, "n_composite"),
                   help="composites (default %(default)s)")
    size = default(build_sample_dataset, "size")
    p.add_argument("--size", type=count(1, 4096), default=size, help=f"image side in the LMDBs (paper: {size})")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=default(build_sample_dataset, "seed"))
    p.add_argument("--val-fraction", type=float, default=default(build_sample_dataset, "val_fraction"))
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--force", action="store_true")


@step("sample", "build the embedded default dataset (seconds, no download)", _sample_args)
def _sample(a) -> int:
    r = build_sample_dataset(a.out, n_white=a.n_white, n_composite=a.n_composite, size=a.size, seed=a.seed,
                             workers=a.workers, val_fraction=a.val_fraction, force=a.force, quiet=a.quiet)
    w, c = r["white"], r.get("composite")
    print(f"prep sample: {a.out}: white {w['train']['count']}+{w['val']['count']} (train+val)"
          + (f", composite {c['train']['count']}+{c['val']['count']}" if c else "")
          + f", {r['size']}x{r['size']}, rule-vs-render IoU {r['rule_vs_render_iou']['mean']:.3f}, "
          f"{r['seconds']:.1f} s; preview {r.get('preview')}")
    return 0


def _masks_args(p):
    p.add_argument("input", help="folder of product photos on white (searched recursively)")
    p.add_argument("out", help="output folder: masks/*.png, manifest.jsonl, preview.png")
    _add_mask_options(p)
    p.add_argument("--no-preview", action="store_true")
    _add_common(p)


@step("masks", "PHOTOS_DIR -> OUT_DIR: masks by the white-background rule", _masks_args)
def _masks(a) -> int:
    r = run_masks(a.input, a.out, _mask_opts(a), workers=a.workers, strict=a.strict, force=a.force,
                  preview=not a.no_preview, quiet=a.quiet)
    print(f"prep masks: {r['ok']} masks written to {a.out}, {r['skipped']} skipped"
          + (f" ({r['skipped_by_reason']}; reasons in {Path(a.out) / 'manifest.jsonl'})" if r["skipped"] else "")
          + (f"; preview {r['preview']}" if r.get("preview") else ""))
    return 0


def _composite_args(p):
    p.add_argument("objects", nargs="*", help="folders written by `prep masks` (image/mask pairs)")
    p.add_argument("--images", help="objects as IMAGES/x.* with MASKS/x.png instead of a prep folder")
    p.add_argument("--masks")
    p.add_argument("--out", required=True, help="output folder: images/, masks/, manifest.jsonl, preview.png")
    p.add_argument("--size", type=count(1, 4096), default=default(CompositeOptions, "size"),
                   help="composite side (default %(default)s)")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0, help="same seed -> byte-identical composites")
    _add_composite_options(p, n_default=None)
    p.add_argument("--no-preview", action="store_true")
    _add_common(p)


@step("composite", "paste masked sneakers onto scenes", _composite_args)
def _composite(a) -> int:
    objects = _pairs(a.objects, a.images, a.masks)
    if not objects:
        raise UserError("no objects: give folders written by `prep masks`, or --images DIR --masks DIR")
    bgs = resolve_backgrounds(a.backgrounds, a.voc_list)
    r = run_composite(objects, bgs, a.out, a.count, opts=_comp_opts(a, a.size), seed=a.seed, workers=a.workers,
                      force=a.force, preview=not a.no_preview, quiet=a.quiet)
    print(f"prep composite: {r['ok']} composites of {r['objects']} objects over {r['backgrounds']} backgrounds "
          f"in {a.out}" + (f", {r['skipped']} failed" if r["skipped"] else "")
          + (f"; unusable inputs: {len(r['unusable_inputs'])}" if r["unusable_inputs"] else "")
          + (f"; preview {r['preview']}" if r.get("preview") else ""))
    return 0


def _lmdb_args(p):
    p.add_argument("sources", nargs="*", help="folders written by `prep masks` / `prep composite`")
    p.add_argument("--images", help="pairs as IMAGES/x.* with MASKS/x.png instead of a prep folder")
    p.add_argument("--masks")
    p.add_argument("--val-source", action="append", default=[],
                   help="a folder whose pairs form the val split as given (then SOURCES are all train)")
    p.add_argument("--out", required=True, help="writes {train,val}_{image,label}_lmdb and manifest.json here")
    size = default(build_lmdbs, "size")
    p.add_argument("--size", type=count(1, 4096), default=size, help=f"S: records are 3xSxS / 1xSxS (paper: {size})")
    p.add_argument("--val-fraction", type=float, default=default(build_lmdbs, "val_fraction"))
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=default(build_lmdbs, "seed"),
                   help="seed of the shuffle that splits train/val")
    p.add_argument("--fit", choices=("stretch", "pad"), default=default(build_lmdbs, "fit"),
                   help="non-square images: stretch (as Caffe's convert_imageset) or pad with white")
    p.add_argument("--mask-format", choices=("auto", "binary", "ids"), default=default(build_lmdbs, "mask_format"),
                   help="binary: >=128 is sneaker; ids: 0/1/255 class ids; auto: ids if a 1 occurs")
    p.add_argument("--verify", action="store_true",
                   help="re-read the LMDBs and check counts, shapes, keys, labels (alone: verify --out only)")
    p.add_argument("--strict", action="store_true", help="fail (write nothing) if any pair is unusable")
    _add_common(p, force=False)


@step("lmdb", "image/mask pairs -> paired Caffe LMDBs (train/val, image/label)", _lmdb_args)
def _lmdb(a) -> int:
    build = bool(a.sources or a.images or a.val_source)
    if not build and not a.verify:
        raise UserError("give SOURCE folders (or --images/--masks) to build, or --verify to check --out")
    if build:
        pairs = _pairs(a.sources, a.images, a.masks)
        val = [p for s in a.val_source for p in common.pairs_from_manifest(s)] if a.val_source else None
        m = build_lmdbs(pairs, a.out, size=a.size, val_fraction=a.val_fraction, seed=a.seed, fit=a.fit,
                        mask_format=a.mask_format, workers=a.workers, strict=a.strict, quiet=a.quiet,
                        sources=[str(s) for s in a.sources + a.val_source] + ([a.images] if a.images else []),
                        max_pixels=a.max_pixels, val_pairs=val)
        sk = m["skipped"]
        print(f"prep lmdb: {a.out}: train {m['splits']['train']['count']}, val {m['splits']['val']['count']} "
              f"records at {m['size']}x{m['size']} in {m['seconds']:.1f} s"
              + (f"; {len(sk)} pairs skipped ({common.summarize_skips(sk)}), listed in manifest.json" if sk else ""))
    if a.verify:
        rep = verify_lmdbs(a.out, quiet=a.quiet)
        print("prep lmdb --verify: OK: " + ", ".join(
            f"{s} {v['count']} pairs ({v['sneaker_fraction']:.1%} sneaker pixels)" for s, v in rep.items()))
    return 0


def _fetch_args(p):
    p.add_argument("dataset", choices=(*DATASETS, *REAL))
    p.add_argument("--dest", help="extracts DEST/VOCdevkit (default data/voc) or DEST/{annotations,train2014,"
                   "val2014} (default data/coco); the real-photo sets go to DEST/NAME (default data/real)")
    p.add_argument("--url", help="a mirror (voc2012: also give --md5 or --sha256; coco2014, duts: a folder URL)")
    p.add_argument("--md5")
    p.add_argument("--sha256")
    p.add_argument("--delete-archive", action="store_true", help="remove the .tar after extracting")
    p.add_argument("--quiet", action="store_true")


@step("fetch", "download + checksum + extract a public dataset (voc2012, coco2014, duts, bsds500, portraits, ccp)",
      _fetch_args)
def _fetch(a) -> int:
    if a.md5 and a.sha256:
        raise UserError("give --md5 or --sha256, not both")
    algo, digest = ("md5", a.md5) if a.md5 else ("sha256", a.sha256) if a.sha256 else (None, None)
    dest = a.dest or {"voc2012": "data/voc", "coco2014": "data/coco"}.get(a.dataset, "data/real")
    r = fetch(a.dataset, dest, url=a.url, algo=algo, digest=digest, keep_archive=not a.delete_archive,
              quiet=a.quiet)
    print(f"prep fetch: {a.dataset}: {r['status']}: {r['root']}"
          + "".join(f"; {name} sha256 {h}" for name, h in r.get("sha256", {}).items())
          + (f"; {r['note']}" if r.get("note") else ""))
    return 0


def _coco_args(p):
    p.add_argument("annotations", help="instances_train2014.json or instances_val2014.json")
    p.add_argument("images", help="the folder of its images (e.g. data/coco/train2014)")
    p.add_argument("--out", required=True, help="output folder: photos, masks/, manifest.jsonl [, lmdb/]")
    p.add_argument("--size", type=count(1, 4096), default=default(run_coco, "size"),
                   help="square side of the outputs (default %(default)s)")
    p.add_argument("--limit", type=count(1), help="only the first N images (by id)")
    p.add_argument("--lmdb", action="store_true", help="also write train/val LMDB pairs in OUT/lmdb")
    p.add_argument("--val-fraction", type=number(0, 1), default=default(run_coco, "val_fraction"),
                   help="LMDB val share (default %(default)s)")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=default(run_coco, "seed"))
    p.add_argument("--force", action="store_true", help="replace an existing output folder not made by prep")
    p.add_argument("--quiet", action="store_true")


@step("coco", "COCO instances -> prominent person/vehicle masks (ExtractNet's rules)", _coco_args)
def _coco(a) -> int:
    r = run_coco(a.annotations, a.images, a.out, size=a.size, limit=a.limit, lmdb=a.lmdb,
                 val_fraction=a.val_fraction, seed=a.seed, force=a.force, quiet=a.quiet)
    print(f"prep coco: kept {r['kept']} of {r['images']} images ({r['skipped']} skipped, reasons in "
          f"{a.out}/manifest.jsonl) -> {r['out']}" + (" with lmdb/" if a.lmdb else ""))
    return 0


def _counts(info: dict) -> str:
    splits = [s for s in ("train", "val", "test") if s in info]
    return "+".join(str(info[s]["count"]) for s in splits) + f" ({'+'.join(splits)})"


def _ingest_args(p):
    p.add_argument("input", help="folder of your product photos on white")
    p.add_argument("--out", required=True, help="dataset root (white/ and composite/ as `prep sample`)")
    p.add_argument("--size", type=count(1, 4096), default=default(ingest_folder, "size"))
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=default(ingest_folder, "seed"))
    p.add_argument("--val-fraction", type=float, default=default(ingest_folder, "val_fraction"))
    p.add_argument("--test-fraction", type=float, default=default(ingest_folder, "test_fraction"),
                   help="hold out this share of the photos as a test split (white and composite over test "
                   "scenes only; default %(default)s)")
    p.add_argument("--test-backgrounds", help="scenes for the test composites (default: BACKGROUNDS/test when "
                   "--backgrounds has train/ val/ test/ subfolders, as BSDS500)")
    p.add_argument("--limit", type=int, help="only the first N photos (trials, tests)")
    _add_mask_options(p)
    _add_composite_options(p, n_default=default(ingest_folder, "n_composite"))
    _add_common(p)


@step("ingest", "your own sneaker photos -> masks, LMDBs, composites (sample layout)", _ingest_args)
def _ingest(a) -> int:
    r = ingest_folder(a.input, a.out, backgrounds=a.backgrounds, voc_list=a.voc_list, n_composite=a.count,
                      size=a.size, seed=a.seed, val_fraction=a.val_fraction, mask_opts=_mask_opts(a),
                      composite_opts=_comp_opts(a, a.size), test_fraction=a.test_fraction,
                      test_backgrounds=a.test_backgrounds, limit=a.limit, workers=a.workers, strict=a.strict,
                      force=a.force, quiet=a.quiet)
    w, c, m = r["white"], r.get("composite"), r["masks"]
    print(f"prep ingest: {a.out}: {m['ok']} of {m['total']} photos usable"
          + (f" ({m['skipped_by_reason']} skipped; reasons in {Path(a.out) / 'white/masks/manifest.jsonl'})"
             if m["skipped"] else "")
          + f"; white {_counts(w)}" + (f", composite {_counts(c)}" if c else "")
          + f" at {r['size']}x{r['size']}; preview {r.get('preview')}")
    return 0


def _import_args(p):
    p.add_argument("root", help="dataset folder: ROOT/{train,test}/{images,masks} or ROOT/{images,masks} "
                   "(or photos + labels with a label_list.txt)")
    p.add_argument("--out", required=True, help="output: {train,val,test}/ (images + masks/ + boxes.json), "
                   "manifest.jsonl, dataset.json [, lmdb/]")
    p.add_argument("--images", help="name of the image folder (default: the first of images, photos, imgs, "
                   "JPEGImages)")
    p.add_argument("--masks", help="name of the mask folder (default: the first of masks, labels, gt, "
                   "SegmentationClass)")
    p.add_argument("--label-list", help="the masks are label maps; this file names their ids (default: "
                   "ROOT/label_list.txt when present)")
    p.add_argument("--foreground", help="label maps: which ids are foreground, e.g. 'label > 0', 'label != 41', "
                   "'label in 1,2', 'label not in null,hair' (default 'label > 0')")
    p.add_argument("--threshold", type=int, help="binarise soft masks: value >= T is foreground (default: "
                   "masks must be 0/255 or 0/1)")
    p.add_argument("--max-side", type=int, help="shrink images and masks so their longer side is at most N")
    p.add_argument("--val-fraction", type=float, default=default(import_folder, "val_fraction"),
                   help="val share drawn from train when the source has no val split (default %(default)s)")
    p.add_argument("--test-fraction", type=float, help="test share drawn first when the source has no test "
                   "split (default 0.2 for a single pool, none for train-only split folders)")
    p.add_argument("--seed", type=int, default=default(import_folder, "seed"))
    p.add_argument("--limit", type=int, help="only the first N images of each source split (tests, trials)")
    p.add_argument("--lmdb", type=int, nargs="?", const=IMAGE_SIZE, metavar="S",
                   help=f"also write S x S train/val/test LMDB pairs in OUT/lmdb (S default {IMAGE_SIZE})")
    p.add_argument("--max-bad", type=float, default=default(import_folder, "max_bad"),
                   help="fail when more than this share of pairs is unusable (default %(default)s; "
                   "fewer are skipped and listed in manifest.jsonl)")
    p.add_argument("--strict", action="store_true", help="fail (write nothing) if any pair is unusable")
    _add_common(p)


@step("import", "image + mask (or label map) folders -> split photo folders, boxes, LMDBs", _import_args)
def _import(a) -> int:
    r = import_folder(a.root, a.out, images=a.images, masks=a.masks, label_list=a.label_list,
                      foreground=a.foreground, threshold=a.threshold, max_side=a.max_side,
                      val_fraction=a.val_fraction, test_fraction=a.test_fraction, seed=a.seed, limit=a.limit,
                      lmdb=a.lmdb, max_bad=a.max_bad, strict=a.strict, workers=a.workers, force=a.force,
                      quiet=a.quiet, max_pixels=a.max_pixels)
    print(f"prep import: {a.out}: " + ", ".join(f"{s} {n}" for s, n in r["splits"].items())
          + f" pairs; masks: {r['masks']}"
          + (f"; {r['skipped']} skipped ({r['skipped_by_reason']}; reasons in {Path(a.out) / 'manifest.jsonl'})"
             if r["skipped"] else "")
          + (f"; LMDBs {r['lmdb']['size']}x{r['lmdb']['size']} in {Path(a.out) / 'lmdb'}" if r["lmdb"] else ""))
    return 0


def _real_args(p):
    p.add_argument("src", help="folder of the real-photo datasets (../shared/realdata, or `prep fetch`'s --dest)")
    p.add_argument("--out", default="data/real_prepared", help="writes OUT/{shoes,portraits,duts,fashion,coco}/ "
                   "and OUT/real.json (default %(default)s)")
    p.add_argument("--only", nargs="+", choices=SETS, help="prepare only these sets")
    p.add_argument("--limit", type=int, help="only the first N images of each source split (trials, tests)")
    p.add_argument("--size", type=int, default=default(prepare_real, "size"),
                   help="side of the shoe and COCO LMDB records (default %(default)s)")
    p.add_argument("--lmdb", type=int, nargs="?", const=IMAGE_SIZE, metavar="S",
                   help="also write S x S LMDBs for the imported folders (portraits, duts, fashion)")
    p.add_argument("--seed", type=int, default=default(prepare_real, "seed"))
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--force", action="store_true", help="rebuild sets already prepared with the same options, "
                   "and replace output folders not made by prep")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@step("real", "every real-photo dataset in SRC -> the layouts the trainers and evaluate read", _real_args)
def _real(a) -> int:
    r = prepare_real(a.src, a.out, only=a.only, limit=a.limit, size=a.size, lmdb=a.lmdb, seed=a.seed,
                     workers=a.workers, force=a.force, quiet=a.quiet)
    print(f"prep real: {len(r['sets'])} sets in {a.out} ({', '.join(r['sets'])}); details in "
          f"{Path(a.out) / 'real.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="prep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, (help_line, arguments, _) in STEPS.items():
        arguments(sub.add_parser(name, help=help_line))
    return ap


@cli_entry("prep")
def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return STEPS[a.step][2](a)
