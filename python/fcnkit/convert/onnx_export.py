"""`convert --onnx`: export the generated module to model.onnx, check it with onnx.checker, and find out by
running it which axes may vary.

The export traces the module (torch.onnx's TorchScript exporter, opset 17 by default). Caffe's size rules
are Python arithmetic on input sizes, which a trace fixes; so each candidate (batch + height + width
dynamic, then batch only, then nothing) is exported and run in onnxruntime at the conversion size and at
another size, against the PyTorch module at that size, and the first that agrees is kept. Data-dependent
post-processing (DetectionOutput, Proposal, Filter, PSROIPooling, --plugin layers) is left out: model.onnx
then ends at the blobs those layers read (model.py's `forward_onnx`).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from fcnkit.caffenet.graph import Graph, call_module, onnx_part
from fcnkit.caffenet.model_folder import MODEL_FILE, WEIGHTS_FILE, load_generated
from fcnkit.convert.tolerance import TOL, fraction_beyond, rel_diff

OPSET = 17
# A net that unpools by MAX-pooling masks routes values by argmax; two runtimes' float rounding breaks near-equal
# maxima differently, and a few outputs then differ however right the graph is. Such nets pass the
# onnxruntime-vs-PyTorch check when at most this fraction of values differs (a size rule fixed by the trace
# shifts whole maps).
TIE_SENSITIVE = {"CaffeMaxPoolMask"}
TIE_FRACTION = 0.01


def _shapes(graph: Graph, batch: int, grow: tuple[int, int]) -> list[tuple[int, ...]]:
    shapes = []
    for i in graph.inputs:
        s = list(i.shape)
        if s[0] == graph.inputs[0].shape[0]:  # batch-first inputs (not a recurrent net's cont, (T, N))
            s[0] = batch
        if len(s) == 4:
            s[2] += grow[0]
            s[3] += grow[1]
        shapes.append(tuple(s))
    return shapes


def _example(shape: tuple[int, ...], pre: dict, rng) -> np.ndarray:
    """An input like the net's real ones: image-shaped inputs get random pixels 0-255 with the recorded
    mean/scale (inputs far from that range give near-constant feature maps, whose argmax ties -- MAX-pooling
    masks -- any two implementations break differently), other inputs standard normal values."""
    if len(shape) == 4 and shape[1] in (1, 3):
        x = rng.uniform(0, 255, shape)
        mean = np.asarray(pre.get("mean_value") or [0.0], np.float64)
        if mean.size in (1, shape[1]):
            x = x - mean.reshape(-1, 1, 1)
        return (x * pre.get("scale", 1.0)).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def rename_values(model, names: dict[str, str]) -> None:
    """Give the graph's inputs and outputs their Caffe blob names (names: exported name -> Caffe name).

    The model is exported with placeholder names (`in_0`, `out_0`, ...) because the TorchScript exporter
    refuses names it uses itself: an all-digit blob name ('123') is refused as invalid, and an input named
    like one of its own values (`label`) comes out as `label.1`. Any other value already named like a Caffe
    blob is renamed out of the way first."""
    graph = model.graph
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    taken |= {i.name for i in graph.input} | {o.name for o in graph.output}
    clash = {new for old, new in names.items() if new in taken and new != old}
    moved = {}
    for name in clash:  # an internal value that has a Caffe blob's name
        k = 0
        while f"{name}__{k}" in taken:
            k += 1
        moved[name] = f"{name}__{k}"
        taken.add(moved[name])
    mapping = {**moved, **names}

    def fix(seq):
        for k, v in enumerate(seq):
            if v in mapping:
                seq[k] = mapping[v]

    for n in graph.node:
        fix(n.input)
        fix(n.output)
    for coll in (graph.input, graph.output, graph.value_info):
        for v in coll:
            if v.name in mapping:
                v.name = mapping[v.name]
    for init in graph.initializer:
        if init.name in mapping:
            init.name = mapping[init.name]


class _Part(torch.nn.Module):
    """The exported part of the net, run from the graph plan: the converted net's own submodules, called in
    Caffe's order (what forward()/forward_onnx() do), returning `outputs`."""

    def __init__(self, net, inputs: list[str], kept, outputs: list[str]):
        super().__init__()
        self.net = net
        self.kept = [(n.module, n.spec, n.bottoms, n.tops) for n in kept]
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *xs):
        env = dict(zip(self.inputs, xs, strict=True))
        for module, spec, bottoms, tops in self.kept:
            outs = call_module(getattr(self.net, module), spec, [env[b] for b in bottoms])
            env.update(zip(tops, outs, strict=False))  # a multi-top module may give more than the tops used
        return tuple(env[o] for o in self.outputs)


def export_onnx(out_dir: Path, graph: Graph, opset: int = OPSET, log=None, pre: dict | None = None) -> dict:
    """Write out_dir/model.onnx from out_dir/model.py + weights; returns what conversion.json records.
    --plugin layers are exported with the rest when they trace; when no candidate works with them, they are
    left out like data-dependent post-processing."""
    log = log or (lambda msg: None)
    info: dict = {}
    has_plugins = any(n.spec.plugin is not None for n in graph.modules())
    for with_plugins in ((True, False) if has_plugins else (True,)):
        info = _export(out_dir, graph, opset, log, pre, with_plugins)
        if info.get("exported"):
            return info
        if has_plugins and with_plugins:
            log("model.onnx: no export with the --plugin layers inside worked; trying with them left out")
    return info


def _export(out_dir: Path, graph: Graph, opset: int, log, pre: dict | None, with_plugins: bool) -> dict:
    import onnx  # noqa: PLC0415  (onnx and onnxruntime: heavy, only --onnx uses them)
    import onnxruntime as ort  # noqa: PLC0415

    kept, outputs, left_out = onnx_part(graph, plugins=with_plugins)
    read = {b for n in kept for b in n.bottoms} | set(outputs)
    used = [k for k, i in enumerate(graph.inputs) if i.blob in read]  # only left-out layers read the others
    info: dict = {"file": "model.onnx", "opset": opset, "exporter": "torch.onnx (TorchScript tracing)",
                  "inputs": [graph.inputs[k].blob for k in used], "outputs": outputs}
    if left_out:
        info["left_out"] = {n.name: n.type for n in left_out}
        info["left_out_note"] = ("data-dependent post-processing cannot be traced into a fixed ONNX graph; "
                                 "model.onnx returns the blobs these layers read: run them with model.py "
                                 "(forward_onnx, then the layers' modules) or your own code")
        if not with_plugins:
            info["left_out_note"] += "; the --plugin layers did not trace, so they are left out too"
    if not kept:
        info["exported"] = False
        info["why"] = "no layer of this net can be expressed in ONNX"
        return info
    module = load_generated(out_dir / MODEL_FILE)
    net = module.load_model(str(out_dir / WEIGHTS_FILE))
    in_names = [graph.inputs[k].blob for k in used]
    wrapper = _Part(net, in_names, kept, outputs).eval()
    tmp_in = [f"in_{k}" for k in range(len(in_names))]
    tmp_out = [f"out_{k}" for k in range(len(outputs))]
    base = [_shapes(graph, graph.inputs[0].shape[0], (0, 0))[k] for k in used]
    rng = np.random.default_rng(0)

    def run_torch(shapes):
        xs = [_example(s, pre or {}, rng) for s in shapes]
        with torch.inference_mode():
            outs = wrapper(*[torch.from_numpy(x) for x in xs])
        return xs, [o.numpy() for o in outs]

    spatial = [j for j, k in enumerate(used) if len(graph.inputs[k].shape) == 4]
    tie_sensitive = any(n.spec.cls in TIE_SENSITIVE for n in kept)
    candidates = [("batch, height, width", True, True), ("batch", True, False), ("none", False, False)]
    path = out_dir / "model.onnx"
    notes = []
    for label, vary_batch, vary_hw in candidates:
        if vary_hw and not spatial:
            continue
        alt = [_shapes(graph, 2 if vary_batch else graph.inputs[0].shape[0], (32, 64) if vary_hw else (0, 0))[k]
               for k in used]
        checks = [base] + ([alt] if (vary_batch or vary_hw) else [])
        try:
            cases = [run_torch(shapes) for shapes in checks]
        except Exception as exc:  # the module (or a --plugin's code) needs the conversion size: no traceback
            if isinstance(exc, MemoryError):
                raise
            notes.append(f"{label}: the net's layers need the conversion input size "
                         f"({str(exc).splitlines()[0][:160]})")
            continue
        axes = {}
        for k, name in enumerate(tmp_in):
            a = {0: "batch"} if vary_batch else {}
            if vary_hw and k in spatial:
                a |= {2: "height", 3: "width"}
            if a:
                axes[name] = a
        for k, name in enumerate(tmp_out):
            if vary_batch or vary_hw:
                axes[name] = {d: f"{outputs[k]}_dim{d}" for d in range(len(cases[-1][1][k].shape))}
        try:
            # a refused candidate prints its whole TorchScript graph: keep it out of the user's console
            quiet = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
                warnings.simplefilter("ignore")
                torch.onnx.export(wrapper, tuple(torch.from_numpy(x) for x in cases[0][0]), str(path),
                                  dynamo=False, opset_version=opset, input_names=tmp_in, output_names=tmp_out,
                                  dynamic_axes=axes or None, do_constant_folding=True)
            proto = onnx.load(str(path))
            rename_values(proto, dict(zip(tmp_in + tmp_out, in_names + outputs, strict=True)))
            onnx.save(proto, str(path))
            onnx.checker.check_model(str(path))
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            worst, beyond = 0.0, 0.0
            for xs, ref in cases:
                got = sess.run(outputs, dict(zip(in_names, xs, strict=True)))
                worst = max([worst] + [rel_diff(r, g) for r, g in zip(ref, got, strict=True)])
                beyond = max([beyond] + [fraction_beyond(r, g) for r, g in zip(ref, got, strict=True)])
        except Exception as exc:  # exporter, checker or runtime refusing this candidate
            notes.append(f"{label}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
            path.unlink(missing_ok=True)
            continue
        if worst > TOL and not (tie_sensitive and beyond <= TIE_FRACTION):
            notes.append(f"{label}: onnxruntime differs from PyTorch (max rel diff {worst:.1e}, {beyond:.2%} of the "
                         "values beyond tolerance); a size rule of the net was fixed by the trace")
            path.unlink(missing_ok=True)
            continue
        if worst > TOL:
            info["argmax_ties"] = (f"{beyond:.3%} of the output values differ between onnxruntime and PyTorch: "
                                   "MAX-pooling masks break near-equal maxima by float rounding (see README)")
        named = dict(zip(tmp_in, in_names, strict=True))
        info.update({"exported": True, "checker": "ok", "dynamic": label,
                     "dynamic_axes": {named[k]: {str(d): n for d, n in v.items()} for k, v in axes.items()
                                      if k in named},
                     "onnxruntime_vs_pytorch_max_rel_diff": float(f"{worst:.3g}"),
                     "checked_input_shapes": [[list(s) for s in shapes] for shapes in checks]})
        if notes:
            info["not_dynamic_because"] = notes
        log(f"model.onnx: opset {opset}, dynamic axes: {label}; onnx.checker ok; onnxruntime vs PyTorch "
            f"max rel diff {worst:.1e}")
        return info
    info["exported"] = False
    info["why"] = notes
    return info


def onnx_outputs(out_dir: Path, feed: dict[str, np.ndarray], sess_cache: dict) -> dict[str, np.ndarray]:
    """Run out_dir/model.onnx in onnxruntime on a feed (by input blob name); outputs by blob name."""
    import onnxruntime as ort  # noqa: PLC0415  (heavy: only --onnx uses it)

    key = str(out_dir)
    if key not in sess_cache:
        sess_cache[key] = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    sess = sess_cache[key]
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: feed[i.name].astype(np.float32) for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed), strict=True))
