"""`evaluate`: segmentation metrics for Caffe and its PyTorch conversion side by side, plus the seed baseline.

    evaluate [DATA] [--model REF] [--backend caffe|torch|both] [--baseline] [--postprocess extractnet]
             [--report DIR] [--json FILE] [--limit N] [--precision fp32|bf16|fp16]

DATA is a dataset directory holding val_image_lmdb/val_label_lmdb (what `prep lmdb` and `make demo` write),
an image LMDB whose label LMDB is its sibling (`*image*` -> `*label*`), or a folder of photos with masks
in DATA/masks (or --masks DIR), paired by file stem. Default: data/tiny/white.

--model is a `convert` output directory (model.py, weights.safetensors, conversion.json), a registered
model name (`fcnkit models`), DEPLOY.prototxt:MODEL.caffemodel, or a PyTorch checkpoint. For a converted
directory the Caffe backend runs the prototxt and caffemodel that conversion.json names as its source (or
--deploy/--caffemodel). Default: the composite-finetuned FCN-8s `make demo` converted.

Every prediction is the model's foreground mask at the image's own size (argmax of FCN's `score`). The
table gives dataset figures (FCN histogram scores over all pixels; Jaccard % and Hausdorff as per-image
mean ± std), and for `both` the per-image Caffe-vs-PyTorch disagreement: pixels whose argmax differs
(expected 0). --precision bf16 (or fp16 on CUDA) runs the PyTorch model in fp32 and in that precision and
reports their agreement: pixels whose mask differs and the change in IoU.
"""

from __future__ import annotations

import argparse

from fcnkit.cli import Parser
from fcnkit.cli.args import add_precision, count, device
from fcnkit.config.paths import DATA_DIR, in_project
from fcnkit.config.stages import TINY_VARIANT
from fcnkit.errors import UserError, cli_entry
from fcnkit.evaluation.run import evaluate_dataset
from fcnkit.inference import DEFAULT_MODEL
from fcnkit.inference.postprocess import POSTPROCESSING

DEFAULT_DATA = f"{DATA_DIR}/{TINY_VARIANT.name}/white"


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.splitlines()
    p = Parser(prog="evaluate", description=doc[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(doc[2:]))
    p.add_argument("data", nargs="?", default=None, help=f"dataset (default {DEFAULT_DATA})")
    p.add_argument("--split", default="val", help="LMDB split prefix (default val)")
    p.add_argument("--masks", help="mask folder for a photo folder (default DATA/masks)")
    p.add_argument("--model", help=f"model reference (default {DEFAULT_MODEL})")
    p.add_argument("--deploy", help="Caffe deploy prototxt (default: conversion.json's source)")
    p.add_argument("--caffemodel", help="Caffe weights (default: conversion.json's source)")
    p.add_argument("--backend", choices=["caffe", "torch", "both", "none"], default="both")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    add_precision(p, "PyTorch arithmetic (default fp32); bf16/fp16 also run fp32 and report the agreement")
    p.add_argument("--baseline", action="store_true", help="add ExtractNet's classical baseline (§4.2)")
    p.add_argument("--postprocess", choices=POSTPROCESSING, default="none",
                   help="also report every method after ExtractNet's blur/threshold/opening")
    p.add_argument("--limit", type=count(1), help="evaluate only the first N images")
    p.add_argument("--json", help="write all figures (per image too) to this JSON file")
    p.add_argument("--report", help="write a Markdown + PNG report into this directory")
    return p


@cli_entry("evaluate")
def main(argv=None) -> int:
    a = build_parser().parse_args(argv)

    if a.backend == "none" and not a.baseline:
        raise UserError("--backend none needs --baseline (nothing to evaluate)")
    backends = {"none": (), "both": ("caffe", "torch")}.get(a.backend, (a.backend,))
    evaluate_dataset(a.data if a.data is not None else in_project(DEFAULT_DATA), a.model, backends=backends,
                     split=a.split, masks=a.masks, limit=a.limit, device=a.device, precision=a.precision,
                     deploy=a.deploy,
                     caffemodel=a.caffemodel, baseline=a.baseline,
                     postprocess=None if a.postprocess == "none" else a.postprocess, report_dir=a.report,
                     json_path=a.json)
    return 0
