#!/usr/bin/env python3
"""Segmentation metrics, Caffe and PyTorch side by side: `python tools/evaluate.py [DATA] --model REF`.

Thin wrapper: the same as `fcnkit evaluate ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('evaluate', sys.argv[1:]))
