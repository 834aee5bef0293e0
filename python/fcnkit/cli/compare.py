"""`fcnkit compare [--preset quick|paper|real|real-quick]`: see fcnkit.apps.compare and fcnkit.apps.compare_real.

    fcnkit compare --preset quick                  # tiny widths, embedded sample data, CPU (minutes)
    fcnkit compare --preset paper --device cuda    # the seeds' full nets on data/white, data/composite
    fcnkit compare --preset real [--data DIR]      # every seed's system on real photographs (CPU, <= 1 hour)
    fcnkit compare --preset real-quick             # the same on small subsets (minutes)

The real presets read the public data sets from DIR (default: $FCNKIT_REALDATA, else ../shared/realdata;
layout in its README) and, for `real` (or with --install), copy the trained models to weights/native/<task>/
so `fcnkit models`, `serve` and `remove-bg --model duts/unet` offer them (--no-install: leave them in OUT).

Writes OUT/compare.json, OUT/compare.md and OUT/overlays_<dataset>.png (default OUT: runs/compare/<preset>).
--fcn: auto (use the FCN snapshots `make demo` / `solve` trained; train the tiny chain if there are none),
load (never train), train (always retrain the tiny chain), skip. In the real presets the tiny chain trains in
real Caffe on the real shoes under OUT/fcn (auto/train; with --reuse auto keeps the stages already there; load:
only those), or skip. --reuse keeps the finished checkpoints
already in OUT and resumes unfinished ones (so an interrupted compare continues where it stopped);
OUT/compare.json is rewritten after each val set ("complete": false until the end).
"""

from __future__ import annotations

import argparse

from fcnkit.apps.compare import PRESETS, run_compare
from fcnkit.apps.compare_real import REAL_PRESETS, run_real
from fcnkit.cli import doc_parser
from fcnkit.cli.args import add_precision, count, device
from fcnkit.config.paths import in_project
from fcnkit.errors import cli_entry
from fcnkit.training.trainer import TrainingInterrupted


@cli_entry("compare")
def main(argv=None) -> int:
    p = doc_parser("fcnkit compare", __doc__, "every family on the same data, scored alike")
    p.add_argument("--preset", choices=[*PRESETS, *REAL_PRESETS], default="quick")
    p.add_argument("--data", help="real presets: the folder of real data sets (default: ../shared/realdata)")
    p.add_argument("--install", action=argparse.BooleanOptionalAction, default=None,
                   help="real presets: copy the trained models to their registered checkpoints (default: real only)")
    p.add_argument("--out", help="output folder (default runs/compare/PRESET)")
    p.add_argument("--models", nargs="+", help="only these PyTorch models (default: the preset's)")
    p.add_argument("--datasets", nargs="+", help="only these datasets (default: white composite)")
    p.add_argument("--data-root", help="folder holding the datasets (default: the preset's)")
    p.add_argument("--fcn", choices=["auto", "load", "train", "skip"], default="auto")
    p.add_argument("--device", type=device, help="torch device (default: the preset's)")
    add_precision(p, "PyTorch arithmetic when scoring (default fp32; the Caffe rows stay fp32)")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0)
    p.add_argument("--reuse", action="store_true", help="keep finished checkpoints in OUT, resume unfinished ones")
    p.add_argument("--epochs", type=count(1, 100_000),
                   help="train every model this many epochs (smoke runs; default: preset's)")
    a = p.parse_args(argv)
    try:
        return _run(p, a)
    except TrainingInterrupted as exc:  # Ctrl-C or SIGTERM mid-training: the checkpoint of the moment is saved;
        exc.args = (f"{exc}; continue with the same command and --reuse",)  # cli_entry prints it, exits 130/143
        raise


def _run(p, a) -> int:

    out = a.out or in_project(f"runs/compare/{a.preset}")
    if a.preset in REAL_PRESETS:
        r = run_real(a.preset, out, data=a.data, tasks=a.datasets, models_only=a.models, device=a.device or "cpu",
                     seed=a.seed, reuse=a.reuse, install=a.install, precision=a.precision, fcn=a.fcn,
                     train_overrides={"*": {"epochs": a.epochs}} if a.epochs else None)
        failed = [f for f in r["floors"] if not f["pass"]]
        print(f"compare: {len(r['models']) // 2} rows x {len(r['data'])} real test sets in {r['seconds']:.0f}s; "
              f"floors: {len(r['floors']) - len(failed)}/{len(r['floors'])} pass; {out}/compare.md")
        return 0
    if a.data or a.install is not None:
        p.error("--data and --install are for the real presets (--preset real or real-quick)")
    r = run_compare(a.preset, out, models=a.models, datasets=a.datasets, fcn=a.fcn, device=a.device, seed=a.seed,
                    precision=a.precision, reuse=a.reuse, data_root=a.data_root,
                    train_overrides={"*": {"epochs": a.epochs}} if a.epochs else None)
    failed = [f for f in r["floors"] if not f["pass"]]
    print(f"compare: {len(r['models']) // 2} methods x {len(r['data'])} val sets in {r['seconds']:.0f}s; floors: "
          f"{len(r['floors']) - len(failed)}/{len(r['floors'])} pass; {out}/compare.md")
    return 0
