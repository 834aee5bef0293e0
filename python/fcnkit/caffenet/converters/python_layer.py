"""The `Python` layer: converted only through a user-supplied `--plugin` module that implements it."""

from __future__ import annotations

from fcnkit.caffenet.registry import LayerCtx, ModuleSpec, register


@register("Python")
def python_layer(ctx: LayerCtx) -> ModuleSpec:
    """A Python layer with used tops becomes the user's torch module from a --plugin module: the class named
    like python_param.layer, constructed with param_str=..., called with the bottoms, returning the top
    (or a list of tops)."""
    p = ctx.layer.python_param
    if not p.layer.isidentifier():
        ctx.fail(f"python_param.layer {p.layer!r} is not a Python class name; fix the prototxt")
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
                      multi_top=len(ctx.layer.top) > 1, plugin=(module.__name__, p.layer),
                      # data-dependent plugins (a proposal layer) say so with a class attribute
                      onnx_exportable=bool(getattr(getattr(module, p.layer), "onnx_exportable", True)))
    spec.notes.append(f"Python layer {p.module}.{p.layer} converted by plugin {module.__name__}.{p.layer}")
    return spec


def plugin_alias(module_name: str) -> str:
    """The name a plugin module is imported as in model.py."""
    return "plugin_" + module_name.replace(".", "_")

