"""Converters for layers that exist only in forks of Caffe (this Caffe cannot run them).
(What is known about forks' prototxt fields, `FORK_FIELDS`, lives with the schema in
`fcnkit.io.caffe_schema`.)

Each rule below follows the fork's published C++ source (cited per layer); `tests/convert/test_forks.py`
checks them against values computed by hand from the same rules. They register into `fcnkit.caffenet.registry.LAYERS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fcnkit.caffenet.converters.spatial import tuple_kw
from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


@register("Interp")
def interp(ctx: LayerCtx) -> ModuleSpec:
    """DeepLab v2 / PSPNet Interp (deeplab-public-ver2 src/caffe/layers/interp_layer.cpp and
    util/interp.cpp): crop by pad_beg/pad_end (<= 0), then align-corners bilinear resize; a same-size
    resize is a copy. Size: shrink_factor only, zoom_factor only, height and width, shrink then zoom; a
    second bottom gives the size when no size parameter is set."""
    ctx.bottoms(1, 2)
    ctx.tops(1)
    p = ctx.layer.interp_param
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")
    if p.pad_beg > 0 or p.pad_end > 0:
        ctx.fail("pad_beg/pad_end must be <= 0 (Interp only crops)")
    kw: dict[str, Any] = {}
    shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
    if shrink or zoom:
        if (shrink and p.shrink_factor < 1) or (zoom and p.zoom_factor < 1):
            ctx.fail("shrink_factor and zoom_factor must be at least 1")
        if shrink:
            kw["shrink_factor"] = int(p.shrink_factor)
        if zoom:
            kw["zoom_factor"] = int(p.zoom_factor)
    elif p.HasField("height") and p.HasField("width"):
        if min(p.height, p.width) <= 0:
            ctx.fail("height and width must be positive")
        kw = {"height": int(p.height), "width": int(p.width)}
    elif len(ctx.layer.bottom) != 2:
        ctx.fail("interp_param needs zoom_factor, shrink_factor, or height and width (or a second bottom)")
    if len(ctx.layer.bottom) == 2 and kw:
        ctx.fail("give either a second bottom or size parameters, not both")
    if min(ctx.x[2:]) + p.pad_beg + p.pad_end <= 0:
        ctx.fail(f"pad_beg {p.pad_beg} / pad_end {p.pad_end} crop away the whole input {ctx.x}")
    if p.pad_beg:
        kw["pad_beg"] = int(p.pad_beg)
    if p.pad_end:
        kw["pad_end"] = int(p.pad_end)
    spec = ModuleSpec("CaffeInterp", (), kw, call="list")
    spec.notes.append("DeepLab/PSPNet fork layer: align-corners bilinear (interp_layer.cpp)")
    return spec


@register("BN")
def bn(ctx: LayerCtx) -> ModuleSpec:
    """BN of two forks, told apart by the caffemodel's blob count (all blobs (1, C, 1, 1)):
    * 4 blobs (yjxiong/caffe, PSPNet; this sdist's src/caffe/layers/bn_layer.cpp): slope, bias, mean,
      variance; at test time slope * (x - mean) / sqrt(variance + eps) + bias, eps from bn_param.eps.
    * 2 blobs (alexgkendall/caffe-segnet bn_layer.cpp): scale, shift; bn_mode INFERENCE gives
      scale * x + shift, LEARN normalises by the batch's own mean and E(x^2) - E(x)^2 with eps 1e-9."""
    ctx.bottoms(1)
    ctx.tops(1)
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got {ctx.x}")
    c = ctx.x[1]
    p = ctx.layer.bn_param
    n_blobs = len(ctx.weights.blobs) if ctx.weights is not None else 0
    shape = (1, c, 1, 1)
    if n_blobs == 4:
        slope, bias, mean, var = (b.reshape(c) for b in ctx.blobs([("slope", shape), ("bias", shape),
                                                                    ("mean", shape), ("variance", shape)]))
        kw = {} if p.eps == np.float32(1e-5) else {"eps": float(p.eps)}
        spec = ModuleSpec("CaffeBN", (c,), kw, {"weight": slope, "bias": bias, "running_mean": mean,
                                                "running_var": var})
        spec.notes.append("BN of yjxiong/caffe (PSPNet): slope * (x - mean) / sqrt(var + eps) + bias")
        return spec
    if n_blobs != 2:
        ctx.fail(f"has {n_blobs} blob(s) in the caffemodel; a BN layer has 4 (slope, bias, mean, variance; "
                 "yjxiong/PSPNet) or 2 (scale, shift; SegNet)")
    scale, shift = (b.reshape(c) for b in ctx.blobs([("scale", shape), ("shift", shape)]))
    if p.bn_mode == 1:  # INFERENCE
        spec = ModuleSpec("CaffeScale", ([c],), {"axis": 1, "bias": True}, {"weight": scale, "bias": shift})
        spec.notes.append("SegNet BN in INFERENCE mode: scale * x + shift")
        return spec
    spec = ModuleSpec("CaffeBN", (c,), {"eps": 1e-9, "batch_stats": True},
                      {"weight": scale, "bias": shift, "running_mean": np.zeros(c, np.float32),
                       "running_var": np.ones(c, np.float32)})
    spec.notes.append("SegNet BN in LEARN mode: normalised by the batch's own statistics, even at test time "
                      "(SegNet's compute_bn_statistics.py turns a net into INFERENCE mode)")
    return spec


@register("ShuffleChannel")
def shuffle_channel(ctx: LayerCtx) -> ModuleSpec:
    """ShuffleNet's ShuffleChannel (farmingyard/ShuffleNet shuffle_channel_layer.cpp): input channel
    i * (C / group) + j goes to output channel j * group + i."""
    ctx.bottoms(1)
    ctx.tops(1)
    g = ctx.layer.shuffle_channel_param.group
    if len(ctx.x) < 2 or g < 1 or ctx.x[1] % g:
        ctx.fail(f"group {g} must divide the channels of {ctx.x}")
    return ModuleSpec("CaffeShuffleChannel", (int(g),))


@register("ConvolutionDepthwise", "DepthwiseConvolution")
def convolution_depthwise(ctx: LayerCtx) -> ModuleSpec:
    """MobileNet's depthwise convolution (yonghenglh6/DepthwiseConvolution conv_dw_layer.cpp): one
    kernel_h x kernel_w filter per input channel (weight (C, 1, kh, kw), bias (C)), whatever num_output
    and group say; floor output size."""
    ctx.bottoms(1)
    ctx.tops(1)
    p = ctx.layer.convolution_param
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")

    def two(h: str, w: str, rep, default: int) -> tuple[int, int]:
        if p.HasField(h) and p.HasField(w):
            return (getattr(p, h), getattr(p, w))
        vals = list(rep)
        if not vals:
            return (default, default)
        return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])

    kernel = two("kernel_h", "kernel_w", p.kernel_size, 0)
    stride = two("stride_h", "stride_w", p.stride, 1)
    pad = two("pad_h", "pad_w", p.pad, 0)
    dil = list(p.dilation) or [1]
    dilation = (dil[0], dil[0]) if len(dil) == 1 else (dil[0], dil[1])
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        ctx.fail("convolution_param needs a positive kernel size, stride and dilation")
    c = ctx.x[1]
    expected = [("weight", (c, 1) + kernel)] + ([("bias", (c,))] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    kw: dict[str, Any] = {"kernel_size": kernel, **tuple_kw("stride", stride, 1), **tuple_kw("padding", pad, 0),
                          **tuple_kw("dilation", dilation, 1), "groups": c}
    if not p.bias_term:
        kw["bias"] = False
    spec = ModuleSpec("nn.Conv2d", (c, c), kw, {"weight": blobs[0]} | ({"bias": blobs[1]} if p.bias_term else {}))
    spec.notes.append("depthwise convolution (fork layer): one filter per channel")
    return spec


@register("Axpy")
def axpy(ctx: LayerCtx) -> ModuleSpec:
    """SENet's Axpy (hujie-frank/SENet axpy_layer.cpp): bottoms a (N, C[, 1, 1]), x, y; top a * x + y."""
    ctx.bottoms(3)
    ctx.tops(1)
    a, x, y = ctx.bottom_shapes
    if tuple(x) != tuple(y) or len(x) < 2 or tuple(a[:2]) != tuple(x[:2]) or any(d != 1 for d in a[2:]):
        ctx.fail(f"needs a (N, C, 1, 1) scale and two equal (N, C, ...) blobs, got {a}, {x}, {y}")
    return ModuleSpec("CaffeAxpy", call="args")


@register("Convolution3D")
def convolution3d(ctx: LayerCtx) -> ModuleSpec:
    """C3D's Convolution3D (facebook/C3D convolution3d_layer.cpp): a plain 3-D convolution of an
    (N, C, L, H, W) blob, kernel kernel_depth x kernel_size x kernel_size, temporal_stride/stride,
    temporal_pad/pad; weights (num_output, C, kd, k, k), bias (num_output). filter_group only splits the
    outputs' computation (every group sees all input channels), so it changes nothing here."""
    p = ctx.layer.convolution_param
    ctx.unary()
    if len(ctx.x) != 5:
        ctx.fail(f"needs a 5-D bottom (N, C, L, H, W), got {ctx.x}; C3D nets take clips, e.g. "
                 "--input-shape data=1,3,16,112,112")
    k = p.kernel_size[0] if len(p.kernel_size) else 0
    kd, s = p.kernel_depth, p.stride[0] if len(p.stride) else 1
    pad = p.pad[0] if len(p.pad) else 0
    if len(p.kernel_size) > 1 or len(p.stride) > 1 or len(p.pad) > 1 or p.group != 1:
        ctx.fail("C3D's Convolution3D takes one kernel_size/stride/pad (spatial) plus kernel_depth, "
                 "temporal_stride, temporal_pad, and no group")
    if k <= 0 or kd <= 0 or s <= 0 or p.temporal_stride <= 0 or p.num_output <= 0:
        ctx.fail("convolution_param needs positive num_output, kernel_size, kernel_depth and strides")
    if p.num_output % max(p.filter_group, 1):
        ctx.fail(f"filter_group {p.filter_group} must divide num_output {p.num_output} (C3D's check)")
    cin, cout = ctx.x[1], p.num_output
    kernel = (kd, k, k)
    expected = [("weight", (cout, cin) + kernel)] + ([("bias", (cout,))] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    kw = {"kernel_size": kernel, **tuple_kw("stride", (p.temporal_stride, s, s), 1),
          **tuple_kw("padding", (p.temporal_pad, pad, pad), 0)}
    if not p.bias_term:
        kw["bias"] = False
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if p.bias_term else {})
    spec = ModuleSpec("nn.Conv3d", (cin, cout), kw, params)
    spec.notes.append("C3D Convolution3D (facebook/C3D): a 3-D convolution")
    return spec


@register("Pooling3D")
def pooling3d(ctx: LayerCtx) -> ModuleSpec:
    """C3D's Pooling3D (facebook/C3D pool3d_layer.cpp), see CaffePool3d."""
    p = ctx.layer.pooling_param
    ctx.unary()
    if len(ctx.x) != 5:
        ctx.fail(f"needs a 5-D bottom (N, C, L, H, W), got {ctx.x}")
    method = {0: "max", 1: "ave"}.get(p.pool)
    if method is None:
        ctx.fail("C3D's Pooling3D has MAX and AVE only (STOCHASTIC is NOT_IMPLEMENTED there)")
    if p.HasField("kernel_h") or p.HasField("pad_h") or p.HasField("stride_h") or p.global_pooling:
        ctx.fail("C3D's Pooling3D takes kernel_size, stride, pad, kernel_depth, temporal_stride only")
    k, kd, s, ts = p.kernel_size, p.kernel_depth, p.stride, p.temporal_stride
    if k <= 0 or kd <= 0 or s <= 0 or ts <= 0:
        ctx.fail("pooling_param needs positive kernel_size, kernel_depth, stride and temporal_stride")
    if p.pad and method == "max":
        ctx.fail("C3D pads only AVE pooling (its own CHECK); remove pad")
    if p.pad >= k:
        ctx.fail(f"pad {p.pad} must be smaller than kernel_size {k}")
    if s > k or ts > kd:  # C3D would pool windows that start past the input (empty: -FLT_MAX or 0/-n)
        ctx.fail(f"strides ({ts}, {s}) larger than the window ({kd}, {k}) are not supported (C3D pools empty "
                 "windows past the input there)")
    kw: dict[str, Any] = {"kernel_size": (kd, k, k), "stride": (ts, s, s)}
    if p.pad:
        kw["pad"] = p.pad
    spec = ModuleSpec("CaffePool3d", (method,), kw)
    spec.notes.append("C3D Pooling3D (facebook/C3D): ceil size rule, windows clipped to the input")
    return spec
