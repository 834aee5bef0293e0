#!/usr/bin/env python3
"""Fetch the VGG-16 Model Zoo caffemodel + deploy prototxt into weights/vgg16 (FCN-32s starts from it).

Thin wrapper: the same as `fcnkit fetch-vgg16 ...` (see --help). Works from a checkout without the package
installed, too.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from fcnkit.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run('fetch-vgg16', sys.argv[1:]))
