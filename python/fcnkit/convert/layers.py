"""One small function per Caffe layer type, registered by type name in `LAYERS`.

Each converter gets a `LayerCtx` (the LayerParameter, the shapes of its bottoms at the declared input
size, and its caffemodel blobs) and returns a `ModuleSpec`: which module class to build with which
arguments, and the state tensors (torch layout) to load into it. Blob count and shape checks happen
here, against the shapes Caffe itself would create, so a mismatched caffemodel names the layer and
both shapes.

`INPUTS` does the same for layers that only produce net inputs (Input, Data, ...), and
`TRAINING_ONLY` lists types that have no place in an inference module (losses, accuracy, Silence).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import WeightLayer


@dataclass
class ModuleSpec:
    cls: str                                  # "nn.Conv2d" or a runtime class name such as "CaffePool2d"
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # state_dict entries, relative names
    call: str = "single"      # "single": m(x); "list": m([a, b, ...]); "args": m(a, b)
    multi_top: bool = False   # the module returns a list, one tensor per top
    inplace_capable: bool = False  # module takes `inplace=True` (set by the graph when it is safe)
    alias: bool = False       # tops may share memory with bottom 0 (views / identity)
    notes: list[str] = field(default_factory=list)
    # Caffe's top shapes at setup, for layers whose output size depends on the data (Filter, detection
    # outputs): the graph records these instead of running the module on the meta device.
    top_shapes: list[tuple[int, ...]] | None = None
    returns_state: bool = False  # the top is the module's own parameter: later layers must not modify it
    onnx_exportable: bool = True  # False: data-dependent post-processing, left out of model.onnx
    plugin: tuple[str, str] | None = None  # (module, class) of a user-supplied --plugin layer


@dataclass
class LayerCtx:
    layer: Any                                # fcnkit_caffe.LayerParameter
    bottom_shapes: list[tuple[int, ...]]
    weights: WeightLayer | None
    prototxt: str
    caffemodel: str
    occurrence: int = 1               # k-th layer with this name (Caffe allows repeated names)
    tops_consumed: bool = True        # a later layer reads one of this layer's tops
    plugins: tuple = ()               # imported --plugin modules

    @property
    def name(self) -> str:
        return self.layer.name

    def fail(self, msg: str) -> NoReturn:
        raise UserError(f"{self.prototxt}: layer '{self.layer.name}' ({self.layer.type}): {msg}")

    @property
    def x(self) -> tuple[int, ...]:
        return self.bottom_shapes[0]

    def axis(self, axis: int, ndim: int | None = None, what: str = "axis") -> int:
        """Caffe's CanonicalAxisIndex."""
        nd = len(self.x) if ndim is None else ndim
        if not -nd <= axis < nd:
            self.fail(f"{what} {axis} is out of range for a {nd}-D bottom of shape {self.x}")
        return axis + nd if axis < 0 else axis

    def bottoms(self, lo: int, hi: int | None = None) -> None:
        n, hi = len(self.layer.bottom), lo if hi is None else hi
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            self.fail(f"takes {want} bottom blob(s), the prototxt gives {n}; fix its bottom list")

    def tops(self, lo: int, hi: int | None = None) -> None:
        n, hi = len(self.layer.top), lo if hi is None else hi
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            self.fail(f"produces {want} top blob(s) here, the prototxt asks for {n}")

    def blobs(self, expected: list[tuple[str, tuple[int, ...]]]) -> list[np.ndarray]:
        """The caffemodel blobs of this layer, checked against what Caffe would create for it.

        expected: (role, Caffe shape) per blob. Returns float32 arrays reshaped to those shapes.
        """
        w = self.weights
        roles = ", ".join(role for role, _ in expected)
        if self.occurrence > 1:
            raise UserError(f"{self.prototxt}: layer '{self.name}' ({self.layer.type}) is the {_nth(self.occurrence)} "
                            f"layer named '{self.name}' and has weights ({roles}); Caffe copies the caffemodel's "
                            f"'{self.name}' blobs into the first layer of that name only, so this one would keep "
                            "its random initialisation. Give the layers distinct names in the prototxt and the "
                            "caffemodel")
        if w is None:
            raise UserError(f"{self.caffemodel}: has no layer named '{self.name}' ({self.layer.type}, needs "
                            f"{roles}) that {self.prototxt} declares; use the caffemodel trained with this "
                            "prototxt, or rename the layer to its name in the caffemodel")
        if len(w.blobs) != len(expected):
            raise UserError(f"{self.caffemodel}: layer '{self.name}' has {len(w.blobs)} blob(s) but "
                            f"{self.prototxt} implies {len(expected)} ({roles}); check bias_term and "
                            "the layer type")
        out = []
        for i, ((role, shape), blob) in enumerate(zip(expected, w.blobs, strict=True)):
            if blob.shape is not None:
                ok = tuple(blob.shape) == tuple(shape)
            elif blob.legacy is not None:
                padded = (1,) * (4 - len(shape)) + tuple(shape) if len(shape) <= 4 else None
                ok = padded == tuple(blob.legacy)
            else:
                ok = blob.data.size == math.prod(shape)
            if not ok and w.copies > 1:
                raise UserError(f"{self.caffemodel}: holds {w.copies} layers named '{self.name}'; Caffe copies "
                                f"the last one's blobs into the first layer '{self.name}' of {self.prototxt}, whose "
                                f"blob {i} ({role}) has another shape ({_fmt(blob.declared)} vs {_fmt(shape)}). "
                                "Give the layers distinct names in the prototxt and the caffemodel")
            if not ok:
                raise UserError(f"{self.caffemodel}: layer '{self.name}' blob {i} ({role}) has shape "
                                f"{_fmt(blob.declared)} but {self.prototxt} implies {_fmt(shape)}; the "
                                "prototxt does not match the trained net (num_output, kernel, group or input "
                                "size?)")
            if blob.data.size != math.prod(shape):
                raise UserError(f"{self.caffemodel}: layer '{self.name}' blob {i} ({role}) declares shape "
                                f"{_fmt(blob.declared)} but holds {blob.data.size} values; the file is "
                                "corrupt")
            out.append(blob.data.reshape(shape))
        return out


def _fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _nth(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


Converter = Callable[[LayerCtx], ModuleSpec]
LAYERS: dict[str, Converter] = {}


def register(*types: str):
    def deco(fn: Converter) -> Converter:
        for t in types:
            LAYERS[t] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------- spatial params
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


def _tuple_kw(name: str, val: tuple, default: int) -> dict:
    return {} if all(v == default for v in val) else {name: val}


@register("Convolution")
def convolution(ctx: LayerCtx) -> ModuleSpec:
    nsp, cin, cout, kernel, stride, pad, dilation, group, bias = _conv_geometry(ctx)
    expected = [("weight", (cout, cin // group) + kernel)] + ([("bias", (cout,))] if bias else [])
    blobs = ctx.blobs(expected)
    kw = {"kernel_size": kernel, **_tuple_kw("stride", stride, 1), **_tuple_kw("padding", pad, 0),
          **_tuple_kw("dilation", dilation, 1)}
    if group != 1:
        kw["groups"] = group
    if not bias:
        kw["bias"] = False
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
    kw = {"kernel_size": kernel, **_tuple_kw("stride", stride, 1), **_tuple_kw("padding", pad, 0),
          **_tuple_kw("dilation", dilation, 1)}
    if group != 1:
        kw["groups"] = group
    if not bias:
        kw["bias"] = False
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


def _elementwise(ctx: LayerCtx) -> None:
    ctx.bottoms(1)
    ctx.tops(1)


@register("ReLU")
def relu(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    slope = ctx.layer.relu_param.negative_slope
    if slope == 0:
        return ModuleSpec("nn.ReLU", inplace_capable=True)
    return ModuleSpec("nn.LeakyReLU", (slope,), inplace_capable=True)


@register("PReLU")
def prelu(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got shape {ctx.x}")
    shared = ctx.layer.prelu_param.channel_shared
    c = ctx.x[1]
    (slope,) = ctx.blobs([("slope", () if shared else (c,))])
    return ModuleSpec("nn.PReLU", (), {} if shared else {"num_parameters": c},
                      {"weight": slope.reshape(1 if shared else c)})


@register("ELU")
def elu(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    alpha = ctx.layer.elu_param.alpha
    return ModuleSpec("nn.ELU", () if alpha == 1.0 else (alpha,))


@register("Sigmoid")
def sigmoid(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("nn.Sigmoid")


@register("TanH")
def tanh(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("nn.Tanh")


@register("AbsVal")
def absval(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("CaffeAbsVal")


@register("BNLL")
def bnll(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("nn.Softplus")  # log(1 + exp(x)), computed stably by both


@register("Power")
def power(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.power_param
    return ModuleSpec("CaffePower", (), {"power": p.power, "scale": p.scale, "shift": p.shift})


@register("Exp")
def exp(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.exp_param
    if p.base != -1 and p.base <= 0:
        ctx.fail(f"base must be positive or -1 (for e), got {p.base}")
    return ModuleSpec("CaffeExp", (), {"base": p.base, "scale": p.scale, "shift": p.shift})


@register("Log")
def log(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.log_param
    if p.base != -1 and p.base <= 0:
        ctx.fail(f"base must be positive or -1 (for e), got {p.base}")
    return ModuleSpec("CaffeLog", (), {"base": p.base, "scale": p.scale, "shift": p.shift})


@register("Threshold")
def threshold(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("CaffeThreshold", (ctx.layer.threshold_param.threshold,))


@register("Dropout")
def dropout(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    spec = ModuleSpec("nn.Identity", alias=True)
    spec.notes.append("identity at inference (Caffe's TEST phase copies the input)")
    return spec


@register("LRN")
def lrn(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
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
    _elementwise(ctx)
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


@register("Eltwise")
def eltwise(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(2, 1 << 30)
    ctx.tops(1)
    p = ctx.layer.eltwise_param
    op = {0: "prod", 1: "sum", 2: "max"}[p.operation]
    for name, shape in zip(ctx.layer.bottom[1:], ctx.bottom_shapes[1:], strict=True):
        if tuple(shape) != tuple(ctx.x):
            ctx.fail(f"bottoms must have equal shapes: '{ctx.layer.bottom[0]}' is {_fmt(ctx.x)}, "
                     f"'{name}' is {_fmt(shape)} (a Crop layer is usually missing)")
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
            ctx.fail(f"bottom '{name}' {_fmt(shape)} differs from {_fmt(ctx.x)} outside axis {axis}")
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
    _elementwise(ctx)
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
    _elementwise(ctx)
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


@register("Softmax")
def softmax(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("nn.Softmax", (), {"dim": ctx.axis(ctx.layer.softmax_param.axis)})


@register("ArgMax")
def argmax(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
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
    _elementwise(ctx)
    p = ctx.layer.tile_param
    if p.tiles < 1:
        ctx.fail("tile_param.tiles must be positive")
    return ModuleSpec("CaffeTile", (), {"axis": ctx.axis(p.axis), "tiles": p.tiles})


@register("Reduction")
def reduction(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.reduction_param
    op = {1: "sum", 2: "asum", 3: "sumsq", 4: "mean"}[p.operation]
    kw: dict[str, Any] = {"axis": ctx.axis(p.axis)}
    if p.coeff != 1:
        kw["coeff"] = float(p.coeff)
    return ModuleSpec("CaffeReduction", (op,), kw)


@register("MVN")
def mvn(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.mvn_param
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got shape {ctx.x}")
    return ModuleSpec("CaffeMVN", (), {"normalize_variance": p.normalize_variance,
                                       "across_channels": p.across_channels, "eps": float(p.eps)})


@register("SPP")
def spp(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
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


@register("Embed")
def embed(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.embed_param
    if p.num_output <= 0 or p.input_dim <= 0:
        ctx.fail("embed_param needs positive num_output and input_dim")
    expected = [("weight", (p.input_dim, p.num_output))] + ([("bias", (p.num_output,))] if p.bias_term else [])
    blobs = ctx.blobs(expected)
    params = {"weight": blobs[0]} | ({"bias": blobs[1]} if p.bias_term else {})
    spec = ModuleSpec("CaffeEmbed", (p.input_dim, p.num_output), {} if p.bias_term else {"bias": False}, params)
    spec.notes.append(f"inputs are indices: values are truncated to integers and must lie in [0, {p.input_dim})")
    return spec


@register("Im2col")
def im2col(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
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
    return ModuleSpec("CaffeIm2col", (kernel,), {**_tuple_kw("stride", stride, 1), **_tuple_kw("padding", pad, 0),
                                                  **_tuple_kw("dilation", dilation, 1)})


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
    shape = _blob_shape(ctx.layer.parameter_param.shape)
    (blob,) = ctx.blobs([("blob", shape)])
    return ModuleSpec("CaffeParameter", (list(shape),), params={"weight": blob}, call="args", returns_state=True)


@register("LSTM", "RNN")
def recurrent(ctx: LayerCtx) -> ModuleSpec:
    p = ctx.layer.recurrent_param
    lstm = ctx.layer.type == "LSTM"
    n_hidden = (2 if lstm else 1) if p.expose_hidden else 0
    ctx.bottoms(2 + n_hidden, 3 + n_hidden)
    ctx.tops(1 + n_hidden)
    hs = p.num_output
    if hs <= 0:
        ctx.fail("recurrent_param.num_output must be positive")
    x, cont = ctx.bottom_shapes[0], ctx.bottom_shapes[1]
    if len(x) < 2 or tuple(cont) != tuple(x[:2]):
        ctx.fail(f"needs x (T, N, ...) and cont (T, N); got {x} and {cont}")
    static = len(ctx.layer.bottom) == 3 + n_hidden
    n = x[1]
    in_size = math.prod(x[2:])
    static_size = math.prod(ctx.bottom_shapes[2][1:]) if static else 0
    if static and ctx.bottom_shapes[2][0] != n:
        ctx.fail(f"the static input {ctx.bottom_shapes[2]} must have N = {n} on its first axis")
    for shape in ctx.bottom_shapes[2 + static:]:
        if tuple(shape) != (1, n, hs):
            ctx.fail(f"exposed hidden-state bottoms must be (1, {n}, {hs}), got {shape}")
    gates = 4 * hs if lstm else hs
    expected = [("W_x", (gates, in_size)), ("b", (gates,))]
    if static:
        expected.append(("W_x_static", (gates, static_size)))
    expected.append(("W_h", (gates, hs)))
    if not lstm:
        expected += [("W_ho", (hs, hs)), ("b_o", (hs,))]
    blobs = ctx.blobs(expected)
    names = ["weight_x", "bias_x"] + (["weight_static"] if static else []) + ["weight_h"]
    names += [] if lstm else ["weight_o", "bias_o"]
    params = dict(zip(names, blobs, strict=True))
    kw: dict[str, Any] = {}
    if static:
        kw["static_size"] = static_size
    if p.expose_hidden:
        kw["expose_hidden"] = True
    args = (in_size, hs) if lstm else (in_size, hs, hs)
    spec = ModuleSpec("CaffeLSTM" if lstm else "CaffeRNN", args, kw, params, call="list", multi_top=True)
    if not p.expose_hidden:
        spec.notes.append("initial hidden state is zero; Caffe instead carries the previous forward's last state "
                          "over, which only matters where cont is non-zero at t = 0")
    return spec


@register("LSTMUnit")
def lstm_unit(ctx: LayerCtx) -> ModuleSpec:
    ctx.bottoms(3)
    ctx.tops(2)
    c, gates, cont = ctx.bottom_shapes
    if len(c) != 3 or c[0] != 1 or tuple(gates) != (1, c[1], 4 * c[2]) or tuple(cont) != (1, c[1]):
        ctx.fail(f"needs c_prev (1, N, H), gates (1, N, 4H) and cont (1, N); got {c}, {gates}, {cont}")
    return ModuleSpec("CaffeLSTMUnit", call="args", multi_top=True)


@register("ReLU6")
def relu6(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.relu6_param
    if p.negative_slope == 0 and p.threshold == 6:
        return ModuleSpec("nn.ReLU6", inplace_capable=True)
    return ModuleSpec("CaffeReLU6", (), {"negative_slope": float(p.negative_slope), "threshold": float(p.threshold)})


@register("HardSigmoid")
def hard_sigmoid(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.hardsigmoid_param
    return ModuleSpec("CaffeHardSigmoid", (), {"alpha": float(p.alpha), "beta": float(p.beta)})


@register("HardSwish")
def hard_swish(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    return ModuleSpec("nn.Hardswish", inplace_capable=True)  # x * min(max(x / 6 + 1/2, 0), 1)


@register("PixelShuffle")
def pixel_shuffle(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
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
    _elementwise(ctx)
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
    _elementwise(ctx)
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
    _elementwise(ctx)
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


@register("BatchNormKyle")
def batch_norm_kyle(ctx: LayerCtx) -> ModuleSpec:
    return _batch_norm(ctx, ctx.layer.batch_norm_param.use_alpha_beta)


@register("Unsqueeze")
def unsqueeze(ctx: LayerCtx) -> ModuleSpec:
    _elementwise(ctx)
    p = ctx.layer.unsqueeze_param
    if not p.HasField("dim"):
        ctx.fail("unsqueeze_param.dim is required")
    nd = len(ctx.x)
    index = p.dim + nd + 1 if p.dim < 0 else p.dim
    if not 0 <= index <= nd:
        ctx.fail(f"dim {p.dim} is out of range for a {nd}-D bottom")
    return ModuleSpec("CaffeReshape", ([1],), {"axis": index, "num_axes": 0}, alias=True)


@register("Python")
def python_layer(ctx: LayerCtx) -> ModuleSpec:
    """A Python layer with used tops becomes the user's torch module from a --plugin module: the class named
    like python_param.layer, constructed with param_str=..., called with the bottoms, returning the top
    (or a list of tops)."""
    p = ctx.layer.python_param
    for module in ctx.plugins:
        if isinstance(getattr(module, p.layer, None), type):
            break
    else:
        searched = ", ".join(m.__name__ for m in ctx.plugins) or "none given"
        ctx.fail(f"is a Python layer ({p.module}.{p.layer}) whose tops later layers read; pass --plugin MODULE "
                 f"naming a Python module with a torch.nn.Module class '{p.layer}' (constructed with "
                 f"param_str=...) to convert it (plugins searched: {searched})")
    if ctx.weights is not None and ctx.weights.blobs:
        ctx.fail(f"has {len(ctx.weights.blobs)} blob(s) in the caffemodel; plugin layers with weights are not "
                 "supported")
    spec = ModuleSpec(f"{plugin_alias(module.__name__)}.{p.layer}", (), {"param_str": p.param_str}, call="args",
                      multi_top=len(ctx.layer.top) > 1, plugin=(module.__name__, p.layer), onnx_exportable=False)
    spec.notes.append(f"Python layer {p.module}.{p.layer} converted by plugin {module.__name__}.{p.layer}")
    return spec


def plugin_alias(module_name: str) -> str:
    """The name a plugin module is imported as in model.py."""
    return "plugin_" + module_name.replace(".", "_")


# ---------------------------------------------------------------------------------- input layers
def _blob_shape(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape.dim)


def _input_shapes(layer) -> list[tuple[int, ...] | None]:
    """Shapes of a data/input layer's tops as far as the prototxt states them (None: unknown)."""
    n = len(layer.top)
    t = layer.type
    if t == "Input":
        shapes = [_blob_shape(s) for s in layer.input_param.shape]
        if len(shapes) == 1:
            return shapes * n
        return shapes + [None] * (n - len(shapes)) if len(shapes) <= n else shapes[:n]
    if t == "DummyData":
        p = layer.dummy_data_param
        if len(p.shape):
            shapes = [_blob_shape(s) for s in p.shape]
        else:
            shapes = [(a, b, c, d) for a, b, c, d in zip(p.num, p.channels, p.height, p.width, strict=False)]
        return (shapes * n) if len(shapes) == 1 else (shapes + [None] * n)[:n]
    if t == "MemoryData":
        p = layer.memory_data_param
        first = (p.batch_size, p.channels, p.height, p.width)
        return [first] + [(p.batch_size, 1, 1, 1)] * (n - 1)
    tp = layer.transform_param
    crop_h = tp.crop_h or tp.crop_size
    crop_w = tp.crop_w or tp.crop_size
    if t == "ImageData":
        p = layer.image_data_param
        c = 3 if p.is_color else 1
        h = crop_h or p.new_height
        w = crop_w or p.new_width
        first = (p.batch_size, c, h, w) if h and w and p.batch_size else None
        return [first] + [None] * (n - 1)
    return [None] * n


INPUT_TYPES = {"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData",
               "AnnotatedData", "VideoData", "DenseImageData", "ImageSegData"}

# Types that only matter for training or evaluation: dropped from the inference module.
TRAINING_ONLY = {"SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss",
                 "MultinomialLogisticLoss", "ContrastiveLoss", "Accuracy", "HDF5Output", "Silence",
                 "MultiBoxLoss", "SmoothL1Loss", "DetectionEvaluate", "SegAccuracy"}


def input_shapes(layer) -> list[tuple[int, ...] | None]:
    return _input_shapes(layer)


def supported_types() -> list[str]:
    return sorted(LAYERS) + sorted(INPUT_TYPES)


# The detection and fork converters register themselves into LAYERS.
from fcnkit.convert import detection, forks  # noqa: E402, F401
