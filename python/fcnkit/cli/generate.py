"""`fcnkit generate [--check]`: write every committed net and solver from code (fcnkit.caffe.generate)."""

from __future__ import annotations

import sys
from pathlib import Path

from fcnkit.caffe.generate import write_all
from fcnkit.cli import Parser
from fcnkit.config.paths import project_root
from fcnkit.errors import cli_entry


@cli_entry("generate")
def main(argv=None) -> int:
    p = Parser(prog="fcnkit generate",
                                description="Write prototxt/ and solvers/ from python/fcnkit/caffe/nets.py and "
                                            "python/fcnkit/config/; --check exits 1 if a committed file differs.")
    p.add_argument("--root", type=Path, default=None, help="project root (default: this checkout)")
    p.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    a = p.parse_args(argv)

    stale, total = write_all(a.root or project_root(), check=a.check)
    if a.check and stale:
        print("out of date (run `fcnkit generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("checked" if a.check else f"wrote {len(stale)} of") + f" {total} files")
    return 0
