"""`fcnkit train MODEL [DATA] ...`: train a registered PyTorch model (see fcnkit.training.trainer).

DATA is what `evaluate` reads: a dataset folder with {train,val}_{image,label}_lmdb (`prep lmdb`,
`prep sample`, `prep coco --lmdb`), or a folder of photos with DATA/masks (then --val DIR, the same
layout, is the validation set). Default: data/tiny/white (the embedded sample set).

The checkpoint is OUT (default weights/native/MODEL.safetensors) with its sidecar OUT.json, the resume
state OUT.resume.pt and the per-epoch log OUT.csv (`plot-training OUT.csv`). `--set key=value` changes a
model setting (`fcnkit models --family F` lists them), e.g. `--set activation=prelu --set batch_norm=false`.
Ctrl-C or SIGTERM saves the checkpoint of the moment and exits with status 130 (Ctrl-C) or 143 (SIGTERM);
`--resume` continues it.
"""

from __future__ import annotations

import json
import signal
import sys

from fcnkit.cli import doc_parser
from fcnkit.cli.args import count, device, number
from fcnkit.config.paths import DATA_DIR, in_project
from fcnkit.errors import UserError, cli_entry
from fcnkit.training.trainer import TrainingInterrupted, train

DEFAULT_DATA = f"{DATA_DIR}/tiny/white"


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: give KEY=VALUE, e.g. --set width=0.25")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value  # a bare word, e.g. activation=prelu
    return out


@cli_entry("train")
def main(argv=None) -> int:
    p = doc_parser("fcnkit train", __doc__)
    p.add_argument("model", help="a registered PyTorch model (`fcnkit models`)")
    p.add_argument("data", nargs="?", help=f"dataset (default {DEFAULT_DATA})")
    p.add_argument("--val", help="validation photos + masks (for a photo-folder DATA)")
    p.add_argument("--masks", help="mask folder of a photo-folder DATA (default DATA/masks)")
    p.add_argument("--out", help="checkpoint path (default weights/native/MODEL.safetensors)")
    p.add_argument("--epochs", type=count(1, 100_000))
    p.add_argument("--batch-size", type=count(1, 100_000))
    p.add_argument("--lr", type=number(above=0, high=10))
    p.add_argument("--size", type=count(16, 4096), help="resize training images to SIZE x SIZE on load")
    p.add_argument("--limit", type=count(1), help="use only the first N images of each split")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--weights-dir", help="folder holding the pretrained release (default weights/<release>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model setting")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)

    try:
        r = train(a.model, a.data or in_project(DEFAULT_DATA), val=a.val, out=a.out, epochs=a.epochs,
                  batch_size=a.batch_size, lr=a.lr, size=a.size, seed=a.seed, device=a.device, resume=a.resume,
                  limit=a.limit, config=parse_set(a.set), weights_dir=a.weights_dir, masks=a.masks,
                  progress=False if a.quiet else None)
    except TrainingInterrupted as exc:
        print(f"train: interrupted ({'SIGTERM' if exc.signum == signal.SIGTERM else 'Ctrl-C'}); {exc}",
              file=sys.stderr)
        return 128 + int(exc.signum)
    m = r["metrics"]
    if r["checkpoint"] is None:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(f"train: {r['model']}: {r['epoch']} epochs in {r['train_seconds']:.0f}s; val pixel_acc "
          f"{m['pixel_acc']:.4f} mean_iou {m['mean_iou']:.4f} jaccard {m['jaccard']:.2f}; wrote {r['checkpoint']}")
    return 0
