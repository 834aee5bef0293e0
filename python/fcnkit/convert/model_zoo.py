"""Model-zoo nets with the layer patterns people convert, generated with NetSpec by this code (no third-party
files): AlexNet/CaffeNet, GoogLeNet, ResNet-50, SqueezeNet v1.1, VGG-16 FCN-8s, an HED-style edge detector
(side outputs, layers sharing the name "crop"), MobileNet-SSD and SegNet. `width` scales every channel
count (1.0 = the published net), so tests run small copies and the benchmark the real sizes. Needs pycaffe.

    proto = model_zoo.build("resnet50", width=0.125, size=(96, 96))   # -> NetParameter (deploy, Input layer)
    model_zoo.write("resnet50", out_dir, width=..., sizes=[...])       # -> prototxt(s) + random caffemodel
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.convert.sample_nets import randomize
from fcnkit.convert.tolerance import TOL
from fcnkit.models.fcn import nets
from fcnkit.models.fcn.nets import channels

GAUSS = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=0.1))


@dataclass(frozen=True)
class ZooNet:
    name: str
    pattern: str                      # the layers it exercises
    size: tuple[int, int]             # published input (H, W)
    test_sizes: tuple[tuple[int, int], tuple[int, int]]  # two sizes the tests verify at (small width)
    size_agnostic: bool               # one prototxt serves every input size
    classes: int = 1000
    mean: tuple[float, ...] = (104.0, 117.0, 123.0)  # preprocessing (BGR mean, then scale) of the published net
    scale: float = 1.0
    # --verify tolerance for the random-weight copies. Deep stacks of convolutions with BatchNorm compound
    # Caffe's own float32 rounding: MobileNet-SSD's 47 to ~2e-4 of the last blobs, ResNet-50's 53 to 0.8-1.0e-4
    # (--fp64, the converted module in float64, is as far from Caffe: 7.7e-5 and 8.3e-5 at the test sizes).
    tol: float = TOL
    # the net uses a fork's layer types (C3D): real Caffe runs the same net written in its own layers
    # (`build(..., fork=False)`), and the caffemodel is saved from that one
    fork: bool = False


def _ch(full: int, width: float) -> int:
    return channels(full, width)


class _Builder:
    def __init__(self, width: float, size: tuple[int, int], batch: int = 1, channels: int = 3,
                 shape: list[int] | None = None):
        caffe = load_caffe()
        self.L, self.P = caffe.layers, caffe.params
        self.n = caffe.NetSpec()
        self.n.data = self.L.Input(shape=dict(dim=shape or [batch, channels, size[0], size[1]]))
        self.width = width

    def add(self, name: str, layer):
        setattr(self.n, name, layer)
        return layer

    def conv(self, name, bottom, nout, k, s=1, p=0, group=1, bias=True, relu=True, full=True):
        out = _ch(nout, self.width) if full else nout
        top = self.add(name, self.L.Convolution(bottom, num_output=out, kernel_size=k, stride=s, pad=p, group=group,
                                                bias_term=bias, **({**GAUSS} if bias else dict(weight_filler=dict(
                                                    type="msra")))))
        if relu:
            self.add(f"relu_{name}", self.L.ReLU(top, in_place=True))
        return top

    def bn_scale_relu(self, name, bottom, relu=True):
        self.add(f"bn_{name}", self.L.BatchNorm(bottom, in_place=True))
        self.add(f"scale_{name}", self.L.Scale(bottom, in_place=True, bias_term=True))
        if relu:
            self.add(f"relu_{name}", self.L.ReLU(bottom, in_place=True))
        return bottom

    def proto(self, name: str):
        proto = self.n.to_proto()
        proto.name = name
        return proto


# ----------------------------------------------------------------------------------------- the nets
def alexnet(width, size, classes=1000):
    """CaffeNet/AlexNet: 11x11/4 conv, LRN, grouped 5x5 and 3x3 convs, fc6/fc7 with dropout, softmax."""
    b = _Builder(width, size)
    x = b.conv("conv1", b.n.data, 96, 11, s=4)
    x = b.add("pool1", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    x = b.add("norm1", b.L.LRN(x, local_size=5, alpha=1e-4, beta=0.75))
    x = b.conv("conv2", x, 256, 5, p=2, group=2)
    x = b.add("pool2", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    x = b.add("norm2", b.L.LRN(x, local_size=5, alpha=1e-4, beta=0.75))
    x = b.conv("conv3", x, 384, 3, p=1)
    x = b.conv("conv4", x, 384, 3, p=1, group=2)
    x = b.conv("conv5", x, 256, 3, p=1, group=2)
    x = b.add("pool5", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    for i, nout in ((6, _ch(4096, width)), (7, _ch(4096, width))):
        x = b.add(f"fc{i}", b.L.InnerProduct(x, num_output=nout, **GAUSS))
        b.add(f"relu{i}", b.L.ReLU(x, in_place=True))
        b.add(f"drop{i}", b.L.Dropout(x, in_place=True, dropout_ratio=0.5))
    x = b.add("fc8", b.L.InnerProduct(x, num_output=classes, **GAUSS))
    b.add("prob", b.L.Softmax(x))
    return b.proto("CaffeNet")


GOOGLENET_INCEPTION = {  # name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(width, size, classes=1000):
    """GoogLeNet: inception modules (1x1, 3x3, 5x5 branches and a pooling branch, concatenated), LRN,
    7x7 average pooling, dropout, classifier."""
    b = _Builder(width, size)
    x = b.conv("conv1/7x7_s2", b.n.data, 64, 7, s=2, p=3)
    x = b.add("pool1/3x3_s2", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    x = b.add("pool1/norm1", b.L.LRN(x, local_size=5, alpha=1e-4, beta=0.75))
    x = b.conv("conv2/3x3_reduce", x, 64, 1)
    x = b.conv("conv2/3x3", x, 192, 3, p=1)
    x = b.add("conv2/norm2", b.L.LRN(x, local_size=5, alpha=1e-4, beta=0.75))
    x = b.add("pool2/3x3_s2", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    for name, (c1, r3, c3, r5, c5, pp) in GOOGLENET_INCEPTION.items():
        if name in ("4a", "5a"):
            x = b.add(f"pool{name[0]}/3x3_s2", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
        p = f"inception_{name}"
        a = b.conv(f"{p}/1x1", x, c1, 1)
        t = b.conv(f"{p}/3x3_reduce", x, r3, 1)
        t = b.conv(f"{p}/3x3", t, c3, 3, p=1)
        f = b.conv(f"{p}/5x5_reduce", x, r5, 1)
        f = b.conv(f"{p}/5x5", f, c5, 5, p=2)
        q = b.add(f"{p}/pool", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=1, pad=1))
        q = b.conv(f"{p}/pool_proj", q, pp, 1)
        x = b.add(f"{p}/output", b.L.Concat(a, t, f, q))
    x = b.add("pool5/7x7_s1", b.L.Pooling(x, pool=b.P.Pooling.AVE, kernel_size=7, stride=1))
    b.add("pool5/drop_7x7_s1", b.L.Dropout(x, in_place=True, dropout_ratio=0.4))
    x = b.add("loss3/classifier", b.L.InnerProduct(x, num_output=classes, **GAUSS))
    b.add("prob", b.L.Softmax(x))
    return b.proto("GoogleNet")


def resnet50(width, size, classes=1000):
    """ResNet-50: BatchNorm + Scale after every convolution, bottleneck blocks with projection shortcuts,
    Eltwise SUM, global 7x7 average pooling, fc1000."""
    b = _Builder(width, size)
    x = b.conv("conv1", b.n.data, 64, 7, s=2, p=3, bias=True, relu=False)
    x = b.bn_scale_relu("conv1", x)
    x = b.add("pool1", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    for stage, (blocks, mid) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=2):
        for k in range(blocks):
            name = f"res{stage}{'abcdef'[k]}"
            stride = 2 if k == 0 and stage > 2 else 1
            if k == 0:
                short = b.conv(f"{name}_branch1", x, mid * 4, 1, s=stride, bias=False, relu=False)
                short = b.bn_scale_relu(f"{name}_branch1", short, relu=False)
            else:
                short = x
            y = b.conv(f"{name}_branch2a", x, mid, 1, s=stride, bias=False, relu=False)
            y = b.bn_scale_relu(f"{name}_branch2a", y)
            y = b.conv(f"{name}_branch2b", y, mid, 3, p=1, bias=False, relu=False)
            y = b.bn_scale_relu(f"{name}_branch2b", y)
            y = b.conv(f"{name}_branch2c", y, mid * 4, 1, bias=False, relu=False)
            y = b.bn_scale_relu(f"{name}_branch2c", y, relu=False)
            x = b.add(name, b.L.Eltwise(short, y))
            b.add(f"{name}_relu", b.L.ReLU(x, in_place=True))
    x = b.add("pool5", b.L.Pooling(x, pool=b.P.Pooling.AVE, kernel_size=7, stride=1))
    x = b.add("fc1000", b.L.InnerProduct(x, num_output=classes, **GAUSS))
    b.add("prob", b.L.Softmax(x))
    return b.proto("ResNet-50")


def squeezenet(width, size, classes=1000):
    """SqueezeNet v1.1: fire modules (squeeze 1x1, expand 1x1 and 3x3, concatenated), dropout, a 1x1
    classifier convolution and global average pooling; fully convolutional."""
    b = _Builder(width, size)
    x = b.conv("conv1", b.n.data, 64, 3, s=2)
    x = b.add("pool1", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    for i, (sq, ex) in enumerate(((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256),
                                  (64, 256)), start=2):
        s = b.conv(f"fire{i}/squeeze1x1", x, sq, 1)
        e1 = b.conv(f"fire{i}/expand1x1", s, ex, 1)
        e3 = b.conv(f"fire{i}/expand3x3", s, ex, 3, p=1)
        x = b.add(f"fire{i}/concat", b.L.Concat(e1, e3))
        if i in (3, 5):
            x = b.add(f"pool{i}", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=3, stride=2))
    b.add("drop9", b.L.Dropout(x, in_place=True, dropout_ratio=0.5))
    x = b.conv("conv10", x, classes, 1, full=False)
    x = b.add("pool10", b.L.Pooling(x, pool=b.P.Pooling.AVE, global_pooling=True))
    b.add("prob", b.L.Softmax(x))
    return b.proto("SqueezeNet_v1.1")


def fcn8s(width, size, classes=21):
    """The project's VGG-16 FCN-8s (pad 100, fc6 7x7, Deconvolution upsampling, Crop, Eltwise skips)."""
    proto = nets.fcn(8, "deploy", num_classes=classes, width=width)
    data = next(lay for lay in proto.layer if lay.type == "Input")
    data.input_param.shape[0].dim[:] = [1, 3, size[0], size[1]]
    return proto


def hed(width, size, classes=1):
    """HED-style edge detection: a VGG-16 trunk, a 1x1 side output per stage upsampled by Deconvolution and
    cropped to the input by layers that all share the name "crop" (as in the published HED prototxt), a
    fused output, sigmoids on every side output."""
    from caffe.coord_map import crop  # noqa: PLC0415  (pycaffe submodule; needs caffe loaded)

    b = _Builder(width, size)
    x = b.n.data
    sides = []
    for stage, reps, full in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
        if stage > 1:
            x = b.add(f"pool{stage - 1}", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=2, stride=2))
        for i in range(1, reps + 1):
            x = b.conv(f"conv{stage}_{i}", x, full, 3, p=35 if stage == i == 1 else 1)
        side = b.add(f"score-dsn{stage}", b.L.Convolution(x, num_output=1, kernel_size=1, **GAUSS))
        if stage > 1:
            f = 2 ** (stage - 1)
            side = b.add(f"upsample_{f}", b.L.Deconvolution(side, convolution_param=dict(
                num_output=1, kernel_size=2 * f, stride=f, bias_term=False, weight_filler=dict(type="bilinear"))))
        sides.append(b.add(f"crop_{stage}", crop(side, b.n.data)))
    for stage, side in enumerate(sides, start=1):
        b.add(f"sigmoid-dsn{stage}", b.L.Sigmoid(side))
    cat = b.add("concat", b.L.Concat(*sides))
    fuse = b.add("new-score-weighting", b.L.Convolution(cat, num_output=1, kernel_size=1, **GAUSS))
    b.add("sigmoid-fuse", b.L.Sigmoid(fuse))
    proto = b.proto("HED")
    for layer in proto.layer:  # HED names every Crop layer "crop"; Caffe allows it, it only indexes names
        if layer.type == "Crop":
            layer.name = "crop"
    return proto


def _ssd_heads(b, feats, heads, classes, kernel, detection):
    """SSD's heads: per feature map a loc and a conf convolution -> Permute -> Flatten, and a PriorBox (min size,
    optional max size, each aspect ratio and its flip, optional step); the three Concats, the conf Reshape /
    Softmax / Flatten and DetectionOutput. heads: (feature blob, min_size, max_size or None, ratios, step or
    None)."""
    locs, confs, priors = [], [], []
    for name, min_size, max_size, ratios, step in heads:
        f = feats[name]
        n_priors = (1 if max_size is None else 2) + 2 * len(ratios)  # min, max, each ratio and its flip
        for kind, per in (("loc", 4), ("conf", classes)):
            h = b.add(f"{name}_mbox_{kind}", b.L.Convolution(f, num_output=n_priors * per, kernel_size=kernel,
                                                             **({"pad": kernel // 2} if kernel > 1 else {}), **GAUSS))
            h = b.add(f"{name}_mbox_{kind}_perm", b.L.Permute(h, permute_param=dict(order=[0, 2, 3, 1])))
            h = b.add(f"{name}_mbox_{kind}_flat", b.L.Flatten(h, flatten_param=dict(axis=1)))
            (locs if kind == "loc" else confs).append(h)
        pb = dict(min_size=float(min_size), aspect_ratio=ratios, flip=True, clip=False,
                  variance=[0.1, 0.1, 0.2, 0.2], offset=0.5)
        if max_size is not None:
            pb["max_size"] = float(max_size)
        if step is not None:
            pb["step"] = float(step)
        priors.append(b.add(f"{name}_mbox_priorbox", b.L.PriorBox(f, b.n.data, prior_box_param=pb)))
    loc = b.add("mbox_loc", b.L.Concat(*locs, concat_param=dict(axis=1)))
    conf = b.add("mbox_conf", b.L.Concat(*confs, concat_param=dict(axis=1)))
    prior = b.add("mbox_priorbox", b.L.Concat(*priors, concat_param=dict(axis=2)))
    c = b.add("mbox_conf_reshape", b.L.Reshape(conf, reshape_param=dict(shape=dict(dim=[0, -1, classes]))))
    c = b.add("mbox_conf_softmax", b.L.Softmax(c, softmax_param=dict(axis=2)))
    c = b.add("mbox_conf_flatten", b.L.Flatten(c, flatten_param=dict(axis=1)))
    b.add("detection_out", b.L.DetectionOutput(loc, c, prior, detection_output_param=dict(
        num_classes=classes, share_location=True, background_label_id=0, code_type=2, **detection)))


MOBILENET = ((32, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
             (512, 1), (512, 1), (1024, 2), (1024, 1))  # (output channels, stride) of conv0..conv13


def mobilenet_ssd(width, size, classes=21):
    """MobileNet-SSD (chuanqi305's layout): depthwise-separable MobileNet body with BatchNorm/Scale/ReLU,
    extra layers, six SSD heads (loc/conf 1x1 convs -> Permute -> Flatten, PriorBox), Concat, conf
    Reshape/Softmax/Flatten, DetectionOutput with NMS."""
    b = _Builder(width, size)
    x = b.n.data
    feats = {}
    cin = 3
    for i, (full, stride) in enumerate(MOBILENET):
        cout = _ch(full, width)
        if i == 0:
            x = b.conv("conv0", x, full, 3, s=2, p=1, bias=False, relu=False)
        else:
            x = b.conv(f"conv{i}/dw", x, cin, 3, s=stride, p=1, group=cin, bias=False, relu=False, full=False)
            x = b.bn_scale_relu(f"conv{i}/dw", x)
            x = b.conv(f"conv{i}", x, full, 1, bias=False, relu=False)
        x = b.bn_scale_relu(f"conv{i}", x)
        cin = cout
        feats[f"conv{i}"] = x
    for i, (mid, out) in enumerate(((256, 512), (128, 256), (128, 256), (64, 128)), start=14):
        y = b.conv(f"conv{i}_1", x, mid, 1, bias=False, relu=False)
        y = b.bn_scale_relu(f"conv{i}_1", y)
        x = b.conv(f"conv{i}_2", y, out, 3, s=2, p=1, bias=False, relu=False)
        x = b.bn_scale_relu(f"conv{i}_2", x)
        feats[f"conv{i}_2"] = x
    heads = (("conv11", 60, None, [2.0]), ("conv13", 105, 150, [2.0, 3.0]), ("conv14_2", 150, 195, [2.0, 3.0]),
             ("conv15_2", 195, 240, [2.0, 3.0]), ("conv16_2", 240, 285, [2.0, 3.0]),
             ("conv17_2", 285, 300, [2.0, 3.0]))
    _ssd_heads(b, feats, [(name, mn, mx, r, None) for name, mn, mx, r in heads], classes, kernel=1,
               detection=dict(keep_top_k=100, confidence_threshold=0.25, nms_param=dict(nms_threshold=0.45,
                                                                                         top_k=100)))
    return b.proto("MobileNet-SSD")


# Zhang et al. 2016 (colorization_deploy_v2): blocks of (channels, convs, stride of the last, dilation)
COLORIZATION = (
    (64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2), (512, 3, 1, 2), (512, 3, 1, 1))


def colorization(width, size, classes=313):
    """Zhang et al.'s colorization net: L channel in, conv blocks each ending in a BatchNorm without Scale,
    dilated blocks 5 and 6, a Deconvolution, 313 colour bins (1x1 conv), a Scale by the softmax temperature,
    Softmax, the 1x1 conv to ab, and a Silence layer on the result (which Caffe still computes)."""
    b = _Builder(width, size, channels=1)
    x = b.n.data
    for k, (full, reps, stride, dil) in enumerate(COLORIZATION, start=1):
        for i in range(1, reps + 1):
            s = stride if i == reps else 1
            name = f"conv{k}_{i}"
            x = b.add(name, b.L.Convolution(x, num_output=_ch(full, width), kernel_size=3, stride=s, pad=dil,
                                            dilation=dil, **GAUSS))
            b.add(f"relu{k}_{i}", b.L.ReLU(x, in_place=True))
        x = b.add(f"conv{k}_{reps}norm", b.L.BatchNorm(x))
    x = b.add("conv8_1", b.L.Deconvolution(x, convolution_param=dict(num_output=_ch(256, width), kernel_size=4,
                                                                     stride=2, pad=1, **GAUSS)))
    b.add("relu8_1", b.L.ReLU(x, in_place=True))
    for i in (2, 3):
        x = b.conv(f"conv8_{i}", x, 256, 3, p=1)
    x = b.add("conv8_313", b.L.Convolution(x, num_output=classes, kernel_size=1, **GAUSS))
    x = b.add("conv8_313_rh", b.L.Scale(x, bias_term=False, filler=dict(type="constant", value=2.606)))
    x = b.add("class8_313_rh", b.L.Softmax(x))
    x = b.add("class8_ab", b.L.Convolution(x, num_output=2, kernel_size=1, bias_term=False,
                                           weight_filler=dict(type="gaussian", std=1.0)))
    b.add("Silence", b.L.Silence(x, ntop=0))
    return b.proto("LtoAB")


SSD300_VGG = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def ssd300(width, size, classes=21):
    """SSD300 (VGG-16): conv1-5 with pool5 3x3/1, dilated fc6 and 1x1 fc7 as convolutions, extra layers
    conv6-9, Normalize on conv4_3 (learned per-channel scale, initially 20), six heads with PriorBox steps
    8-300, Concat, conf Reshape/Softmax/Flatten, DetectionOutput."""
    b = _Builder(width, size)
    x = b.n.data
    feats = {}
    for stage, (full, reps) in enumerate(SSD300_VGG, start=1):
        for i in range(1, reps + 1):
            x = b.conv(f"conv{stage}_{i}", x, full, 3, p=1)
        feats[f"conv{stage}_{reps}"] = x
        pool = dict(kernel_size=3, stride=1, pad=1) if stage == 5 else dict(kernel_size=2, stride=2)
        x = b.add(f"pool{stage}", b.L.Pooling(x, pool=b.P.Pooling.MAX, **pool))
    x = b.add("fc6", b.L.Convolution(x, num_output=_ch(1024, width), kernel_size=3, pad=6, dilation=6, **GAUSS))
    b.add("relu6", b.L.ReLU(x, in_place=True))
    x = b.conv("fc7", x, 1024, 1)
    feats["fc7"] = x
    for i, (mid, out, s, p) in enumerate(((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0)),
                                         start=6):
        y = b.conv(f"conv{i}_1", x, mid, 1)
        x = b.conv(f"conv{i}_2", y, out, 3, s=s, p=p)
        feats[f"conv{i}_2"] = x
    feats["conv4_3_norm"] = b.add("conv4_3_norm", b.L.Normalize(feats["conv4_3"], norm_param=dict(
        across_spatial=False, channel_shared=False, scale_filler=dict(type="constant", value=20.0))))
    heads = (("conv4_3_norm", 30, 60, [2.0], 8), ("fc7", 60, 111, [2.0, 3.0], 16),
             ("conv6_2", 111, 162, [2.0, 3.0], 32), ("conv7_2", 162, 213, [2.0, 3.0], 64),
             ("conv8_2", 213, 264, [2.0], 100), ("conv9_2", 264, 315, [2.0], 300))
    _ssd_heads(b, feats, heads, classes, kernel=3, detection=dict(
        keep_top_k=200, confidence_threshold=0.01, nms_param=dict(nms_threshold=0.45, top_k=400)))
    return b.proto("VGG_VOC0712_SSD_300x300_deploy")


def crnn(width, size, classes=37):
    """CRNN-style text recogniser: a VGG-like conv stack with BatchNorm and (2, 1) poolings down to height 1,
    Permute + Reshape to a (T, N, C) sequence, two stacked LSTMs with the sequence-start indicator `cont`
    (T, N) -- an input here, ContinuationIndicator in the CRNN ports (see tests) -- and a per-step
    InnerProduct (axis 2) + Softmax over the characters."""
    b = _Builder(width, size, channels=1)
    x = b.n.data
    steps = size[1] // 4 - 1  # two 2x2 poolings, then conv7's 2x2 kernel
    b.n.cont = b.L.Input(shape=dict(dim=[steps, 1]))
    plan = ((64, "pool"), (128, "pool"), (256, None), (256, "pool21"), (512, "bn"), (512, "pool21bn"))
    for i, (full, after) in enumerate(plan, start=1):
        x = b.conv(f"conv{i}", x, full, 3, p=1, relu="bn" not in after if after else True)
        if after and "bn" in after:
            x = b.bn_scale_relu(f"conv{i}", x)
        if after and after.startswith("pool21"):
            x = b.add(f"pool{i}", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_h=2, kernel_w=1, stride_h=2,
                                              stride_w=1))
        elif after == "pool":
            x = b.add(f"pool{i}", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=2, stride=2))
    x = b.conv("conv7", x, 512, 2, relu=True)  # height 2 -> 1
    x = b.add("permuted", b.L.Permute(x, permute_param=dict(order=[3, 0, 1, 2])))  # (W, N, C, 1)
    x = b.add("seq", b.L.Reshape(x, reshape_param=dict(shape=dict(dim=[0, 0, -1]))))
    for i in (1, 2):
        x = b.add(f"lstm{i}", b.L.LSTM(x, b.n.cont, recurrent_param=dict(num_output=_ch(256, width), **GAUSS)))
    x = b.add("fc", b.L.InnerProduct(x, num_output=classes, axis=2, **GAUSS))
    b.add("probs", b.L.Softmax(x, softmax_param=dict(axis=2)))
    return b.proto("CRNN")


C3D = ((64, 1, (1, 2)), (128, 1, (2, 2)), (256, 2, (2, 2)), (512, 2, (2, 2)), (512, 2, (2, 2)))  # out, convs, pool


def c3d(width, size, classes=487, fork: bool = True):
    """C3D (Tran et al., Sports-1M): 16-frame 112x112 clips, 3x3x3 convolutions (pad 1), Pooling3D 1x2x2 then
    2x2x2, fc6/fc7 with dropout, fc8 and softmax. fork=True writes C3D's own layer types (Convolution3D,
    Pooling3D with kernel_depth/temporal_stride/temporal_pad); fork=False the same net in this Caffe's
    layers, which is what real Caffe runs for the comparison: N-d Convolution, and each Pooling3D as
    Reshape + 2-D Pooling (time, then space), which is C3D's rule exactly for pad 0."""
    frames = 16
    fork_pools: dict[str, int] = {}
    b = _Builder(width, size, shape=[1, 3, frames, size[0], size[1]])
    x = b.n.data
    length, h, w = frames, size[0], size[1]
    stage_names = "abc"
    for stage, (full, reps, (kd, k)) in enumerate(C3D, start=1):
        for i in range(reps):
            name = f"conv{stage}{stage_names[i]}"
            out = _ch(full, width)
            if fork:  # made C3D's below, in the text (pycaffe's schema has no kernel_depth)
                conv = b.L.Convolution(x, num_output=out, kernel_size=3, pad=1, **GAUSS)
            else:  # constant fillers: this Caffe's msra filler reads num(), which 5-D weights refuse (randomized later)
                conv = b.L.Convolution(x, num_output=out, kernel_size=[3, 3, 3], pad=[1, 1, 1],
                                       weight_filler=dict(type="constant"), bias_filler=dict(type="constant"))
            x = b.add(name, conv)
            b.add(f"relu{stage}{stage_names[i]}", b.L.ReLU(x, in_place=True))
        c = _ch(full, width)
        if fork:
            x = b.add(f"pool{stage}", b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=k, stride=k))
            fork_pools[f"pool{stage}"] = kd
        else:
            if kd > 1:  # time: (N, C, L, H*W) pooled (kd, 1)
                t = b.add(f"pool{stage}_t_in", b.L.Reshape(x, reshape_param=dict(shape=dict(dim=[0, c, length, -1]))))
                t = b.add(f"pool{stage}_t", b.L.Pooling(t, pool=b.P.Pooling.MAX, kernel_h=kd, kernel_w=1,
                                                        stride_h=kd, stride_w=1))
                length = -(-(length - kd) // kd) + 1
                x = t
            s = b.add(f"pool{stage}_s_in", b.L.Reshape(x, reshape_param=dict(shape=dict(dim=[0, c * length, h, w]))))
            s = b.add(f"pool{stage}_s", b.L.Pooling(s, pool=b.P.Pooling.MAX, kernel_size=k, stride=k))
            h, w = -(-(h - k) // k) + 1, -(-(w - k) // k) + 1
            x = b.add(f"pool{stage}", b.L.Reshape(s, reshape_param=dict(shape=dict(dim=[0, c, length, h, w]))))
        if fork:
            length = -(-(length - kd) // kd) + 1
            h, w = -(-(h - k) // k) + 1, -(-(w - k) // k) + 1
    for i in (6, 7):
        x = b.add(f"fc{i}", b.L.InnerProduct(x, num_output=_ch(4096, width), **GAUSS))
        b.add(f"relu{i}", b.L.ReLU(x, in_place=True))
        b.add(f"drop{i}", b.L.Dropout(x, in_place=True, dropout_ratio=0.5))
    x = b.add("fc8", b.L.InnerProduct(x, num_output=classes, **GAUSS))
    b.add("prob", b.L.Softmax(x))
    proto = b.proto("C3D" if fork else "C3D-in-BVLC-layers")
    return _C3DText(str(proto), fork_pools) if fork else proto


class _C3DText:
    """The C3D net's prototxt text with C3D's own layer types and temporal fields, which pycaffe's schema (and so
    NetSpec) cannot hold: str() gives the text."""

    def __init__(self, text: str, pools: dict[str, int]):
        layers = text.split("layer {")
        for k, block in enumerate(layers):
            if 'type: "Convolution"' in block:
                block = block.replace('type: "Convolution"', 'type: "Convolution3D"')
                block = block.replace("convolution_param {", "convolution_param {\n    kernel_depth: 3\n"
                                                              "    temporal_pad: 1")
            name = re.search(r'name: "([^"]+)"', block)
            if 'type: "Pooling"' in block and name and name.group(1) in pools:
                kd = pools[name.group(1)]
                block = block.replace('type: "Pooling"', 'type: "Pooling3D"')
                block = block.replace("pooling_param {", f"pooling_param {{\n    kernel_depth: {kd}\n"
                                                          f"    temporal_stride: {kd}")
            layers[k] = block
        self.text = "layer {".join(layers)

    def __str__(self) -> str:
        return self.text


SEGNET = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # encoder stages: channels, convolutions


def segnet(width, size, classes=12):
    """SegNet: conv/BatchNorm/Scale/ReLU encoder whose MAX poolings also output their argmax masks, and a
    decoder that unpools with those masks (this Caffe's MaxUnPool to each encoder stage's size; SegNet's
    own fork spells it Upsample, see tests/convert/test_forks.py) and mirrors the encoder."""
    b = _Builder(width, size)
    x = b.n.data
    hw = [size]
    masks = []
    for stage, (full, reps) in enumerate(SEGNET, start=1):
        for i in range(1, reps + 1):
            x = b.conv(f"conv{stage}_{i}", x, full, 3, p=1, relu=False)
            x = b.bn_scale_relu(f"conv{stage}_{i}", x)
        x, mask = b.L.Pooling(x, pool=b.P.Pooling.MAX, kernel_size=2, stride=2, ntop=2)
        b.add(f"pool{stage}", x)
        masks.append(b.add(f"pool{stage}_mask", mask))
        h, w = hw[-1]
        hw.append((math.ceil((h - 2) / 2) + 1, math.ceil((w - 2) / 2) + 1))
    for stage in range(len(SEGNET), 0, -1):
        full, reps = SEGNET[stage - 1]
        h, w = hw[stage - 1]
        x = b.add(f"upsample{stage}", b.L.MaxUnPool(x, masks[stage - 1], max_unpool_param=dict(dst_h=h, dst_w=w)))
        outs = [full] * (reps - 1) + [SEGNET[stage - 2][0] if stage > 1 else 64]
        for i, out in enumerate(outs, start=1):
            name = f"conv{stage}_{reps - i + 1}_D"
            x = b.conv(name, x, out, 3, p=1, relu=False)
            x = b.bn_scale_relu(name, x)
    x = b.conv("conv1_1_D_score", x, classes, 3, p=1, relu=False, full=False)
    b.add("prob", b.L.Softmax(x))
    return b.proto("SegNet")


ZOO = {
    "caffenet": (alexnet, ZooNet("caffenet", "grouped conv, LRN, InnerProduct, Dropout", (227, 227),
                                 ((99, 99), (102, 101)), False)),
    "googlenet": (googlenet, ZooNet("googlenet", "inception Concat, LRN, 7x7 AVE pooling", (224, 224),
                                    ((224, 224), (230, 227)), False)),
    "resnet50": (resnet50, ZooNet("resnet50", "BatchNorm + Scale, Eltwise SUM bottlenecks", (224, 224),
                                  ((224, 224), (211, 217)), False, tol=3e-4)),
    "squeezenet": (squeezenet, ZooNet("squeezenet", "fire modules (Concat), global AVE pooling", (227, 227),
                                      ((97, 113), (128, 80)), True)),
    "fcn8s": (fcn8s, ZooNet("fcn8s", "VGG-16 FCN-8s: Deconvolution, Crop, Eltwise skips", (500, 500),
                            ((96, 80), (75, 101)), True, 21)),
    "hed": (hed, ZooNet("hed", "edge detection: side outputs, Deconvolution, repeated 'crop' names", (500, 500),
                        ((64, 80), (90, 70)), True, 1)),
    "mobilenet_ssd": (mobilenet_ssd, ZooNet("mobilenet_ssd", "depthwise conv, Permute/Flatten/Concat, PriorBox, "
                                            "DetectionOutput", (300, 300), ((300, 300), (200, 260)), True, 21,
                                            (127.5, 127.5, 127.5), 0.007843, 1e-3)),
    "segnet": (segnet, ZooNet("segnet", "pooling masks + MaxUnPool, BatchNorm + Scale", (360, 480),
                              ((64, 96), (96, 64)), False, 12)),
    "colorization": (colorization, ZooNet("colorization", "L -> ab: dilated convs, BatchNorm without Scale, "
                                          "Deconvolution, Softmax, Silence on the output", (224, 224),
                                          ((64, 64), (96, 80)), True, 313, (50.0,), 1.0)),
    "ssd300": (ssd300, ZooNet("ssd300", "VGG-16 SSD: Normalize, dilated fc6, PriorBox steps, DetectionOutput",
                              (300, 300), ((300, 300), (320, 352)), True, 21)),
    "crnn": (crnn, ZooNet("crnn", "conv + BatchNorm, (2,1) pooling, Permute/Reshape, stacked LSTM, "
                          "InnerProduct axis 2", (32, 100), ((32, 100), (32, 128)), False, 37, (127.5,), 0.0078125)),
    "c3d": (c3d, ZooNet("c3d", "C3D: Convolution3D 3x3x3, Pooling3D, fc6-8 on 16-frame clips", (112, 112),
                        ((64, 64), (64, 64)), False, 487, fork=True)),
}


def build(name: str, width: float = 1.0, size: tuple[int, int] | None = None, fork: bool = True):
    """The named zoo net as a NetParameter (deploy: an Input layer of batch 1 at `size`, default the
    published input size). fork=False: a fork net (C3D) written in this Caffe's own layers."""
    fn, meta = ZOO[name]
    if meta.fork:
        return fn(width, size or meta.size, meta.classes, fork=fork)
    return fn(width, size or meta.size, meta.classes)


def write(name: str, out_dir: str | os.PathLike, *, width: float = 1.0, sizes=None, seed: int = 0) -> dict:
    """Write the net's deploy prototxt(s) and one caffemodel with random weights (saved by Caffe). A net that
    is not size-agnostic (SegNet's unpooling sizes) gets one prototxt per size; the weights fit them all.
    Returns {"caffemodel": path, "prototxts": {(h, w): path}, "caffe_prototxts": the same, or for a fork net
    the twins real Caffe runs}."""
    caffe = load_caffe()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, meta = ZOO[name]
    sizes = list(sizes or [meta.size])
    protos, twins = {}, {}
    for size in sizes:
        for fork, suffix, into in ((True, "", protos), (False, "_caffe", twins)):
            if not fork and not meta.fork:
                continue
            path = out_dir / f"{name}_{size[0]}x{size[1]}{suffix}.prototxt"
            text = str(build(name, width, size, fork=fork))
            if width != 1:
                text = re.sub(r'^name: "([^"]*)"', rf'name: "\1-width{width:g}"', text, count=1, flags=re.M)
            path.write_text(text)
            into[size] = path
    model = out_dir / f"{name}.caffemodel"
    net = caffe.Net(str((twins or protos)[sizes[0]]), caffe.TEST)
    randomize(net, seed)
    for layer_name, blobs in net.params.items():
        if net.layer_dict[layer_name].type == "Scale":  # near 1, as in trained nets
            blobs[0].data[...] += 1.0
        if layer_name.endswith("_mbox_loc"):  # box offsets of a trained SSD are small
            blobs[0].data[...] *= 0.1
        if name == "ssd300" and layer_name.endswith("_mbox_conf"):  # and its class logits moderate
            blobs[0].data[...] *= 0.1
    calibrate_batchnorm(net, meta, seed)
    net.save(str(model))
    return {"caffemodel": model, "prototxts": protos, "caffe_prototxts": twins or protos}


def calibrate_batchnorm(net, meta: ZooNet, seed: int = 0) -> None:
    """Give every BatchNorm the statistics of what reaches it for a random image-like input with the net's
    preprocessing (as training would), so that activations stay O(1) through deep random nets instead of
    vanishing or exploding."""
    rng = np.random.default_rng(seed)
    if not any(layer.type == "BatchNorm" for layer in net.layers):
        return
    data = net.blobs["data"]
    shape = data.data.shape
    data.reshape(8, *shape[1:])  # a batch, so that 1x1 maps deep in the net still have a spread
    cont = net.blobs["cont"].data.shape if "cont" in net.blobs else None
    if cont is not None:  # a recurrent net's sequence indicator (T, N) follows the batch
        net.blobs["cont"].reshape(cont[0], 8)
    net.reshape()
    mean = np.asarray(meta.mean, np.float32).reshape(1, -1, *([1] * (len(shape) - 2)))
    data.data[...] = (rng.uniform(0, 255, data.data.shape) - mean) * meta.scale
    names = list(net._layer_names)
    start = 0  # earlier layers keep their outputs: rerun only from the last calibrated BatchNorm's producer
    for i, layer in enumerate(net.layers):
        if layer.type != "BatchNorm":
            continue
        net._forward(start, i - 1)
        bottom = net.bottom_names[names[i]][0]
        start = next(j for j in range(i - 1, -1, -1)  # the layer that wrote the blob BatchNorm works in place on
                     if bottom in net.top_names[names[j]] and bottom not in net.bottom_names[names[j]])
        x = net.blobs[bottom].data
        axes = (0,) + tuple(range(2, x.ndim))
        var = x.var(axis=axes)
        layer.blobs[0].data[...] = x.mean(axis=axes)
        layer.blobs[1].data[...] = var.mean() + 1e-3  # one variance per layer: no channel amplified on its own
        layer.blobs[2].data[...] = 1.0
    data.reshape(*shape)
    if cont is not None:
        net.blobs["cont"].reshape(*cont)
    net.reshape()
