"""Converters for layers that combine, split, reshape or index blobs: Eltwise, Concat, Slice, Split, Flatten,
Reshape, Softmax, ArgMax, Tile, Reduction, Embed, Filter, BatchReindex, Parameter, Unsqueeze."""

from __future__ import annotations

import math
from typing import Any

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, blob_shape, fmt_shape, register


@register("Eltwise")
def eltwise(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2, 1 << 30)
    ctx.tops(1)
    p = ctx.layer.eltwise_param
    op = {0: "prod", 1: "sum", 2: "max"}[p.operation]
    for name, shape in zip(ctx.layer.bottom[1:], ctx.bottom_shapes[1:], strict=True):
        if tuple(shape) != tuple(ctx.x):
            ctx.fail(f"bottoms must have equal shapes: '{ctx.layer.bottom[0]}' is {fmt_shape(ctx.x)}, "
                     f"'{name}' is {fmt_shape(shape)} (a Crop layer is usually missing)")
    coeffs = list(p.coeff)
    if coeffs and op != "sum":
        ctx.fail("coeff is only allowed with operation SUM")
    if coeffs and len(coeffs) != len(ctx.layer.bottom):
        ctx.fail(f"{len(coeffs)} coeff values for {len(ctx.layer.bottom)} bottoms; give one per bottom")
    kw: dict[str, Any] = {}
    if coeffs and any(c != 1 for c in coeffs):
        kw["coeffs"] = [float(c) for c in coeffs]
    return ModuleSpec("CaffeEltwise", (op,), kw, call="list")


@register("Concat")
def concat(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1, 1 << 30)
    ctx.tops(1)
    p = ctx.layer.concat_param
    axis = ctx.axis(p.concat_dim if p.HasField("concat_dim") else p.axis)
    for name, shape in zip(ctx.layer.bottom[1:], ctx.bottom_shapes[1:], strict=True):
        if len(shape) != len(ctx.x) or any(a != b for i, (a, b) in enumerate(zip(shape, ctx.x, strict=True))
                                           if i != axis):
            ctx.fail(f"bottom '{name}' {fmt_shape(shape)} differs from {fmt_shape(ctx.x)} outside axis {axis}")
    return ModuleSpec("CaffeConcat", (), {"axis": axis}, call="list")


@register("Slice")
def slice_(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1)
    ctx.tops(1, 1 << 30)
    p = ctx.layer.slice_param
    axis = ctx.axis(p.slice_dim if p.HasField("slice_dim") else p.axis)
    n_top = len(ctx.layer.top)
    points = list(p.slice_point)
    dim = ctx.x[axis]
    if points:
        if len(points) != n_top - 1:
            ctx.fail(f"{len(points)} slice_point values for {n_top} tops; give one fewer than the tops")
        if any(b <= a for a, b in zip([0] + points, points + [dim], strict=True)):
            ctx.fail(f"slice_point {points} must increase strictly inside (0, {dim})")
        return ModuleSpec("CaffeSlice", (), {"axis": axis, "points": points}, multi_top=True, alias=True)
    if dim % n_top:
        ctx.fail(f"axis {axis} of size {dim} does not split into {n_top} equal parts; give slice_point")
    return ModuleSpec("CaffeSlice", (), {"axis": axis, "count": n_top}, multi_top=True, alias=True)


@register("Split")
def split(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(1)
    ctx.tops(1, 1 << 30)
    return ModuleSpec("CaffeSplit", (), {"count": len(ctx.layer.top)}, multi_top=True, alias=True)


@register("Flatten")
def flatten(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.flatten_param
    start = ctx.axis(p.axis, what="axis")
    end = ctx.axis(p.end_axis, what="end_axis")
    if end < start:
        ctx.fail(f"end_axis {p.end_axis} comes before axis {p.axis}")
    kw: dict[str, Any] = {}
    if start != 1:
        kw["start_dim"] = start
    if end != len(ctx.x) - 1:
        kw["end_dim"] = end
    return ModuleSpec("nn.Flatten", (), kw, alias=True)


@register("Reshape")
def reshape(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.reshape_param
    dims = [int(d) for d in p.shape.dim]
    if sum(1 for d in dims if d == -1) > 1:
        ctx.fail("shape may contain at most one -1")
    if any(d < -1 for d in dims):
        ctx.fail(f"shape {dims} has a negative value other than -1")
    nd = len(ctx.x)
    start = p.axis if p.axis >= 0 else nd + p.axis + 1
    if not 0 <= start <= nd:
        ctx.fail(f"axis {p.axis} is out of range for {ctx.x}")
    end = nd if p.num_axes == -1 else start + p.num_axes
    if p.num_axes < -1 or end > nd:
        ctx.fail(f"num_axes {p.num_axes} is out of range for {ctx.x}")
    kw: dict[str, Any] = {}
    if p.axis != 0:
        kw["axis"] = p.axis
    if p.num_axes != -1:
        kw["num_axes"] = p.num_axes
    return ModuleSpec("CaffeReshape", (dims,), kw, alias=True)


@register("Softmax")
def softmax(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("nn.Softmax", (), {"dim": ctx.axis(ctx.layer.softmax_param.axis)})


@register("ArgMax")
def argmax(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.argmax_param
    kw: dict[str, Any] = {}
    if p.HasField("axis"):
        axis = ctx.axis(p.axis)
        kw["axis"] = axis
        dim = ctx.x[axis]
    else:
        dim = math.prod(ctx.x[1:])
    if p.top_k < 1 or p.top_k > dim:
        ctx.fail(f"top_k {p.top_k} must be between 1 and {dim}")
    if p.top_k != 1:
        kw["top_k"] = p.top_k
    if p.out_max_val:
        kw["out_max_val"] = True
    return ModuleSpec("CaffeArgMax", (), kw)


@register("Tile")
def tile(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.tile_param
    if p.tiles < 1:
        ctx.fail("tile_param.tiles must be positive")
    return ModuleSpec("CaffeTile", (), {"axis": ctx.axis(p.axis), "tiles": p.tiles})


@register("Reduction")
def reduction(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.reduction_param
    op = {1: "sum", 2: "asum", 3: "sumsq", 4: "mean"}[p.operation]
    kw: dict[str, Any] = {"axis": ctx.axis(p.axis)}
    if p.coeff != 1:
        kw["coeff"] = float(p.coeff)
    return ModuleSpec("CaffeReduction", (op,), kw)


@register("Embed")
def embed(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.embed_param
    if p.num_output <= 0 or p.input_dim <= 0:
        ctx.fail("embed_param needs positive num_output and input_dim")
    expected = [("weight", (p.input_dim, p.num_output))] + ([("bias", (p.num_output,))] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if p.bias_term else {})
    spec = ModuleSpec("CaffeEmbed", (p.input_dim, p.num_output), {} if p.bias_term else {"bias": False}, params)
    spec.notes.append(f"inputs are indices: values are truncated to integers and must lie in [0, {p.input_dim})")
    return spec


@register("Filter")
def filter_(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2, 1 << 30)
    ctx.tops(len(ctx.layer.bottom) - 1)
    selector = ctx.bottom_shapes[-1]
    if any(d != 1 for d in selector[1:]):
        ctx.fail(f"the selector (last bottom) must be (N) or (N, 1, ...), got {selector}")
    for name, shape in zip(ctx.layer.bottom[:-1], ctx.bottom_shapes[:-1], strict=True):
        if shape[0] != selector[0]:
            ctx.fail(f"bottom '{name}' {shape} has another first axis than the selector {selector}")
    spec = ModuleSpec("CaffeFilter", call="list", multi_top=True, top_shapes=list(ctx.bottom_shapes[:-1]),
                      onnx_exportable=False)
    spec.notes.append("output size depends on the selector values; shapes shown are Caffe's setup shapes")
    return spec


@register("BatchReindex")
def batch_reindex(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2)
    ctx.tops(1)
    if len(ctx.bottom_shapes[1]) != 1:
        ctx.fail(f"the index bottom must be 1-D, got {ctx.bottom_shapes[1]}")
    return ModuleSpec("CaffeBatchReindex", call="args")


@register("Parameter")
def parameter(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(0)
    ctx.tops(1)
    shape = blob_shape(ctx.layer.parameter_param.shape)
    (blob,) = ctx.blobs([("blob", shape)])
    return ModuleSpec("CaffeParameter", (list(shape),), params={"weight": blob}, call="args", returns_state=True)


@register("Unsqueeze")
def unsqueeze(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.unsqueeze_param
    if not p.HasField("dim"):
        ctx.fail("unsqueeze_param.dim is required")
    nd = len(ctx.x)
    index = p.dim + nd + 1 if p.dim < 0 else p.dim
    if not 0 <= index <= nd:
        ctx.fail(f"dim {p.dim} is out of range for a {nd}-D bottom")
    return ModuleSpec("CaffeReshape", ([1],), {"axis": index, "num_axes": 0}, alias=True)

