#!/usr/bin/env python3
"""Convert a Caffe net to PyTorch: `python tools/caffe2torch.py DEPLOY.prototxt MODEL.caffemodel -o OUT_DIR`.

Thin wrapper around `fcnkit.convert.cli` (also installed as the `convert` command); see --help.
"""

import sys
from pathlib import Path

try:
    from fcnkit.convert.cli import main
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from fcnkit.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
