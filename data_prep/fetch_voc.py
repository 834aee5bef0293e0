#!/usr/bin/env python3
"""Download PASCAL VOC 2012 (checksummed) and extract it: `fetch_voc.py voc2012 --dest data/voc`.

Same as `prep fetch ...` (see `prep fetch --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["fetch", *sys.argv[1:]]))
