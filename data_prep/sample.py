#!/usr/bin/env python3
"""The embedded default dataset (drawn sneakers + scikit-image's photos), built in seconds.

Same as `prep sample ...` (see `prep sample --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
