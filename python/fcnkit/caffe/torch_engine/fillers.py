"""Caffe's weight fillers (filler.hpp) in numpy, for layers the torch engine starts from scratch.

The distributions and their parameters are Caffe's; the random numbers are numpy's, so a net started from
scratch differs from Caffe's draw for the same `random_seed`. Give both engines the same `--weights` where
identical starting points matter (the parity tests do).
"""

from __future__ import annotations

import math

import numpy as np

from fcnkit.caffe.surgery import bilinear_kernel
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import pb


def _legacy(shape: tuple[int, ...], i: int) -> int:
    """Blob::LegacyShape: axis i, or 1 past the last axis."""
    return shape[i] if i < len(shape) else 1


def fill(filler, shape: tuple[int, ...], rng: np.random.Generator, where: str) -> np.ndarray:
    """A float32 array of `shape` drawn as Caffe's FillerParameter `filler` says."""
    t = filler.type
    count = math.prod(shape)
    if filler.sparse != -1 and t != "gaussian":
        raise UserError(f"{where}: sparse is only supported by the gaussian filler (Caffe's rule)")
    if t == "constant":
        return np.full(shape, filler.value, np.float32)
    if t == "uniform":
        return rng.uniform(filler.min, filler.max, shape).astype(np.float32)
    if t == "gaussian":
        out = rng.normal(filler.mean, filler.std, shape).astype(np.float32)
        if filler.sparse >= 0:
            keep = rng.random(shape) < filler.sparse / _legacy(shape, 0)
            out *= keep
        return out
    if t == "positive_unitball":
        out = rng.uniform(0, 1, shape).astype(np.float32).reshape(_legacy(shape, 0), -1)
        return (out / out.sum(1, keepdims=True)).reshape(shape)
    if t in ("xavier", "msra"):
        fan_in = count // _legacy(shape, 0)
        fan_out = count // _legacy(shape, 1)
        n = {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[filler.variance_norm]
        if t == "xavier":
            scale = math.sqrt(3 / n)
            return rng.uniform(-scale, scale, shape).astype(np.float32)
        return rng.normal(0, math.sqrt(2 / n), shape).astype(np.float32)
    if t == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise UserError(f"{where}: the bilinear filler needs a square 4-D weight, got {shape}")
        return np.broadcast_to(bilinear_kernel(shape[2]), shape).astype(np.float32)
    raise UserError(f"{where}: unknown filler type {t!r} (Caffe knows constant, uniform, gaussian, "
                    "positive_unitball, xavier, msra, bilinear)")


def layer_fillers(layer, n_blobs: int):
    """The FillerParameter for each of a layer's blobs, with Caffe's per-layer defaults."""
    t = layer.type

    def const(value: float):
        f = pb().FillerParameter(type="constant")
        f.value = value
        return f

    if t in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        return [p.weight_filler, p.bias_filler][:n_blobs]
    if t == "InnerProduct":
        p = layer.inner_product_param
        return [p.weight_filler, p.bias_filler][:n_blobs]
    if t == "Scale":
        p = layer.scale_param
        if len(layer.bottom) == 2:  # the only blob is the bias
            return [p.bias_filler][:n_blobs]
        return [p.filler if p.HasField("filler") else const(1.0), p.bias_filler][:n_blobs]
    if t == "Bias":
        return [layer.bias_param.filler][:n_blobs]
    if t == "PReLU":
        p = layer.prelu_param
        return [p.filler if p.HasField("filler") else const(0.25)][:n_blobs]
    return [const(0.0)] * n_blobs
