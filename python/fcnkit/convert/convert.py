"""Caffe prototxt + caffemodel -> OUT_DIR/{model.py, weights.safetensors, conversion.json}.

The output directory is assembled in a temporary sibling directory and renamed into place only when
everything is written, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import keyword
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fcnkit.caffenet.graph import Graph, build_graph, load_plugins
from fcnkit.caffenet.model_folder import (
    MODEL_FILE,
    WEIGHTS_FILE,
    load_generated,
    to_json_value,
    write_info,
    write_safetensors,
)
from fcnkit.convert import codegen
from fcnkit.convert.onnx_export import export_onnx
from fcnkit.convert.verify import check_memory
from fcnkit.errors import UserError
from fcnkit.io import caffe_schema as schema
from fcnkit.io.atomic import fsync_path, remove_stale, replace_path, umask_mode

FORMAT_VERSION = 1


@dataclass
class Result:
    out_dir: Path
    graph: Graph
    info: dict
    seconds: float


# ---------------------------------------------------------------------------------- preprocessing
def _f32(v) -> float:
    """A float32 proto value as its shortest decimal (104.00699, not 104.00698852539062)."""
    return float(str(np.float32(v)))


def preprocessing(net, source: str, base_dir: Path) -> dict:
    """What the Caffe data layers did to images before the net saw them, from their transform_param."""
    data_layers = [layer for layer in net.layer
                   if layer.type in ("Data", "ImageData", "WindowData", "MemoryData", "AnnotatedData")
                   or layer.HasField("transform_param")]
    if not data_layers:
        return {"known": False, "source": source,
                "note": ("the prototxt has no data layer with a transform_param. Caffe nets trained from "
                         "images usually expect BGR channel order, pixel values 0-255 minus a per-channel "
                         "mean; pass --preprocess-from TRAIN_VAL.prototxt to record the real values")}
    layer = data_layers[0]
    tp = layer.transform_param
    info: dict = {"known": True, "source": f"{source}, layer '{layer.name}' ({layer.type})",
                  "channel_order": "BGR (Caffe reads images with OpenCV)",
                  "value_range": "0-255 before mean subtraction and scaling",
                  "layout": "NCHW float32",
                  "order_of_operations": "subtract mean, then multiply by scale (Caffe's DataTransformer)",
                  "mean_value": [_f32(m) for m in tp.mean_value],
                  "scale": _f32(tp.scale)}
    if tp.mean_file:
        info["mean_file"] = tp.mean_file
        path = Path(tp.mean_file)
        if not path.is_absolute():
            path = base_dir / path
        if path.is_file():
            mean = schema.read_mean_file(path)
            info["mean_file_per_channel"] = [float(m) for m in mean.reshape(mean.shape[0], -1).mean(axis=1)]
            info["mean_file_shape"] = list(mean.shape)
        else:
            info["mean_file_note"] = f"{path} not found; its values are not recorded"
    if tp.crop_size or tp.crop_h or tp.crop_w:
        info["crop"] = [tp.crop_h or tp.crop_size, tp.crop_w or tp.crop_size]
    if tp.mirror:
        info["mirror"] = "random horizontal flips in training (none at test)"
    if tp.force_color or tp.force_gray:
        info["force"] = "color" if tp.force_color else "gray"
    if layer.type == "ImageData":
        p = layer.image_data_param
        info["resize"] = [p.new_height, p.new_width] if p.new_height and p.new_width else None
        info["is_color"] = p.is_color
    return info


def manual_preprocessing(pre: dict, mean: list[float] | None, scale: float | None, graph: Graph) -> dict:
    """--mean/--scale given on the command line: they replace what the prototxt said."""
    channels = {i.shape[1] for i in graph.inputs if len(i.shape) >= 2}
    if mean is not None and len(mean) != 1 and channels and len(mean) not in channels:
        have = " or ".join(str(c) for c in sorted(channels))
        raise UserError(f"--mean has {len(mean)} values but the net's input has {have} channels; give one "
                        "value per channel (or a single value)")
    out = {"known": True, "source": "command line (--mean/--scale)",
           "channel_order": pre.get("channel_order", "BGR (Caffe reads images with OpenCV)"),
           "value_range": pre.get("value_range", "0-255 before mean subtraction and scaling"),
           "layout": "NCHW float32",
           "order_of_operations": "subtract mean, then multiply by scale (Caffe's DataTransformer)",
           "mean_value": [_f32(m) for m in (pre.get("mean_value", []) if mean is None else mean)],
           "scale": _f32(pre.get("scale", 1.0) if scale is None else scale)}
    if pre.get("known"):
        out["prototxt_said"] = {k: pre[k] for k in ("source", "mean_value", "scale") if k in pre}
    return out


def preprocessing_lines(pre: dict) -> list[str]:
    if not pre.get("known"):
        return ["unknown: " + pre["note"]]
    lines = [f"channel order {pre['channel_order']}, {pre['value_range']}, {pre['layout']}"]
    if pre["mean_value"]:
        lines.append(f"subtract per-channel mean {pre['mean_value']} (in channel order)")
    if "mean_file" in pre:
        extra = pre.get("mean_file_per_channel")
        avg = f" (per-channel average {extra})" if extra else ""
        lines.append(f"subtract mean image {pre['mean_file']}{avg}")
    if pre["scale"] != 1.0:
        lines.append(f"then multiply by scale {pre['scale']}")
    if "crop" in pre:
        lines.append(f"crop {pre['crop'][0]}x{pre['crop'][1]} (center crop at test)")
    lines.append(f"(from {pre['source']})")
    return lines


# ------------------------------------------------------------------------------------------ checks
def scriptability(model_py: Path, graph: Graph, check_export: bool, class_name: str) -> dict:
    """Does torch.jit.script (and optionally torch.export) accept the generated module? Weights are not
    needed for that, so the net is built on the meta device."""
    result: dict = {}
    try:
        module = load_generated(model_py, class_name=class_name)
        cls = module.Net
        with torch.device("meta"):
            net = cls().eval()
    except UserError:  # the audit refused the file: a converter bug that must not pass as a note
        raise
    except Exception as exc:  # a generator bug; reported in conversion.json rather than hidden
        return {"torch.jit.script": f"not checked: model.py failed to load: {exc}"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.script(net)
        result["torch.jit.script"] = "ok"
    except Exception as exc:
        result["torch.jit.script"] = f"fails: {str(exc).strip().splitlines()[0]}"
    if check_export:
        try:
            example = tuple(torch.empty(i.shape, device="meta") for i in graph.inputs)
            # a refused export prints the whole traced graph to stderr: keep it out of the user's console
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.export.export(net, example)
            result["torch.export"] = "ok (at the conversion input shapes, static)"
        except Exception as exc:
            result["torch.export"] = f"fails: {str(exc).strip().splitlines()[0]}"
    else:
        result["torch.export"] = "not checked"
    sys.modules.pop(module.__name__, None)
    return result


def _prepare_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {out_dir} exists and is not a directory; choose another -o")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UserError(f"output directory {out_dir} is not empty; pass --force to replace it, or choose "
                        "another -o")
    parent = out_dir.parent
    if not parent.is_dir():
        raise UserError(f"parent directory {parent} of the output does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write into {parent}; choose another -o")


def non_finite_weights(graph: Graph) -> dict[str, int]:
    """{Caffe layer: number of NaN/inf weight values} for the layers that have any."""
    bad = {}
    for node in graph.modules():
        n = sum(int(a.size - np.count_nonzero(np.isfinite(a))) for a in node.spec.params.values())
        if n:
            bad[node.name] = n
    return bad


def convert(prototxt: str | os.PathLike, caffemodel: str | os.PathLike, out_dir: str | os.PathLike, *,
            force: bool = False, input_shapes: dict[str, tuple[int, ...]] | None = None,
            preprocess_from: str | os.PathLike | None = None, skip: tuple[str, ...] = (),
            class_name: str | None = None, check_export: bool = True, mean: list[float] | None = None,
            scale: float | None = None, plugins: tuple[str, ...] = (), onnx: bool = False,
            opset: int = 17, verify_sizes=(), log=None) -> Result:
    t0 = time.perf_counter()
    log = log or (lambda msg: None)
    prototxt, caffemodel, out_dir = Path(prototxt), Path(caffemodel), Path(out_dir).absolute()
    _prepare_out_dir(out_dir, force)

    raw = schema.load_prototxt(prototxt)
    net, report = schema.upgrade_net(raw, str(prototxt))
    net = schema.filter_net(net, "TEST")
    log(f"read {prototxt} ({report.format} format, {len(net.layer)} layers in the TEST phase)")
    model = schema.read_caffemodel(caffemodel)
    n_blobs = sum(len(w.blobs) for w in model.layers.values())
    log(f"read {caffemodel} ({model.size / 2**20:.1f} MiB, {model.format} format, {n_blobs} blobs)")

    plugin_modules = load_plugins(plugins)
    graph = build_graph(net, model, str(prototxt), str(caffemodel), input_shapes=input_shapes,
                        skip=set(skip), name=raw.name, plugins=plugin_modules)

    if preprocess_from is not None:
        pre_net, _ = schema.upgrade_net(schema.load_prototxt(preprocess_from, "--preprocess-from prototxt"),
                                        str(preprocess_from))
        pre = preprocessing(schema.filter_net(pre_net, "TEST"), str(preprocess_from),
                            Path(preprocess_from).parent)
    else:
        pre = preprocessing(net, str(prototxt), prototxt.parent)
    if mean is not None or scale is not None:
        pre = manual_preprocessing(pre, mean, scale, graph)
    cls = class_name or codegen.class_name(raw.name)
    if not cls.isidentifier() or keyword.iskeyword(cls):
        raise UserError(f"--class-name {cls!r} is not a Python identifier (letters, digits, _; not a keyword)")
    try:
        source = codegen.render(graph, prototxt=str(prototxt), caffemodel=str(caffemodel),
                                preprocessing_lines=preprocessing_lines(pre), cls_name=cls)
    except (SyntaxError, TypeError, ValueError) as exc:  # a generator bug must not reach the user as a traceback
        raise UserError(f"{prototxt}: generating model.py failed ({type(exc).__name__}: {exc}); this is a "
                        "converter bug, please report it with the prototxt (--skip the layer named in it as a "
                        "workaround)") from exc
    tensors = graph.state_tensors()
    bad = non_finite_weights(graph)
    if bad:
        log("warning: the caffemodel holds non-finite weights (NaN/inf), so every output will be non-finite: "
            + "; ".join(f"layer '{k}' {n} values" for k, n in bad.items())
            + " (`--verify` fails on them, inference refuses the model)")

    info = {
        "format_version": FORMAT_VERSION,
        "tool": "fcnkit convert (caffe2torch)",
        "source": {"prototxt": str(prototxt), "caffemodel": str(caffemodel),
                   # where the files are from the output folder, and absolutely: the folder can be moved
                   "prototxt_from_folder": os.path.relpath(prototxt.absolute(), out_dir),
                   "caffemodel_from_folder": os.path.relpath(caffemodel.absolute(), out_dir),
                   "prototxt_absolute": str(prototxt.absolute()), "caffemodel_absolute": str(caffemodel.absolute()),
                   "caffemodel_bytes": model.size, "prototxt_format": report.format,
                   "caffemodel_format": model.format, "upgrade_notes": report.notes, "phase": "TEST"},
        "net_name": raw.name,
        "class_name": cls,
        "inputs": [{"blob": i.blob, "argument": i.var, "shape": list(i.shape), "layer": i.layer,
                    "layer_type": i.type} for i in graph.inputs],
        "outputs": [{"blob": o, "position": k, "shape": list(graph.blob_shapes[o])}
                    for k, o in enumerate(graph.outputs)],
        "preprocessing": pre,
        "layers": [],
        "blobs": {b: list(s) for b, s in graph.blob_shapes.items()},
        "renamed": {},
        "unused_caffemodel_layers": graph.unused_weights,
        "plugins": {n.name: f"{n.spec.plugin[0]}.{n.spec.plugin[1]}" for n in graph.modules() if n.spec.plugin},
        "tensors": {k: list(a.shape) for k, a in tensors.items()},
        "non_finite_weights": bad,
    }
    modules_of: dict[str, list[str]] = {}
    for n in graph.nodes:
        entry = {"name": n.name, "type": n.type, "kind": n.kind, "bottoms": n.bottoms, "tops": n.tops,
                 "top_shapes": [list(s) for s in n.top_shapes]}
        if n.kind == "module":
            entry["module"] = n.module
            entry["torch"] = codegen.constructor(n)
            entry["module_spec"] = {"cls": n.spec.cls, "args": to_json_value(n.spec.args),
                                    "kwargs": to_json_value(n.spec.kwargs), "call": n.spec.call,
                                    "multi_top": n.spec.multi_top}
            entry["params"] = {f"{n.module}.{k}": list(a.shape) for k, a in n.spec.params.items()}
            if n.in_place:
                entry["in_place"] = True
            modules_of.setdefault(n.name, []).append(n.module)
        if n.notes:
            entry["notes"] = n.notes
        info["layers"].append(entry)
    # renamed: layer -> module where they differ; a name several layers share -> all their modules, in order
    for layer_name, mods in modules_of.items():
        if len(mods) > 1:
            info["renamed"][layer_name] = mods
        elif mods[0] != layer_name:
            info["renamed"][layer_name] = mods[0]
    renamed_blobs = {b: var for b, var in graph.var_names.items() if b != var}
    if renamed_blobs:
        info["renamed_blobs"] = renamed_blobs

    if verify_sizes:  # --verify will run these sizes in Caffe: refuse the impossible ones before writing

        for size in verify_sizes:
            check_memory(info, size)
    prefix = f".{out_dir.name}.tmp-"
    remove_stale(out_dir.parent, prefix)  # leftovers of a killed conversion
    tmp = out_dir.parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / MODEL_FILE).write_text(source)
        write_safetensors(tensors, tmp / WEIGHTS_FILE,
                          {"format": "pt", "source": caffemodel.name, "converter": "fcnkit convert"})
        del tensors
        info["scriptability"] = scriptability(tmp / MODEL_FILE, graph, check_export, cls)
        if onnx:
            info["onnx"] = export_onnx(tmp, graph, opset, log=log, pre=pre)
        info["seconds"] = round(time.perf_counter() - t0, 3)
        write_info(tmp, info)
        for f in [*tmp.iterdir(), tmp]:
            umask_mode(f)  # mkdtemp and safetensors create 0700/0600; give what any other tool would
            fsync_path(f)
        replace_path(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Result(out_dir=out_dir, graph=graph, info=info, seconds=time.perf_counter() - t0)
