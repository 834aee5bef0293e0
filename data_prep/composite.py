#!/usr/bin/env python3
"""Step 2. Masked sneakers pasted onto scenes (VOC 2012 or any photos) at random scales/positions.

Thin wrapper: the same as `fcnkit prep composite ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['composite', *sys.argv[1:]]))
