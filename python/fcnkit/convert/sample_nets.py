"""Sample Caffe nets for the converter's tests and benchmark (needs pycaffe).

`write_fcn_deploy` writes the project's FCN-32s/16s/8s deploy net (`fcnkit.models.fcn.nets`, the generator behind
prototxt/); `width` shrinks every channel count for fast tests.
`random_caffemodel` fills any net's parameters with random values and saves a caffemodel with Caffe.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.models.fcn import nets


def write_fcn_deploy(path: str | os.PathLike, variant: str = "8s", *, num_classes: int = 2, width: float = 1.0,
                     input_shape: tuple[int, int, int, int] = (1, 3, 500, 500)) -> Path:
    """The project's own FCN-{variant} deploy net (fcnkit.models.fcn.nets, as committed under prototxt/), with the
    given class count, channel width and Input shape."""
    proto = nets.fcn(int(variant.rstrip("s")), "deploy", num_classes=num_classes, width=width)
    data = next(lay for lay in proto.layer if lay.type == "Input")
    data.input_param.shape[0].dim[:] = list(input_shape)
    path = Path(path)
    path.write_text(str(proto))
    return path


def randomize(net, seed: int = 0) -> None:
    """Random parameters that keep activations O(1) through deep nets (He-style scaling per blob)."""
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for i, blob in enumerate(blobs):
            shape = blob.data.shape
            if i == 0 and len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                std = np.sqrt(2.0 / max(fan_in, 1))
                blob.data[...] = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
            else:
                blob.data[...] = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)


def random_caffemodel(prototxt: str | os.PathLike, path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a caffemodel for `prototxt` with random parameters, written by Caffe itself."""
    caffe = load_caffe()
    net = caffe.Net(str(prototxt), caffe.TEST)
    randomize(net, seed)
    net.save(str(path))
    return Path(path)
