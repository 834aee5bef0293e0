#!/usr/bin/env python3
"""Your own sneaker folder -> masks, white + composite LMDBs, preview (the sample's layout).

Thin wrapper: the same as `fcnkit prep ingest ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['ingest', *sys.argv[1:]]))
