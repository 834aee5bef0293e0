#!/usr/bin/env python3
"""The paper-fidelity table: `python tools/fidelity.py` (exit 0 only if every row passes).

Thin wrapper: the same as `fcnkit fidelity ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('fidelity', sys.argv[1:]))
