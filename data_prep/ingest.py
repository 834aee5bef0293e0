#!/usr/bin/env python3
"""Your own sneaker folder -> masks, white + composite LMDBs, preview (the sample's layout).

Same as `prep ingest ...` (see `prep ingest --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
