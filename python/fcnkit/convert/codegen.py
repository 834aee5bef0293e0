"""Write the standalone `model.py` for a converted net: readable source that imports only torch."""

from __future__ import annotations

import inspect
import keyword
import math
import re
import textwrap

import numpy as np

from fcnkit.caffenet import modules
from fcnkit.caffenet.converters.python_layer import plugin_alias
from fcnkit.caffenet.graph import Graph, Node, onnx_part
from fcnkit.caffenet.model_folder import audit_generated

_CONV = re.compile(r"(nn\.Conv(Transpose)?[123]d|Conv2dGemm)$")


def lit(v) -> str:
    """Python literal for a constructor argument; floats as their shortest float32 spelling."""
    if isinstance(v, bool | np.bool_):
        return repr(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(np.float32(v))
        if math.isinf(f) or math.isnan(f):
            return f'float("{f}")'
        s = str(np.float32(v))
        return s if any(c in s for c in ".en") else s + ".0"
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "None"
    if isinstance(v, tuple):
        inner = ", ".join(lit(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    raise TypeError(f"cannot render {v!r}")


def text(v) -> str:
    """Any name or path from the input files, safe to put in a comment or a docstring of generated source:
    one line (newlines and every other control or non-ASCII character escaped, backslashes doubled) with no
    double quote, so no Caffe name can end a docstring or a comment and become code."""
    return str(v).encode("unicode_escape").decode("ascii").replace('"', r"\x22")


def constructor(node: Node) -> str:
    spec = node.spec
    parts = [lit(a) for a in spec.args]
    for k, v in spec.kwargs.items():
        if _CONV.match(spec.cls) and isinstance(v, tuple) and len(set(v)) == 1:
            v = v[0]  # kernel_size=(3, 3) -> kernel_size=3
        parts.append(f"{k}={lit(v)}")
    return f"{spec.cls}({', '.join(parts)})"


def _module_sources(class_names: set[str]) -> list[str]:
    """Source of the Caffe-semantics classes used, in the generator's order, plus the private helpers they call."""
    helpers = modules.helpers()
    out, needed_helpers = [], []
    pending = []
    for name in modules.__all__:
        if name in class_names:
            src = inspect.getsource(modules.lookup(name))
            out.append(src)
            pending.append(src)
    while pending:  # helpers the classes call, and the helpers those call
        src = pending.pop()
        for h in helpers:
            if re.search(rf"\b{h}\(", src) and h not in needed_helpers:
                needed_helpers.append(h)
                pending.append(inspect.getsource(helpers[h]))
    ordered = [h for h in helpers if h in needed_helpers]  # definition order: callees before callers
    return [inspect.getsource(helpers[h]) for h in ordered] + out


def _ret_type(outs: list[str]) -> str:
    return "torch.Tensor" if len(outs) == 1 else "tuple[" + ", ".join(["torch.Tensor"] * len(outs)) + "]"


def _forward_body(graph: Graph, nodes: list[Node], outs: list[str]) -> list[str]:
    """The lines of a forward method running `nodes` (module, skipped) in order and returning `outs`."""
    v = graph.var_names
    fwd = []
    for n in nodes:
        if n.kind == "input":
            continue
        if n.kind == "skipped":
            fwd.append(f"        # {text(n.name)} ({text(n.type)}) not converted: {text('; '.join(n.notes))}")
            continue
        ins = [v[b] for b in n.bottoms]
        if n.spec.call == "list":
            call_args = "[" + ", ".join(ins) + "]"
        else:
            call_args = ", ".join(ins)
        lhs = ", ".join(v[t] for t in n.tops)
        comment = _comment(n)
        if n.spec.multi_top and len(n.tops) == 1:
            lhs = f"{lhs} = self.{n.module}({call_args})[0]"
            fwd.append(f"        {lhs}{comment}")
        else:
            fwd.append(f"        {lhs} = self.{n.module}({call_args}){comment}")
    fwd.append(f"        return {', '.join(v[o] for o in outs)}")
    return fwd


def _comment(n: Node) -> str:
    """`  # Type "caffe name"` after a line of generated code (the name only where the module was renamed)."""
    return f"  # {text(n.type)}" + (f' "{text(n.name)}"' if n.module != n.name else "")


def class_name(net_name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", net_name or "")
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name or name[0].isdigit() or keyword.iskeyword(name):
        name = "CaffeNet" + name
    return name


def _shape(s) -> str:
    return "(" + ", ".join(str(d) for d in s) + ")"


def render(graph: Graph, *, prototxt: str, caffemodel: str, preprocessing_lines: list[str],
           cls_name: str | None = None) -> str:
    cls_name = cls_name or class_name(graph.name)
    v = graph.var_names
    used = {n.spec.cls for n in graph.modules() if not n.spec.cls.startswith("nn.") and n.spec.plugin is None}
    helper_src = _module_sources(used)
    body = "\n\n".join(helper_src)
    needs_math = "math." in body
    plugin_imports = sorted({f"import {n.spec.plugin[0]} as {plugin_alias(n.spec.plugin[0])}"
                             for n in graph.modules() if n.spec.plugin is not None})
    plugin_lines = ("# --plugin modules (Caffe Python layers): they must be importable where this file runs\n"
                    + "\n".join(plugin_imports) + "\n") if plugin_imports else ""

    # ----------------------------------------------------------------------------- __init__
    init = []
    for n in graph.modules():
        comment = _comment(n)
        init.append(f"        self.{n.module} = {constructor(n)}{comment}")

    # ------------------------------------------------------------------------------ forward
    args = ", ".join(f"{i.var}: torch.Tensor" for i in graph.inputs)
    outs = graph.outputs
    fwd = _forward_body(graph, graph.nodes, outs)
    ret_type = _ret_type(outs)
    onnx_method = ""
    kept, onnx_outs, left_out = onnx_part(graph)
    if left_out and onnx_outs:  # nothing to return: no forward_onnx (model.onnx is not written either)
        names = ", ".join(f'"{text(n.name)}"' for n in left_out)
        onnx_method = (f"\n\n    def forward_onnx(self, {args}) -> {_ret_type(onnx_outs)}:\n"
                       f'        """forward() without the data-dependent post-processing ({names}): returns the '
                       f'blobs\n        {text(", ".join(onnx_outs))}. model.onnx is exported from this method."""\n'
                       + "\n".join(_forward_body(graph, kept, onnx_outs)))

    input_doc = "\n".join(f"    {i.var}: {_shape(i.shape)} float32" +
                          (f' (Caffe blob "{text(i.blob)}")' if i.var != i.blob else "") for i in graph.inputs)
    output_doc = "\n".join(f"    {v[o]}: {_shape(graph.blob_shapes[o])}" +
                           (f' (Caffe blob "{text(o)}")' if v[o] != o else "") for o in outs)
    pre_doc = "\n".join(textwrap.fill(text(line), 104, initial_indent="    ", subsequent_indent="      ")
                        for line in preprocessing_lines) or "    none recorded"
    input_shapes = "{" + ", ".join(f"{i.var!r}: {_shape(i.shape)}" for i in graph.inputs) + "}"
    output_names = "(" + ", ".join(repr(v[o]) for o in outs) + ("," if len(outs) == 1 else "") + ")"
    call_example = ", ".join(i.var for i in graph.inputs)

    src = f'''"""{text(graph.name or "Caffe net")}, converted from Caffe by fcnkit convert (caffe2torch).

Source prototxt:   {text(prototxt)}
Source caffemodel: {text(caffemodel)}

`{cls_name}` has one submodule per Caffe layer, named after it (conversion.json lists the few that had
to be renamed), and its forward() follows the Caffe net layer by layer, in-place layers included.
Weights live in weights.safetensors next to this file. Needs only torch (>= 2.1) and Python >= 3.10.

Inputs (shapes at conversion; fully convolutional nets accept other sizes):
{input_doc}
Outputs, in this order (Caffe's net outputs):
{output_doc}
Preprocessing this module does NOT do (see "preprocessing" in conversion.json):
{pre_doc}

Usage:
    import torch
    from model import load_model
    net = load_model()  # reads weights.safetensors next to this file
    with torch.inference_mode():
        out = net({call_example})
"""

import json
{"import math" + chr(10) if needs_math else ""}import os

import torch
import torch.nn.functional as F
from torch import nn

{plugin_lines}WEIGHTS_FILE = "weights.safetensors"
INPUT_SHAPES = {input_shapes}
OUTPUT_NAMES = {output_names}


# ---- Caffe-semantics helpers (from fcnkit/caffenet/modules/) -------------------------------------

{body}


# ---- the net --------------------------------------------------------------------------------------------

class {cls_name}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{chr(10).join(init)}

    def forward(self, {args}) -> {ret_type}:
{chr(10).join(fwd)}{onnx_method}


Net = {cls_name}

_DTYPES = {{"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}}


def read_safetensors(path):
    """All tensors of a .safetensors file: 8-byte little-endian header size, JSON header, raw data.

    Every header entry is checked before any tensor is built (dtype known, shape of non-negative
    integers, offsets inside the data and matching the shape, no two tensors overlapping): a malformed
    or hostile file raises ValueError saying what is wrong.
    """
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    if len(data) < 8:
        raise ValueError(f"{{path}}: too short to be a safetensors file")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"{{path}}: header size {{size}} runs past the end of the file ({{len(data)}} bytes)")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{{path}}: header is not JSON ({{exc}})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{{path}}: header is not a JSON object")
    base = 8 + size
    available = len(data) - base
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
            raise ValueError(f"{{path}}: tensor {{name!r}} has no known dtype")
        dtype = _DTYPES[info["dtype"]]
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"{{path}}: tensor {{name!r}} has shape {{shape!r}}, not non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= available):
            raise ValueError(f"{{path}}: tensor {{name!r}} has data_offsets {{offsets!r}} outside the data "
                             f"({{available}} bytes)")
        count = 1
        for d in shape:
            count *= d
        if offsets[1] - offsets[0] != count * torch.empty((), dtype=dtype).element_size():
            raise ValueError(f"{{path}}: tensor {{name!r}}: {{offsets[1] - offsets[0]}} bytes for shape {{shape}}")
        entries.append((offsets[0], offsets[1], name, dtype, shape, count))
    entries.sort()
    for prev, nxt in zip(entries, entries[1:]):
        if nxt[0] < prev[1]:
            raise ValueError(f"{{path}}: tensors {{prev[2]!r}} and {{nxt[2]!r}} overlap")
    tensors = {{}}
    for start, _end, name, dtype, shape, count in entries:
        if count == 0:
            flat = torch.empty(0, dtype=dtype)
        else:
            flat = torch.frombuffer(data, dtype=dtype, count=count, offset=base + start)
        tensors[name] = flat.reshape(shape)
    return tensors


def load_model(weights=None, device="cpu", channels_last=False):
    """Build the net and load its weights (default: weights.safetensors next to this file), in eval mode.

    channels_last=True stores 4-d weights channels-last; feed inputs made with
    x.contiguous(memory_format=torch.channels_last). On CPU that is usually faster for conv nets.
    """
    if weights is None:
        weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS_FILE)
    with torch.device("meta"):
        net = {cls_name}()
    net.load_state_dict(read_safetensors(weights), strict=True, assign=True)
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.eval()


if __name__ == "__main__":
    model = load_model()
    inputs = [torch.randn(shape) for shape in INPUT_SHAPES.values()]
    with torch.inference_mode():
        result = model(*inputs)
    result = result if isinstance(result, tuple) else (result,)
    for out_name, out in zip(OUTPUT_NAMES, result):
        print(out_name, tuple(out.shape))
'''
    # parsed and audited before anything imports it: a generator bug (or a name that escaped the quoting) must
    # not produce a file that does not parse or that does more than build and run the layers
    audit_generated(src, "model.py", cls_name)
    return src
