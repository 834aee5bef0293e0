#!/usr/bin/env python3
"""Convert a Caffe net to PyTorch: `python tools/caffe2torch.py DEPLOY.prototxt MODEL.caffemodel -o OUT_DIR`.

Thin wrapper: the same as `fcnkit convert ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('convert', sys.argv[1:]))
