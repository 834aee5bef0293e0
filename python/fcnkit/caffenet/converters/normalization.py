"""Converters for normalisation layers: LRN, BatchNorm (and this Caffe's BatchNormKyle), Scale, Bias, MVN."""

from __future__ import annotations

from typing import Any

import numpy as np

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


@register("LRN")
def lrn(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.lrn_param
    if p.local_size % 2 != 1:
        ctx.fail(f"local_size must be odd (Caffe's rule), got {p.local_size}")
    within = p.norm_region == 1
    if within and len(ctx.x) != 4:
        ctx.fail(f"WITHIN_CHANNEL needs a 4-D bottom, got {ctx.x}")
    if not within and len(ctx.x) < 3:
        ctx.fail(f"ACROSS_CHANNELS needs a bottom with at least 3 axes, got {ctx.x}")
    kw: dict[str, Any] = {"alpha": p.alpha, "beta": p.beta, "k": p.k}
    if within:
        kw["within_channel"] = True
    return ModuleSpec("CaffeLRN", (p.local_size,), kw)


@register("BatchNorm")
def batch_norm(ctx: LayerCtx) -> ModuleSpec:
    return _batch_norm(ctx, False)


def _batch_norm(ctx: LayerCtx, affine: bool) -> ModuleSpec:
    """BatchNorm, and this Caffe's BatchNormKyle (same rule, plus alpha/beta blobs with use_alpha_beta)."""
    ctx.unary()
    p = ctx.layer.batch_norm_param
    c = 1 if len(ctx.x) == 1 else ctx.x[1]
    expected = [("mean", (c,)), ("variance", (c,)), ("moving-average factor", (1,))]
    if affine:
        expected += [("alpha", (c,)), ("beta", (c,))]
    blobs = ctx.blobs(expected)
    mean, var, factor = blobs[:3]
    f = np.float32(factor.reshape(-1)[0])
    scale = np.float32(0) if f == 0 else np.float32(1) / f
    global_stats = p.use_global_stats if p.HasField("use_global_stats") else True
    kw: dict[str, Any] = {}
    if p.eps != np.float32(1e-5):
        kw["eps"] = float(p.eps)
    if not global_stats:
        kw["use_global_stats"] = False
    params = {"running_mean": (mean * scale).astype(np.float32), "running_var": (var * scale).astype(np.float32)}
    if affine:
        kw["affine"] = True
        params |= {"weight": blobs[3], "bias": blobs[4]}
    spec = ModuleSpec("CaffeBatchNorm", (c,), kw, params)
    spec.notes.append(f"mean and variance divided by Caffe's moving-average factor {float(f):g}")
    if not global_stats:
        spec.notes.append("use_global_stats: false, so batch statistics are used even at inference")
    return spec


def _param_shape(ctx: LayerCtx, axis_field: int, num_axes: int) -> tuple[int, tuple[int, ...]]:
    axis = ctx.axis(axis_field)
    if num_axes < -1:
        ctx.fail(f"num_axes must be >= -1, got {num_axes}")
    end = len(ctx.x) if num_axes == -1 else axis + num_axes
    if end > len(ctx.x):
        ctx.fail(f"axis {axis} + num_axes {num_axes} exceeds the {len(ctx.x)} axes of {ctx.x}")
    return axis, tuple(ctx.x[axis:end])


def _by_blob_axis(ctx: LayerCtx, axis_field: int) -> tuple[int, tuple[int, ...]]:
    other = ctx.bottom_shapes[1]
    axis = 0 if len(other) == 0 else ctx.axis(axis_field)
    if tuple(ctx.x[axis:axis + len(other)]) != tuple(other):
        ctx.fail(f"second bottom {other} must match axes {axis}.. of the first {ctx.x}")
    return axis, tuple(other)


@register("Scale")
def scale(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1, 2)
    ctx.tops(1)
    p = ctx.layer.scale_param
    if len(ctx.layer.bottom) == 2:
        axis, shape = _by_blob_axis(ctx, p.axis)
        if p.bias_term:
            (b,) = ctx.blobs([("bias", shape)])
            return ModuleSpec("CaffeScaleByBlob", (), {"axis": axis, "bias_shape": list(shape)},
                              {"bias": b}, call="args")
        return ModuleSpec("CaffeScaleByBlob", (), {"axis": axis}, call="args")
    axis, shape = _param_shape(ctx, p.axis, p.num_axes)
    if len(shape) == 0:
        axis = 0
    expected = [("scale", shape)] + ([("bias", shape)] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if p.bias_term else {})
    kw: dict[str, Any] = {"axis": axis}
    if p.bias_term:
        kw["bias"] = True
    return ModuleSpec("CaffeScale", (list(shape),), kw, params)


@register("Bias")
def bias(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1, 2)
    ctx.tops(1)
    p = ctx.layer.bias_param
    if len(ctx.layer.bottom) == 2:
        axis, _ = _by_blob_axis(ctx, p.axis)
        return ModuleSpec("CaffeBiasByBlob", (), {"axis": axis}, call="args")
    axis, shape = _param_shape(ctx, p.axis, p.num_axes)
    if len(shape) == 0:
        axis = 0
    (b,) = ctx.blobs([("bias", shape)])
    return ModuleSpec("CaffeBias", (list(shape),), {"axis": axis}, {"bias": b})


@register("MVN")
def mvn(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.mvn_param
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got shape {ctx.x}")
    return ModuleSpec("CaffeMVN", (), {"normalize_variance": p.normalize_variance,
                                       "across_channels": p.across_channels, "eps": float(p.eps)})


@register("BatchNormKyle")
def batch_norm_kyle(ctx: LayerCtx) -> ModuleSpec:
    return _batch_norm(ctx, ctx.layer.batch_norm_param.use_alpha_beta)

