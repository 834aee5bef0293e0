#!/usr/bin/env python3
"""Step 3. Image/mask pairs -> paired Caffe LMDBs (train/val x image/label); --verify checks them.

Thin wrapper: the same as `fcnkit prep lmdb ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['lmdb', *sys.argv[1:]]))
