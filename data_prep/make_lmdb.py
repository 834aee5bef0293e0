#!/usr/bin/env python3
"""Step 3. Image/mask pairs -> paired Caffe LMDBs (train/val x image/label); --verify checks them.

Same as `prep lmdb ...` (see `prep lmdb --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["lmdb", *sys.argv[1:]]))
