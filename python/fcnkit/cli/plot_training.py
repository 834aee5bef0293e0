"""`plot-training LOG... [-o OUT]` (= `python tools/plot_training.py`): see fcnkit.evaluation.curves."""

from __future__ import annotations

import argparse

from fcnkit.cli import Parser
from fcnkit.errors import cli_entry
from fcnkit.evaluation import curves


@cli_entry("plot_training")
def main(argv=None) -> int:
    doc = curves.__doc__.splitlines()
    p = Parser(prog="plot_training", description=doc[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(doc[2:]))
    p.add_argument("logs", nargs="+", help="log files in stage order; NAME=LOG names a stage")
    p.add_argument("-o", "--out", default="training", help="output prefix: OUT.csv and OUT.png (default training)")
    p.add_argument("--title")
    a = p.parse_args(argv)
    r = curves.plot_training(a.logs, a.out, a.title)
    for name, rows in r["stages"]:
        print(f"plot_training: {name}: {len(rows)} points, iterations {rows[0]['iter']}..{rows[-1]['iter']}")
    print(f"plot_training: wrote {r['csv']} and {r['png']}")
    return 0
