#!/usr/bin/env python3
"""Training logs -> CSV + figure: `python tools/plot_training.py LOG... -o OUT`.

Thin wrapper: the same as `fcnkit plot-training ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('plot-training', sys.argv[1:]))
