#!/usr/bin/env python3
"""The embedded default dataset (drawn sneakers + scikit-image's photos), built in seconds.

Thin wrapper: the same as `fcnkit prep sample ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('prep', ['sample', *sys.argv[1:]]))
