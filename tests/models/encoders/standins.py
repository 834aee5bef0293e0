"""Random-weight stand-ins for the Caffe Model Zoo releases: the real layer names, types and shapes (the
real files cannot be downloaded here), written with real Caffe (NetSpec + Net.save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fcnkit.models.encoders.resnet import PLANES, RESNET_BLOCKS, block_names
from fcnkit.models.encoders.vgg import VGG_CHANNELS, VGG_REPEATS


def vgg_netspec(caffe, depth: int):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 64]))
    top = n.data
    for level, (reps, ch) in enumerate(zip(VGG_REPEATS[depth], VGG_CHANNELS, strict=True), start=1):
        for i in range(1, reps + 1):
            top = L.Convolution(top, num_output=ch, kernel_size=3, pad=1)
            n[f"conv{level}_{i}"] = top
            n[f"relu{level}_{i}"] = top = L.ReLU(top, in_place=True)
        n[f"pool{level}"] = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    return n


def resnet_netspec(caffe, depth: int):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 64]))

    def conv_bn(bottom, name, c_out, k, stride, bias=False, relu=True):
        n[name] = top = L.Convolution(bottom, num_output=c_out, kernel_size=k, stride=stride, pad=k // 2,
                                      bias_term=bias)
        n["bn" + name[3:] if name != "conv1" else "bn_conv1"] = L.BatchNorm(top, use_global_stats=True,
                                                                            in_place=True)
        n["scale" + name[3:] if name != "conv1" else "scale_conv1"] = L.Scale(top, bias_term=True, in_place=True)
        if relu:
            n[name + "_relu"] = L.ReLU(top, in_place=True)
        return top

    top = conv_bn(n.data, "conv1", 64, 7, 2, bias=True)
    n.pool1 = top = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    for stage, (count, planes) in enumerate(zip(RESNET_BLOCKS[depth], PLANES, strict=True), start=2):
        for i, suffix in enumerate(block_names(depth, stage, count)):
            p = f"res{stage}{suffix}"
            stride = 2 if i == 0 and stage > 2 else 1
            short = conv_bn(top, f"{p}_branch1", planes * 4, 1, stride, relu=False) if i == 0 else top
            y = conv_bn(top, f"{p}_branch2a", planes, 1, stride)
            y = conv_bn(y, f"{p}_branch2b", planes, 3, 1)
            y = conv_bn(y, f"{p}_branch2c", planes * 4, 1, 1, relu=False)
            n[p] = top = L.Eltwise(short, y)
            n[p + "_relu"] = L.ReLU(top, in_place=True)
    return n


def write_standin(caffe, netspec, root: Path, deploy_name: str, model_name: str, seed: int = 0):
    """Deploy prototxt + caffemodel with random weights (BatchNorm: random statistics, factor 1)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    deploy, model = root / deploy_name, root / model_name
    deploy.write_text(str(netspec.to_proto()))
    net = caffe.Net(str(deploy), caffe.TEST)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        if kind == "BatchNorm":
            c = blobs[0].data.shape[0]
            blobs[0].data[...] = rng.normal(0, 0.1, c)
            blobs[1].data[...] = rng.uniform(0.5, 1.5, c)
            blobs[2].data[...] = 1.0
        elif kind == "Scale":
            blobs[0].data[...] = rng.uniform(0.5, 1.5, blobs[0].data.shape)
            blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].data.shape)
        else:
            fan_in = int(np.prod(blobs[0].data.shape[1:]))
            blobs[0].data[...] = rng.normal(0, np.sqrt(1.0 / fan_in), blobs[0].data.shape)
            if len(blobs) > 1:
                blobs[1].data[...] = rng.normal(0, 0.05, blobs[1].data.shape)
    net.save(str(model))
    return deploy, model, net
