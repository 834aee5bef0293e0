#!/usr/bin/env python3
"""Step 2. Masked sneakers pasted onto scenes (VOC 2012 or any photos) at random scales/positions.

Same as `prep composite ...` (see `prep composite --help`); this script only forwards its arguments.
"""

import sys
from pathlib import Path

# Run from a checkout without the editable install too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.prep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["composite", *sys.argv[1:]]))
