#!/usr/bin/env python3
"""Fetch the VGG-16 Model Zoo caffemodel + deploy prototxt into weights/vgg16 (FCN-32s starts from it)."""

import sys

from fcnkit.weights import main

if __name__ == "__main__":
    sys.exit(main())
