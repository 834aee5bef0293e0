"""Converters for Caffe's recurrent layers: LSTM, RNN and LSTMUnit."""

from __future__ import annotations

import math
from typing import Any

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


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



@register("ContinuationIndicator")
def continuation_indicator(ctx: LayerCtx) -> ModuleSpec:
    """The CRNN-style ports' ContinuationIndicator (not in this Caffe): the LSTM's `cont` blob
    (time_step, batch_size), 0 at t = 0 and 1 after."""
    p = ctx.layer.continuation_indicator_param
    ctx.bottoms(0, 1)
    ctx.tops(1)
    if p.time_step <= 0 or p.batch_size <= 0:
        ctx.fail("continuation_indicator_param needs a positive time_step (and batch_size, default 1)")
    spec = ModuleSpec("CaffeContinuationIndicator", (), {"time_step": int(p.time_step),
                                                          "batch_size": int(p.batch_size)}, call="list")
    spec.notes.append("ContinuationIndicator (CRNN-style Caffe ports): cont = 0 at t = 0, 1 after")
    return spec
