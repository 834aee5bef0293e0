"""Converters for element-wise activation and arithmetic layers (ReLU ... HardSwish, Power, Exp, Log,
Threshold, Dropout)."""

from __future__ import annotations

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


@register("ReLU")
def relu(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    slope = ctx.layer.relu_param.negative_slope
    if slope == 0:
        return ModuleSpec("nn.ReLU", inplace_capable=True)
    return ModuleSpec("nn.LeakyReLU", (slope,), inplace_capable=True)


@register("PReLU")
def prelu(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    if len(ctx.x) < 2:
        ctx.fail(f"needs a bottom with a channel axis, got shape {ctx.x}")
    shared = ctx.layer.prelu_param.channel_shared
    c = ctx.x[1]
    (slope,) = ctx.blobs([("slope", () if shared else (c,))])
    return ModuleSpec("nn.PReLU", (), {} if shared else {"num_parameters": c},
                      {"weight": slope.reshape(1 if shared else c)})


@register("ELU")
def elu(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    alpha = ctx.layer.elu_param.alpha
    return ModuleSpec("nn.ELU", () if alpha == 1.0 else (alpha,))


@register("Sigmoid")
def sigmoid(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("nn.Sigmoid")


@register("TanH")
def tanh(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("nn.Tanh")


@register("AbsVal")
def absval(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("CaffeAbsVal")


@register("BNLL")
def bnll(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("nn.Softplus")  # log(1 + exp(x)), computed stably by both


@register("Power")
def power(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.power_param
    return ModuleSpec("CaffePower", (), {"power": p.power, "scale": p.scale, "shift": p.shift})


@register("Exp")
def exp(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.exp_param
    if p.base != -1 and p.base <= 0:
        ctx.fail(f"base must be positive or -1 (for e), got {p.base}")
    return ModuleSpec("CaffeExp", (), {"base": p.base, "scale": p.scale, "shift": p.shift})


@register("Log")
def log(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.log_param
    if p.base != -1 and p.base <= 0:
        ctx.fail(f"base must be positive or -1 (for e), got {p.base}")
    return ModuleSpec("CaffeLog", (), {"base": p.base, "scale": p.scale, "shift": p.shift})


@register("Threshold")
def threshold(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("CaffeThreshold", (ctx.layer.threshold_param.threshold,))


@register("Dropout")
def dropout(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    spec = ModuleSpec("nn.Identity", alias=True)
    spec.notes.append("identity at inference (Caffe's TEST phase copies the input)")
    return spec


@register("ReLU6")
def relu6(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.relu6_param
    if p.negative_slope == 0 and p.threshold == 6:
        return ModuleSpec("nn.ReLU6", inplace_capable=True)
    return ModuleSpec("CaffeReLU6", (), {"negative_slope": float(p.negative_slope), "threshold": float(p.threshold)})


@register("HardSigmoid")
def hard_sigmoid(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    p = ctx.layer.hardsigmoid_param
    return ModuleSpec("CaffeHardSigmoid", (), {"alpha": float(p.alpha), "beta": float(p.beta)})


@register("HardSwish")
def hard_swish(ctx: LayerCtx) -> ModuleSpec:
    ctx.unary()
    return ModuleSpec("nn.Hardswish", inplace_capable=True)  # x * min(max(x / 6 + 1/2, 0), 1)

