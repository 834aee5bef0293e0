"""Converters for the layers that work on spatial axes: convolution, deconvolution, pooling (and SPP),
inner product, im2col, crop, padding, resizing and upsampling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


def _nd(ctx: LayerCtx, repeated, h_name: str, w_name: str, nsp: int, default: int, what: str) -> tuple:
    """Caffe's N-d conv parameter rule: `what_h`/`what_w` (2-D only) or a repeated value (1 or N)."""
    p = ctx.layer.convolution_param
    if p.HasField(h_name) or p.HasField(w_name):
        if nsp != 2:
            ctx.fail(f"{h_name}/{w_name} need 2 spatial axes, the bottom {ctx.x} has {nsp}")
        if not (p.HasField(h_name) and p.HasField(w_name)) or len(repeated):
            ctx.fail(f"give both {h_name} and {w_name}, or {what} alone")
        return (getattr(p, h_name), getattr(p, w_name))
    vals = list(repeated)
    if not vals:
        return (default,) * nsp
    if len(vals) not in (1, nsp):
        ctx.fail(f"{what} has {len(vals)} values; give 1 or {nsp} (one per spatial axis)")
    return tuple(vals) * nsp if len(vals) == 1 else tuple(vals)


def _conv_geometry(ctx: LayerCtx):
    p = ctx.layer.convolution_param
    ctx.bottoms(1)
    ctx.tops(1)
    x = ctx.x
    if ctx.axis(p.axis) != 1:
        ctx.fail("only axis 1 (channels) is supported")
    nsp = len(x) - 2
    if nsp not in (1, 2, 3):
        ctx.fail(f"bottom {x} has {nsp} spatial axes; 1 to 3 are supported")
    if p.width_group != 1 or p.height_group != 1:
        ctx.fail("width_group/height_group are not supported")
    if not p.HasField("num_output"):
        ctx.fail("convolution_param.num_output is missing")
    if not len(p.kernel_size) and not (p.HasField("kernel_h") or p.HasField("kernel_w")):
        ctx.fail("convolution_param needs kernel_size (or kernel_h and kernel_w)")
    kernel = _nd(ctx, p.kernel_size, "kernel_h", "kernel_w", nsp, 0, "kernel_size")
    stride = _nd(ctx, p.stride, "stride_h", "stride_w", nsp, 1, "stride")
    pad = _nd(ctx, p.pad, "pad_h", "pad_w", nsp, 0, "pad")
    dil = list(p.dilation)
    if len(dil) not in (0, 1, nsp):
        ctx.fail(f"dilation has {len(dil)} values; give 1 or {nsp}")
    dilation = tuple(dil) * nsp if len(dil) == 1 else (tuple(dil) if dil else (1,) * nsp)
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        ctx.fail("kernel, stride and dilation must be positive")
    group = p.group
    cin, cout = x[1], p.num_output
    if group <= 0 or cin % group or cout % group:
        ctx.fail(f"group {group} must divide both the {cin} input channels and num_output {cout}")
    return nsp, cin, cout, kernel, stride, pad, dilation, group, p.bias_term


def tuple_kw(name: str, val: tuple, default: int) -> dict:
    return {} if all(v == default for v in val) else {name: val}


def _conv_kwargs(kernel, stride, pad, dilation, group: int, bias: bool) -> dict:
    """torch ConvNd / ConvTransposeNd keyword arguments, defaults left out (model.py stays short)."""
    kw = {"kernel_size": kernel, **tuple_kw("stride", stride, 1), **tuple_kw("padding", pad, 0),
          **tuple_kw("dilation", dilation, 1)}
    if group != 1:
        kw["groups"] = group
    if not bias:
        kw["bias"] = False
    return kw


@register("Convolution")
def convolution(ctx: LayerCtx) -> ModuleSpec:
    nsp, cin, cout, kernel, stride, pad, dilation, group, bias = _conv_geometry(ctx)
    expected = [("weight", (cout, cin // group) + kernel)] + ([("bias", (cout,))] if bias else [])
    blobs = ctx.blobs(expected)
    kw = _conv_kwargs(kernel, stride, pad, dilation, group, bias)
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if bias else {})
    # Large kernels (5x5 and up, e.g. FCN's fc6) run faster on CPU as one matrix multiply when the output
    # is small; Conv2dGemm decides per call and is an nn.Conv2d otherwise.
    cls = "Conv2dGemm" if nsp == 2 and group == 1 and kernel[0] * kernel[1] >= 25 else f"nn.Conv{nsp}d"
    return ModuleSpec(cls, (cin, cout), kw, params)


@register("Deconvolution")
def deconvolution(ctx: LayerCtx) -> ModuleSpec:
    nsp, cin, cout, kernel, stride, pad, dilation, group, bias = _conv_geometry(ctx)
    # Caffe's deconvolution weight is (C_in, num_output / group, k...): the ConvTranspose layout.
    expected = [("weight", (cin, cout // group) + kernel)] + ([("bias", (cout,))] if bias else [])
    blobs = ctx.blobs(expected)
    kw = _conv_kwargs(kernel, stride, pad, dilation, group, bias)
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if bias else {})
    return ModuleSpec(f"nn.ConvTranspose{nsp}d", (cin, cout), kw, params)


@register("Pooling")
def pooling(ctx: LayerCtx) -> ModuleSpec:
    p = ctx.layer.pooling_param
    ctx.bottoms(1)
    ctx.tops(1, 2)
    if len(ctx.x) != 4:
        ctx.fail(f"Caffe pools 4-D blobs only, the bottom has shape {ctx.x}")
    method = {0: "max", 1: "ave", 2: "sto"}[p.pool]
    mask = len(ctx.layer.top) == 2
    if mask and method != "max":
        ctx.fail("only MAX pooling has a second (mask) top")
    kw = _pool_geometry(ctx, p)
    if mask:
        return ModuleSpec("CaffeMaxPoolMask", (), kw, multi_top=True)
    spec = ModuleSpec("CaffePool2d", (method,), kw)
    if method == "sto":
        spec.notes.append("STOCHASTIC pooling at test time: sum(x^2) / sum(x) per window (Caffe's "
                          "StoPoolForwardTest GPU kernel; this Caffe's CPU build has no STOCHASTIC forward)")
    return spec


def _pool_geometry(ctx: LayerCtx, p) -> dict[str, Any]:
    """CaffePool2d/CaffeMaxPoolMask keyword arguments from a PoolingParameter, with Caffe's checks."""

    def pair(single: str, h: str, w: str, default: int | None) -> tuple[int, int] | None:
        if p.HasField(h) or p.HasField(w):
            if p.HasField(single) or not (p.HasField(h) and p.HasField(w)):
                ctx.fail(f"give {single} alone, or both {h} and {w}")
            return (getattr(p, h), getattr(p, w))
        if p.HasField(single):
            return (getattr(p, single),) * 2
        return None if default is None else (default, default)

    pad = pair("pad", "pad_h", "pad_w", 0)
    stride = pair("stride", "stride_h", "stride_w", 1)
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            ctx.fail("global_pooling takes no kernel size")
        if pad != (0, 0) or stride != (1, 1):
            ctx.fail("global_pooling needs pad 0 and stride 1")
        return {"kernel_size": (0, 0), "global_pooling": True}
    kernel = pair("kernel_size", "kernel_h", "kernel_w", None)
    if kernel is None or min(kernel) <= 0:
        ctx.fail("pooling_param needs a positive kernel_size (or kernel_h and kernel_w)")
    if min(stride) <= 0:
        ctx.fail("stride must be positive")
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        ctx.fail(f"pad {pad} must be smaller than the kernel {kernel} (Caffe's own check)")
    kw: dict[str, Any] = {"kernel_size": kernel, "stride": stride}
    if pad != (0, 0):
        kw["padding"] = pad
    if not p.ceil_mode:
        kw["ceil_mode"] = False
    return kw


@register("InnerProduct")
def inner_product(ctx: LayerCtx) -> ModuleSpec:
    p = ctx.layer.inner_product_param
    ctx.bottoms(1)
    ctx.tops(1)
    axis = ctx.axis(p.axis)
    k = math.prod(ctx.x[axis:])
    n = p.num_output
    if n <= 0:
        ctx.fail("inner_product_param.num_output must be positive")
    wshape = (k, n) if p.transpose else (n, k)
    expected = [("weight", wshape)] + ([("bias", (n,))] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    weight = np.ascontiguousarray(blobs[0].T) if p.transpose else blobs[0]
    params = {"weight": weight} | ({"bias": blobs[1]} if p.bias_term else {})
    kw: dict[str, Any] = {}
    if not p.bias_term:
        kw["bias"] = False
    if axis != 1:
        kw["axis"] = axis
    spec = ModuleSpec("CaffeInnerProduct", (k, n), kw, params)
    if p.transpose:
        spec.notes.append("transpose: true; the weight was transposed to (out, in)")
    return spec


@register("Crop")
def crop(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2)
    ctx.tops(1)
    p = ctx.layer.crop_param
    axis = ctx.axis(p.axis)
    offsets = [int(o) for o in p.offset]
    n_crop = len(ctx.x) - axis
    if len(offsets) > 1 and len(offsets) != n_crop:
        ctx.fail(f"{len(offsets)} offsets for {n_crop} cropped axes; give one, or one per axis from {axis}")
    like = ctx.bottom_shapes[1]
    if len(like) != len(ctx.x):
        ctx.fail(f"the reference bottom {like} must have as many axes as {ctx.x}")
    for i in range(axis, len(ctx.x)):
        off = offsets[0] if len(offsets) == 1 else (offsets[i - axis] if offsets else 0)
        if off + like[i] > ctx.x[i]:
            ctx.fail(f"crop of axis {i} to size {like[i]} at offset {off} exceeds the bottom size {ctx.x[i]}")
    return ModuleSpec("CaffeCrop", (), {"axis": axis, "offsets": offsets}, call="args", alias=True)


@register("SPP")
def spp(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.spp_param
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")
    method = {0: "max", 1: "ave"}.get(p.pool)
    if method is None:
        ctx.fail("STOCHASTIC SPP has no CPU implementation in Caffe; use MAX or AVE")
    if p.pyramid_height < 1:
        ctx.fail("spp_param.pyramid_height must be at least 1")
    h, w = ctx.x[2], ctx.x[3]
    for level in range(p.pyramid_height):
        bins = 2 ** level
        for n, axis in ((h, "height"), (w, "width")):
            k = -(-n // bins)
            if (k * bins - n + 1) // 2 >= k:
                ctx.fail(f"input {axis} {n} is too small for pyramid level {level} ({bins} bins): Caffe's pooling "
                         "would need a pad as large as its kernel; lower pyramid_height")
    return ModuleSpec("CaffeSPP", (p.pyramid_height,), {"method": method})


@register("Im2col")
def im2col(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.convolution_param
    if len(ctx.x) != 4 or ctx.axis(p.axis) != 1:
        ctx.fail(f"only 2-D images with channels on axis 1 are supported, the bottom is {ctx.x}")
    kernel = _nd(ctx, p.kernel_size, "kernel_h", "kernel_w", 2, 0, "kernel_size")
    stride = _nd(ctx, p.stride, "stride_h", "stride_w", 2, 1, "stride")
    pad = _nd(ctx, p.pad, "pad_h", "pad_w", 2, 0, "pad")
    dil = list(p.dilation)
    if len(dil) not in (0, 1, 2):
        ctx.fail(f"dilation has {len(dil)} values; give 1 or 2")
    dilation = tuple(dil) * 2 if len(dil) == 1 else (tuple(dil) if dil else (1, 1))
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        ctx.fail("kernel, stride and dilation must be positive")
    return ModuleSpec("CaffeIm2col", (kernel,), {**tuple_kw("stride", stride, 1), **tuple_kw("padding", pad, 0),
                                                  **tuple_kw("dilation", dilation, 1)})


@register("PixelShuffle")
def pixel_shuffle(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    r = ctx.layer.pixelshuffle_param.upscale_factor
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")
    if r <= 0 or ctx.x[1] % (r * r):
        ctx.fail(f"upscale_factor {r}: its square must divide the {ctx.x[1]} channels")
    return ModuleSpec("nn.PixelShuffle", (r,))


@register("Upsample")
def upsample(ctx: LayerCtx) -> ModuleSpec:
    p = ctx.layer.upsample_param
    ctx.bottoms(1, 2)
    ctx.tops(1)
    if len(ctx.layer.bottom) == 1:  # this Caffe's nearest-neighbour Upsample
        if p.dims_num not in (3, 4):
            ctx.fail(f"dims_num must be 3 or 4, got {p.dims_num}")
        if p.scale < 1:
            ctx.fail(f"scale must be positive, got {p.scale}")
        return ModuleSpec("CaffeUpsampleNearest", (), {"scale": int(p.scale), "axes": 2 if p.dims_num == 4 else 1})
    # SegNet's Upsample (alexgkendall/caffe-segnet upsample_layer.cpp): unpooling by the mask bottom
    if len(ctx.x) != 4 or tuple(ctx.bottom_shapes[1]) != tuple(ctx.x):
        ctx.fail(f"data and mask bottoms must be 4-D of equal shape, got {ctx.x} and {ctx.bottom_shapes[1]}")
    kw: dict[str, Any] = {}
    if p.HasField("upsample_h") or p.HasField("upsample_w"):
        if not (p.HasField("upsample_h") and p.HasField("upsample_w")):
            ctx.fail("give both upsample_h and upsample_w")
        kw = {"height": int(p.upsample_h), "width": int(p.upsample_w)}
    else:
        if p.HasField("scale_h") or p.HasField("scale_w"):
            if p.HasField("scale") or not (p.HasField("scale_h") and p.HasField("scale_w")):
                ctx.fail("give scale alone, or both scale_h and scale_w")
            sh, sw = int(p.scale_h), int(p.scale_w)
        else:
            sh = sw = int(p.scale) if p.HasField("scale") else 2  # SegNet's default scale is 2
        if sh < 2 or sw < 2:
            ctx.fail(f"SegNet's Upsample needs scales > 1, got {sh}, {sw}")
        if (p.pad_out_h and sh != 2) or (p.pad_out_w and sw != 2):
            ctx.fail("pad_out_h/pad_out_w need scale 2 (SegNet's rule)")
        kw = {"scale_h": sh, "scale_w": sw}
        if p.pad_out_h:
            kw["pad_out_h"] = 1
        if p.pad_out_w:
            kw["pad_out_w"] = 1
    spec = ModuleSpec("CaffeMaxUnpool", (), kw, call="args")
    spec.notes.append("SegNet's two-input Upsample (caffe-segnet fork): values written at the pooling mask's "
                      "positions, zeros elsewhere")
    return spec


@register("MaxUnPool")
def max_unpool(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2)
    ctx.tops(1)
    p = ctx.layer.max_unpool_param
    if not (p.HasField("dst_h") and p.HasField("dst_w")):
        ctx.fail("max_unpool_param needs dst_h and dst_w")
    if len(ctx.x) != 4 or tuple(ctx.bottom_shapes[1]) != tuple(ctx.x):
        ctx.fail(f"data and mask bottoms must be 4-D of equal shape, got {ctx.x} and {ctx.bottom_shapes[1]}")
    return ModuleSpec("CaffeMaxUnpool", (), {"height": int(p.dst_h), "width": int(p.dst_w)}, call="args")


@register("Pad")
def pad(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    if ctx.layer.top[0] == ctx.layer.bottom[0]:
        ctx.fail("Pad cannot run in place (Caffe's own check)")
    p = ctx.layer.pad_param
    if len(ctx.x) != 4:
        ctx.fail(f"this Caffe pads 4-D blobs correctly only, the bottom is {ctx.x}")
    pads = [int(p.pad_u), int(p.pad_d), int(p.pad_l), int(p.pad_r)]
    if any(v < 0 for v in pads) and not all(v < 0 for v in pads):
        ctx.fail(f"pads {pads} mix negative and non-negative values; Caffe crops only when all four are negative")
    mode = {0: "constant", 1: "replicate", 2: "reflect"}[p.pad_type]
    if mode == "reflect" and (max(pads[:2]) >= ctx.x[2] or max(pads[2:]) >= ctx.x[3]):
        ctx.fail(f"reflect padding {pads} must be smaller than the input {ctx.x[2:]}")
    kw: dict[str, Any] = {"mode": mode}
    if mode == "constant" and p.pad_value != 0:
        kw["value"] = float(p.pad_value)
    return ModuleSpec("CaffePad", (pads,), kw)


@register("Resize")
def resize(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.resize_param
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")
    if p.is_pyramid_test:
        if not (p.HasField("out_height_scale") and p.HasField("out_width_scale")):
            ctx.fail("is_pyramid_test needs out_height_scale and out_width_scale")
        return ModuleSpec("CaffeResize", (), {"height_scale": float(p.out_height_scale),
                                              "width_scale": float(p.out_width_scale)})
    if not (p.HasField("height") and p.HasField("width")) or min(p.height, p.width) <= 0:
        ctx.fail("resize_param needs positive height and width")
    return ModuleSpec("CaffeResize", (), {"height": int(p.height), "width": int(p.width)})


@register("BilinearInterpolate")
def bilinear_interpolate(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.bilinear_interpolate_param
    if len(ctx.x) != 4:
        ctx.fail(f"needs a 4-D bottom, got {ctx.x}")
    has_dst = p.HasField("dst_h") or p.HasField("dst_w")
    if has_dst == p.HasField("scale_factor"):
        ctx.fail("give dst_h/dst_w or scale_factor, not both and not neither (Caffe leaves the size undefined)")
    h, w = ctx.x[2], ctx.x[3]
    if has_dst:
        dst_h = int(p.dst_h) if p.HasField("dst_h") else h
        dst_w = int(p.dst_w) if p.HasField("dst_w") else w
    else:  # fixed at setup from the declared input size, as Caffe does
        sf = np.float32(p.scale_factor)
        dst_h, dst_w = int(np.float32(h) * sf), int(np.float32(w) * sf)
    if min(h, w) < 2:
        ctx.fail(f"needs an input of at least 2 x 2, got {h} x {w} (Caffe reads outside it otherwise)")
    if min(dst_h, dst_w) < 1 or (p.align_corners and min(dst_h, dst_w) < 2):
        ctx.fail(f"output {dst_h} x {dst_w} is too small (align_corners needs 2 x 2)")
    spec = ModuleSpec("CaffeInterp", (), {"height": dst_h, "width": dst_w, "align_corners": bool(p.align_corners)},
                      call="list")
    spec.notes.append(f"output size {dst_h} x {dst_w} fixed at conversion, as Caffe fixes it at setup")
    return spec

