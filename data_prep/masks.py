#!/usr/bin/env python3
"""Step 1. Product photos on white -> binary masks by the paper's near-white rule.

Thin wrapper: the same as `fcnkit prep masks ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['masks', *sys.argv[1:]]))
