"""`make demo` / `fcnkit demo`: the study's whole chain at CPU scale (fcnkit.apps.demo)."""

from __future__ import annotations

from pathlib import Path

from fcnkit.apps import demo
from fcnkit.cli import Parser
from fcnkit.cli.args import count
from fcnkit.config.paths import DEMO_RUN_DIR
from fcnkit.config.stages import ENGINES
from fcnkit.errors import cli_entry


@cli_entry("demo")
def main(argv=None) -> int:
    p = Parser(prog="demo", description=demo.__doc__.splitlines()[0])
    p.add_argument("--size", type=count(16, 4096), default=demo.DEFAULT_SIZE,
                   help="image size of the sample LMDBs (paper: 224)")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0)
    p.add_argument("--out", type=Path, default=Path(DEMO_RUN_DIR))
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="train the chain in real Caffe (default: the reproduction) or in the torch engine")
    a = p.parse_args(argv)
    return demo.run_demo(a.size, a.seed, a.out, engine=a.engine)
