"""`fcnkit compare [--preset quick|paper]`: see fcnkit.apps.compare.

    fcnkit compare --preset quick                  # tiny widths, embedded sample data, CPU (minutes)
    fcnkit compare --preset paper --device cuda    # the seeds' full nets on data/white, data/composite

Writes OUT/compare.json, OUT/compare.md and OUT/overlays_<dataset>.png (default OUT: runs/compare/<preset>).
--fcn: auto (use the FCN snapshots `make demo` / `solve` trained; train the tiny chain if there are none),
load (never train), train (always retrain the tiny chain), skip. --reuse keeps the finished checkpoints
already in OUT and resumes unfinished ones (so an interrupted compare continues where it stopped);
OUT/compare.json is rewritten after each val set ("complete": false until the end).
"""

from __future__ import annotations

from fcnkit.apps.compare import PRESETS, run_compare
from fcnkit.cli import doc_parser
from fcnkit.cli.args import count, device
from fcnkit.config.paths import in_project
from fcnkit.errors import cli_entry


@cli_entry("compare")
def main(argv=None) -> int:
    p = doc_parser("fcnkit compare", __doc__, "every family on the same data, scored alike")
    p.add_argument("--preset", choices=list(PRESETS), default="quick")
    p.add_argument("--out", help="output folder (default runs/compare/PRESET)")
    p.add_argument("--models", nargs="+", help="only these PyTorch models (default: the preset's)")
    p.add_argument("--datasets", nargs="+", help="only these datasets (default: white composite)")
    p.add_argument("--data-root", help="folder holding the datasets (default: the preset's)")
    p.add_argument("--fcn", choices=["auto", "load", "train", "skip"], default="auto")
    p.add_argument("--device", type=device, help="torch device (default: the preset's)")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0)
    p.add_argument("--reuse", action="store_true", help="keep finished checkpoints in OUT, resume unfinished ones")
    p.add_argument("--epochs", type=count(1, 100_000),
                   help="train every model this many epochs (smoke runs; default: preset's)")
    a = p.parse_args(argv)

    out = a.out or in_project(f"runs/compare/{a.preset}")
    r = run_compare(a.preset, out, models=a.models, datasets=a.datasets, fcn=a.fcn, device=a.device, seed=a.seed,
                    reuse=a.reuse, data_root=a.data_root,
                    train_overrides={"*": {"epochs": a.epochs}} if a.epochs else None)
    failed = [f for f in r["floors"] if not f["pass"]]
    print(f"compare: {len(r['models']) // 2} methods x {len(r['data'])} val sets in {r['seconds']:.0f}s; floors: "
          f"{len(r['floors']) - len(failed)}/{len(r['floors'])} pass; {out}/compare.md")
    return 0
