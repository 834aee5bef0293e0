"""A Caffe Python layer for the --plugin tests (the Caffe side; torch_pylayers.py is the PyTorch side)."""

import numpy as np
from fcnkit.caffenet.pycaffe import load_caffe

caffe = load_caffe()


class ScaledTanh(caffe.Layer):
    """top = scale * tanh(bottom) + shift, param_str "scale,shift"."""

    def setup(self, bottom, top):
        self.scale, self.shift = (float(v) for v in self.param_str.split(","))

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.scale * np.tanh(bottom[0].data) + self.shift

    def backward(self, top, propagate_down, bottom):
        pass
