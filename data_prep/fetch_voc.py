#!/usr/bin/env python3
"""Download PASCAL VOC 2012 (checksummed) and extract it: `fetch_voc.py voc2012 --dest data/voc`.

Thin wrapper: the same as `fcnkit prep fetch ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['fetch', *sys.argv[1:]]))
