"""Python layers for Caffe nets (`type: "Python"`, `python_param { module: "fcnkit.caffe.pylayers" }`)."""

from __future__ import annotations

import numpy as np

from fcnkit.caffenet.pycaffe import load_caffe

caffe = load_caffe()


class PixelAccuracy(caffe.Layer):
    """bottom: score (N, K, H, W), label (N, 1, H, W) -> top: fraction of labelled pixels whose argmax
    equals the label. Pixels labelled `ignore_label` (param_str, default 255) are not counted."""

    def setup(self, bottom, top):
        if len(bottom) != 2 or len(top) != 1:
            raise ValueError("PixelAccuracy needs bottoms (score, label) and one top")
        self.ignore = int(self.param_str or 255)

    def reshape(self, bottom, top):
        n, _, h, w = bottom[0].data.shape
        if bottom[1].data.shape != (n, 1, h, w):
            raise ValueError(f"PixelAccuracy: label shape {bottom[1].data.shape} != {(n, 1, h, w)}")
        top[0].reshape(1)

    def forward(self, bottom, top):
        pred = bottom[0].data.argmax(axis=1)
        label = bottom[1].data[:, 0]
        valid = label != self.ignore
        total = int(valid.sum())
        top[0].data[0] = (pred[valid] == label[valid]).sum() / total if total else np.nan

    def backward(self, top, propagate_down, bottom):
        pass  # a metric: no gradient


class PairedMirror(caffe.Layer):
    """bottom: image (N, C, H, W), label (N, 1, H, W) -> the same pair, each sample flipped left-right
    with probability 0.5, image and label together. param_str: optional integer RNG seed."""

    def setup(self, bottom, top):
        if len(bottom) != 2 or len(top) != 2:
            raise ValueError("PairedMirror needs bottoms (image, label) and tops (image, label)")
        self.rng = np.random.default_rng(int(self.param_str) if self.param_str else None)

    def reshape(self, bottom, top):
        a, b = bottom[0].data.shape, bottom[1].data.shape
        if a[0] != b[0] or a[2:] != b[2:]:
            raise ValueError(f"PairedMirror: image {a} and label {b} differ in batch or size")
        top[0].reshape(*a)
        top[1].reshape(*b)

    def forward(self, bottom, top):
        flip = self.rng.random(bottom[0].data.shape[0]) < 0.5
        for i in range(2):  # pycaffe's blob vectors support indexing, not iteration
            top[i].data[...] = bottom[i].data
            top[i].data[flip] = bottom[i].data[flip][..., ::-1]
        self.last_flip = flip

    def backward(self, top, propagate_down, bottom):
        pass  # data layers: nothing below to learn
