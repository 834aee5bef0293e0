"""`fcnkit fidelity` (= `python tools/fidelity.py`): every number of the paper -> file:field -> PASS/FAIL."""

from __future__ import annotations

from pathlib import Path

from fcnkit.apps.fidelity import report
from fcnkit.cli import Parser
from fcnkit.config.paths import project_root
from fcnkit.errors import cli_entry


@cli_entry("fidelity")
def main(argv=None) -> int:
    p = Parser(prog="fidelity", description="Paper-fidelity table: what the paper states, "
                                "where it lives, expected and actual value; exit 0 only if every row passes.")
    p.add_argument("--root", type=Path, default=None, help="project root to check (default: this checkout)")
    a = p.parse_args(argv)

    text, ok = report(a.root or project_root())
    print(text)
    return 0 if ok else 1
