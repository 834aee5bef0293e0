#!/usr/bin/env python3
"""Step 1. Product photos on white -> binary masks by the paper's near-white rule.

Same as `prep masks ...` (see `prep masks --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["masks", *sys.argv[1:]]))
