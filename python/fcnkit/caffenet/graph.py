"""Walk a (current-format, phase-filtered) Caffe net in order and turn it into a plan for code generation.

For every layer: check its bottoms exist, convert it with the registry, take and check its caffemodel
blobs, build its module on torch's meta device and run it there to learn the top shapes (so shape
errors surface at conversion time, with the layer named). Blob bookkeeping follows Caffe: a top with
the name of one of the layer's bottoms is in-place; net outputs are the blobs no later layer consumes.
"""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnkit.caffenet import modules
from fcnkit.caffenet import registry as L
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import Caffemodel

# Names the generated forward() uses itself; blob variables must not shadow them.
RESERVED = {"self", "torch", "nn", "F", "math", "json", "os", "list", "tuple", "int", "float", "str", "range",
            "len"}


@dataclass
class InputBlob:
    blob: str
    var: str
    shape: tuple[int, ...]
    layer: str
    type: str


@dataclass
class Node:
    name: str                          # Caffe layer name
    type: str
    bottoms: list[str]
    tops: list[str]
    kind: str                          # "module", "input" or "skipped"
    module: str | None = None          # attribute name in the generated nn.Module
    spec: L.ModuleSpec | None = None
    top_shapes: list[tuple[int, ...]] = field(default_factory=list)
    in_place: bool = False             # Caffe in-place (a top reuses a bottom's name)
    torch_inplace: bool = False        # the generated module runs with inplace=True
    notes: list[str] = field(default_factory=list)


@dataclass
class Graph:
    name: str
    nodes: list[Node]
    inputs: list[InputBlob]
    outputs: list[str]
    blob_shapes: dict[str, tuple[int, ...]]
    var_names: dict[str, str]
    unused_weights: list[str]

    def modules(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "module"]

    def state_tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for node in self.modules():
            for key, arr in node.spec.params.items():
                out[f"{node.module}.{key}"] = np.ascontiguousarray(arr, dtype=np.float32)
        return out


def identifier(name: str, taken: set[str], avoid: set[str] = frozenset()) -> str:
    """A Python identifier for a Caffe name: invalid characters become '_', clashes get a suffix."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII) or "blob"
    if base[0].isdigit():
        base = "_" + base
    if keyword.iskeyword(base) or base in avoid or base.startswith("__"):
        base = base + "_"
    cand, i = base, 2
    while cand in taken:
        cand = f"{base}_{i}"
        i += 1
    taken.add(cand)
    return cand


_MODULE_ATTRS = set(dir(nn.Module)) | {"training", "forward"}


def resolve(spec: L.ModuleSpec):
    if spec.plugin is not None:
        return getattr(importlib.import_module(spec.plugin[0]), spec.plugin[1])
    if spec.cls.startswith("nn."):
        return getattr(nn, spec.cls[3:])
    cls = modules.lookup(spec.cls)
    if cls is None:
        raise RuntimeError(f"converter bug: ModuleSpec names {spec.cls!r}, which is no module class")
    return cls


def instantiate(spec: L.ModuleSpec, device: str | torch.device = "meta") -> nn.Module:
    kwargs = dict(spec.kwargs)
    with torch.device(device):
        return resolve(spec)(*spec.args, **kwargs)


def call_module(mod: nn.Module, spec: L.ModuleSpec, xs: list[torch.Tensor]):
    if spec.call == "list":
        out = mod(xs)
    else:
        out = mod(*xs)
    return list(out) if spec.multi_top else [out]


def _load_plugin_file(path: Path):
    """A --plugin given as a .py file: loaded from that file under its stem's name, which must not be the name
    of any importable module (a file `onnx.py` would otherwise stand in for the real onnx)."""
    name = path.stem
    if not path.is_file():
        raise UserError(f"--plugin {path}: no such file; give an existing .py file or an installed module name")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UserError(f"--plugin {path}: {name!r} is not a Python module name; rename the file")
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return loaded
    if loaded is not None or importlib.util.find_spec(name) is not None:
        raise UserError(f"--plugin {path}: its name {name!r} is already a module ({name} is importable here); "
                        "rename the file so it cannot shadow it")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # model.py and the graph import it by this name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_plugins(names) -> list:
    """Import the --plugin modules. A plugin RUNS CODE: it is either an explicit .py file path (loaded from that
    file; its name may not shadow an importable module) or an installed module's dotted name, imported with
    the current sys.path. The working directory is never put on sys.path, so a file in it (onnx.py, json.py)
    cannot stand in for a module the converter imports."""
    modules = []
    for name in names:
        is_file = name.endswith(".py") or "/" in name or os.sep in name
        if not is_file and not all(part.isidentifier() for part in name.split(".")):
            raise UserError(f"--plugin {name!r} is neither a .py file nor a Python module path (e.g. "
                            "mypackage.caffe_layers)")
        try:
            modules.append(_load_plugin_file(Path(name)) if is_file else importlib.import_module(name))
        except UserError:
            raise
        except Exception as exc:  # the user's module: any import failure is bad input
            raise UserError(f"--plugin {name}: cannot import it ({type(exc).__name__}: {exc}); give the path of "
                            "its .py file, or install it (pip install -e, or PYTHONPATH)") from exc
    return modules


def _shape_run(layer, spec: L.ModuleSpec, mod: nn.Module, ins: list[torch.Tensor], fail):
    """Run a module on meta tensors to learn its top shapes; a plugin that cannot run on meta runs on zeros."""
    try:
        return call_module(mod, spec, ins)
    except (RuntimeError, ValueError, IndexError, NotImplementedError, TypeError) as exc:
        if spec.plugin is None:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fail(layer, f"fails on bottom shapes {[tuple(t.shape) for t in ins]}: {msg}")
    try:
        cpu = instantiate(spec, "cpu").eval()
        with torch.inference_mode():
            outs = call_module(cpu, spec, [torch.zeros(t.shape) for t in ins])
        return [o.to("meta") for o in outs]
    except Exception as exc:  # the user's plugin code
        fail(layer, f"plugin {spec.plugin[0]}.{spec.plugin[1]} fails on zero inputs of shapes "
                    f"{[tuple(t.shape) for t in ins]}: {type(exc).__name__}: {exc}")


def build_graph(net, model: Caffemodel | None, prototxt: str, caffemodel: str,
                input_shapes: dict[str, tuple[int, ...]] | None = None,
                skip: set[str] | frozenset = frozenset(), name: str = "", plugins=()) -> Graph:
    input_shapes = dict(input_shapes or {})
    missing_skip = sorted(set(skip) - {layer.name for layer in net.layer})
    if missing_skip:
        raise UserError(f"--skip names {missing_skip}, which are not layers of {prototxt} (TEST phase)")
    nodes: list[Node] = []
    inputs: list[InputBlob] = []
    shapes: dict[str, tuple[int, ...]] = {}       # current shape of each blob
    producer: dict[str, str] = {}                 # blob -> layer that wrote it last
    meta: dict[str, torch.Tensor] = {}            # blob -> meta tensor of its current value
    unknown: dict[str, str] = {}                  # data-layer tops of unknown shape -> layer
    storage: dict[str, int] = {}                  # blob -> id of the memory it lives in (alias tracking)
    input_storage: set[int] = set()
    next_storage = [0]
    available: list[str] = []                     # Caffe's available_blobs (order of appearance)
    module_names: set[str] = set()
    var_taken: set[str] = set()
    var_names: dict[str, str] = {}
    skipped_tops: dict[str, str] = {}
    used_weight_layers: set[str] = set()
    seen_layers: Counter = Counter()
    # blobs read by some later layer that will be converted (decides whether a Python layer matters)
    read_later: list[set[str]] = [set() for _ in net.layer]
    acc: set[str] = set()
    for i in range(len(net.layer) - 1, -1, -1):
        read_later[i] = set(acc)
        if net.layer[i].type not in L.TRAINING_ONLY and net.layer[i].name not in skip:
            acc |= set(net.layer[i].bottom)

    def new_storage() -> int:
        next_storage[0] += 1
        return next_storage[0]

    def var_for(blob: str) -> str:
        if blob not in var_names:
            var_names[blob] = identifier(blob, var_taken, RESERVED)
        return var_names[blob]

    def fail(layer, msg: str):
        raise UserError(f"{prototxt}: layer '{layer.name}' ({layer.type}): {msg}")

    for index, layer in enumerate(net.layer):
        if not layer.name:
            raise UserError(f"{prototxt}: a layer of type '{layer.type}' has no name; name every layer")
        seen_layers[layer.name] += 1  # Caffe allows repeated names; modules get a suffix
        bottoms, tops = list(layer.bottom), list(layer.top)
        t = layer.type
        consumed = any(top in read_later[index] for top in tops)
        python_input = t == "Python" and not bottoms
        python_unused = (t == "Python" and bottoms and not consumed
                         and not any(hasattr(m, layer.python_param.layer) for m in plugins))

        # ---------------------------------------------------------------- inputs
        if t in L.INPUT_TYPES or python_input:
            declared = L.input_shapes(layer)
            node = Node(layer.name, t, bottoms, tops, "input")
            for top, shape in zip(tops, declared, strict=True):
                shape = input_shapes.pop(top, shape)
                if top in shapes:
                    fail(layer, f"top '{top}' is already produced by layer '{producer[top]}'")
                if shape is None or len(shape) == 0 or min(shape) <= 0:
                    if t == "Input" or top == tops[0]:
                        fail(layer, f"the shape of input '{top}' is not known from the prototxt; pass "
                                    f"--input-shape {top}=N,C,H,W")
                    unknown[top] = layer.name
                    continue
                shape = tuple(int(d) for d in shape)
                sid = new_storage()
                input_storage.add(sid)
                storage[top] = sid
                shapes[top] = shape
                producer[top] = layer.name
                meta[top] = torch.empty(shape, device="meta")
                inputs.append(InputBlob(top, var_for(top), shape, layer.name, t))
                available.append(top)
                node.top_shapes.append(shape)
            if t != "Input":
                tp = layer.transform_param
                if tp.mirror or tp.crop_size or tp.crop_h:
                    node.notes.append("data layer became a model input; its transform_param (crop/mirror) "
                                      "is recorded under preprocessing")
            nodes.append(node)
            continue

        # ---------------------------------------------------------- skipped layers
        if t in L.TRAINING_ONLY or layer.name in skip or python_unused:
            why = ("training-only layer" if t in L.TRAINING_ONLY else "skipped by --skip" if layer.name in skip
                   else "Python layer whose tops no later layer reads (e.g. a metric): left out")
            node = Node(layer.name, t, bottoms, tops, "skipped", notes=[why])
            # A deploy net may keep a metric fed by `label`, which it no longer has: Caffe's TEST phase with
            # such a net would not build, but nothing the converted net computes depends on the layer.
            absent = [b for b in bottoms if b not in shapes and b not in unknown and b not in skipped_tops]
            if absent:
                node.notes.append(f"its bottom(s) {absent} are produced by no earlier layer (absent from this "
                                  "deploy net), so it is left out")
            for top in tops:
                skipped_tops[top] = layer.name
            if t == "Silence":
                # Caffe runs every layer, so what a Silence layer swallows is still computed (Zhang et al.'s
                # colorization net reads its result `class8_ab` from net.blobs, the net lists no output):
                # a blob a converted layer produced stays an output of the converted net; data-layer tops
                # (labels) do not.
                kept = [b for b in bottoms if b in available and b in var_names and b not in {i.blob for i in inputs}]
                available[:] = [a for a in available if a not in bottoms or a in kept]
                if kept:
                    node.notes.append(f"{kept}: read only by this Silence layer, kept as output(s) of the converted "
                                      "net (Caffe computes them; read them from net.blobs there)")
            nodes.append(node)
            continue

        # ------------------------------------------------------- bottoms must exist
        for b in bottoms:
            if b in skipped_tops:
                fail(layer, f"bottom '{b}' comes from layer '{skipped_tops[b]}', which is not converted "
                            "(training-only or --skip); remove this layer too or convert a deploy prototxt")
            if b in unknown:
                fail(layer, f"bottom '{b}' comes from data layer '{unknown[b]}' with no known shape; pass "
                            f"--input-shape {b}=N,C,H,W")
            if b not in shapes:
                fail(layer, f"bottom '{b}' is not produced by any earlier layer (check spelling and order)")

        conv = L.LAYERS.get(t)
        if conv is None:
            fork = f" (a layer of {L.FORK_TYPES[t]})" if t in L.FORK_TYPES else ""
            raise UserError(f"{prototxt}: layer '{layer.name}' has type '{t}'{fork}, which the converter does not "
                            "support; remove it from the deploy net (or --skip it if its tops are unused), "
                            "see `convert --list-layers`")
        for top in tops:
            if top in shapes and top not in bottoms:
                fail(layer, f"top '{top}' is already produced by layer '{producer[top]}'; Caffe only allows "
                            "reusing a name in-place (top == bottom)")

        weights = model.layers.get(layer.name) if model is not None else None
        occurrence = seen_layers[layer.name]
        ctx = L.LayerCtx(layer, [shapes[b] for b in bottoms], weights, prototxt, caffemodel, occurrence=occurrence,
                         tops_consumed=consumed, plugins=tuple(plugins))
        spec = conv(ctx)
        if weights is not None and weights.blobs and occurrence == 1:
            used_weight_layers.add(layer.name)
            if not spec.params:
                raise UserError(f"{caffemodel}: layer '{layer.name}' has {len(weights.blobs)} blob(s) but a "
                                f"{t} layer in {prototxt} has none; do prototxt and caffemodel belong "
                                "together?")

        node = Node(layer.name, t, bottoms, tops, "module", spec=spec, notes=list(spec.notes))
        node.module = identifier(layer.name, module_names, _MODULE_ATTRS | RESERVED)
        node.in_place = any(top in bottoms for top in tops)

        # shapes: run the module on the meta device
        mod = instantiate(spec)
        state = mod.state_dict()
        for key, arr in spec.params.items():
            if key not in state or tuple(state[key].shape) != tuple(arr.shape):
                got = tuple(state[key].shape) if key in state else "missing"
                raise RuntimeError(f"converter bug: {t} '{layer.name}' {key} {arr.shape} vs module {got}")
        if spec.top_shapes is not None:  # data-dependent sizes: Caffe's setup shapes
            outs = [torch.empty(shape, device="meta") for shape in spec.top_shapes]
        else:
            outs = _shape_run(layer, spec, mod, [meta[b] for b in bottoms], fail)
        if len(outs) != len(tops):
            fail(layer, f"gives {len(outs)} outputs for {len(tops)} tops")

        # in-place safety: mutate only a tensor no other live blob (or the caller) shares
        if spec.inplace_capable and node.in_place and tops[0] == bottoms[0]:
            sid = storage[bottoms[0]]
            sharers = sum(1 for s in storage.values() if s == sid)
            if sharers == 1 and sid not in input_storage:
                spec.kwargs["inplace"] = True
                node.torch_inplace = True

        for b in bottoms:
            if b in available:
                available.remove(b)
        for top, out in zip(tops, outs, strict=True):
            shape = tuple(int(d) for d in out.shape)
            if top in bottoms and node.torch_inplace:
                pass  # same memory
            elif spec.alias:
                storage[top] = storage[bottoms[0]]
            else:
                storage[top] = new_storage()
                if spec.returns_state:  # a module's own parameter: never modified in place
                    input_storage.add(storage[top])
            shapes[top] = shape
            meta[top] = out
            producer[top] = layer.name
            node.top_shapes.append(shape)
            var_for(top)
            if top not in available:
                available.append(top)
        nodes.append(node)

    if input_shapes:
        raise UserError(f"--input-shape names {sorted(input_shapes)}, which are not inputs of {prototxt}; "
                        f"its inputs are {[i.blob for i in inputs]}")
    if not any(n.kind == "module" for n in nodes):
        raise UserError(f"{prototxt}: no layers to convert")
    # Tops of data layers (labels...) that no converted layer reads are dropped, not passed through.
    consumed = {b for n in nodes if n.kind == "module" for b in n.bottoms}
    dropped = [i for i in inputs if i.type != "Input" and i.blob not in consumed]
    for i in dropped:
        inputs.remove(i)
        if i.blob in available:
            available.remove(i.blob)
        for n in nodes:
            if n.name == i.layer:
                n.notes.append(f"top '{i.blob}' is read by no converted layer and is not a model input")
    if not inputs:
        raise UserError(f"{prototxt}: the converted net has no inputs")
    outputs = sorted(available)  # Caffe lists net outputs in std::set (sorted) order
    if not outputs:
        raise UserError(f"{prototxt}: the converted net has no outputs (every blob is consumed by a layer that is "
                        "left out); remove the Silence or training-only layers that read its last blobs")
    unused = []
    if model is not None:
        unused = [n for n in model.order if model.layers[n].blobs and n not in used_weight_layers]
    return Graph(name=name, nodes=nodes, inputs=inputs, outputs=outputs, blob_shapes=shapes,
                 var_names=var_names, unused_weights=unused)


def onnx_part(graph: Graph, plugins: bool = True) -> tuple[list[Node], list[str], list[Node]]:
    """The part of the net model.onnx holds: every module except data-dependent post-processing
    (ModuleSpec.onnx_exportable False) and what depends on it. Returns (kept module nodes, their outputs:
    the net outputs they produce, then the blobs the left-out layers read, left-out module nodes).

    plugins: --plugin layers are torch modules the exporter may trace (YOLOv3's Python upsampling layer sits
    in the middle of the net), unless their class says `onnx_exportable = False` (a proposal layer); False
    leaves every plugin layer out, for plugins that turn out not to trace."""
    tainted: set[str] = set()
    kept: list[Node] = []
    left_out: list[Node] = []
    for n in graph.modules():
        exportable = n.spec.onnx_exportable and (plugins or n.spec.plugin is None)
        if not exportable or any(b in tainted for b in n.bottoms):
            left_out.append(n)
            tainted.update(n.tops)
        else:
            kept.append(n)
    outputs = [o for o in graph.outputs if o not in tainted]
    inputs = {i.blob for i in graph.inputs}  # a left-out layer reading a net input (im_info) takes it from the caller
    for n in left_out:
        for b in n.bottoms:
            if b not in tainted and b not in outputs and b not in inputs:
                outputs.append(b)
    return kept, outputs, left_out
