"""`convert --verify`: run real Caffe (pycaffe) and the converted module on the same inputs and compare
every blob.

Inputs: real photographs shipped with scikit-image (astronaut, chelsea, coffee; resized, BGR, with the
recorded mean/scale applied) plus random tensors, at each requested size. Blob values are taken after
the forward pass, as Caffe's `net.blobs` holds them (in-place layers leave the last value). The
converted side is the generated model.py loaded from OUT_DIR with its own loader, so what is checked is
exactly what was written.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from fcnkit.caffenet.model_folder import (
    MODEL_FILE,
    WEIGHTS_FILE,
    ConvertedNet,
    load_converted,
    load_generated,
    read_info,
)
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.convert.onnx_export import onnx_outputs
from fcnkit.convert.tolerance import TOL, magnitude_and_diff, rel_diff, relative
from fcnkit.errors import UserError
from fcnkit.io import caffe_schema as schema
from fcnkit.io.caffe_schema import read_caffemodel

PHOTOS = ("astronaut", "chelsea", "coffee")


@dataclass
class BlobStat:
    shape: tuple[int, ...] = ()
    ref_max: float = 0.0
    max_abs: float = 0.0
    max_rel: float = 0.0
    problem: str = ""
    # a detection net's top-k list (DetectionOutput): not judged when the raw heads it ranks agree, since NMS
    # and top-k flip between boxes whose scores tie within float32 rounding
    ranked: str = ""

    def update(self, ref: np.ndarray, out: np.ndarray) -> None:
        if ref.shape != out.shape:
            self.problem = f"shape {tuple(out.shape)} vs Caffe {tuple(ref.shape)}"
            self.shape = tuple(ref.shape)
            return
        self.shape = tuple(ref.shape)
        bad_ref, bad_out = ref.size - int(np.isfinite(ref).sum()), out.size - int(np.isfinite(out).sum())
        if bad_ref or bad_out:
            # NaN == NaN on both sides is no agreement: a blob that is not finite is a finding
            self.problem = f"non-finite values (NaN/inf): Caffe {bad_ref}, converted {bad_out}"
            return
        scale, diff = magnitude_and_diff(ref, out)
        rel = relative(diff, scale)
        self.ref_max = max(self.ref_max, scale)
        self.max_abs = max(self.max_abs, diff)
        self.max_rel = max(self.max_rel, rel)


@dataclass
class SizeReport:
    label: str
    cases: list[str]
    stats: dict[str, BlobStat] = field(default_factory=dict)
    error: str = ""
    note: str = ""    # why nothing was compared, when that is expected (not a failure)

    def ok(self, tol: float) -> bool:
        return not self.error and all(s.ranked or (not s.problem and s.max_rel <= tol) for s in self.stats.values())


def judge_on_raw_heads(rep: SizeReport, info: dict, tol: float) -> None:
    """A DetectionOutput top that differs from Caffe's while every blob it reads (locations, confidences,
    priors) agrees is reported, not judged: its top-k list reorders boxes whose scores tie within float32."""
    for layer in info["layers"]:
        if layer["type"] != "DetectionOutput" or layer["kind"] != "module":
            continue
        heads = [rep.stats.get(b) for b in layer["bottoms"]]
        if not all(h is not None and not h.problem and h.max_rel <= tol for h in heads):
            continue
        for top in layer["tops"]:
            stat = rep.stats.get(top)
            if stat is not None and (stat.problem or stat.max_rel > tol):
                extra = f"; {stat.problem}" if stat.problem else ""
                stat.ranked = (f"the top-k list differs (max rel diff {stat.max_rel:.2e}{extra}) "
                               f"while the raw heads {layer['bottoms']} agree: not judged (ties within float32 "
                               "reorder NMS/top-k)")


def _photo(name: str, shape: tuple[int, ...], pre: dict) -> np.ndarray:
    """One photo as a (C, H, W) float32 array in Caffe's convention (BGR, mean subtracted, scaled)."""
    from skimage import data as skdata  # noqa: PLC0415  (scikit-image: slow import, only --verify needs photos)

    c, h, w = shape[-3], shape[-2], shape[-1]
    img = getattr(skdata, name)()
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)
    if c == 1:
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        chw = gray[None].astype(np.float32)
    else:
        chw = img[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)  # RGB -> BGR, HWC -> CHW
    if pre.get("known"):
        mean = pre.get("mean_value") or pre.get("mean_file_per_channel") or []
        if len(mean) == 1 or len(mean) == c:
            chw -= np.asarray(mean, np.float32).reshape(-1, 1, 1)
        chw *= np.float32(pre.get("scale", 1.0))
    return chw


def make_inputs(inputs: list[dict], size: tuple[int, int] | None, pre: dict, n_photos: int, n_random: int,
                seed: int = 0) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(case label, {input blob: array})]; photos only for 4-D 1- or 3-channel inputs."""
    shapes = {}
    for i in inputs:
        shape = list(i["shape"])
        if size is not None and len(shape) == 4:
            shape[2], shape[3] = size[1], size[0]
        shapes[i["blob"]] = tuple(shape)
    image_like = all(len(s) == 4 and s[1] in (1, 3) for s in shapes.values())
    cases = []
    if image_like:
        for k in range(min(n_photos, len(PHOTOS))):
            feed = {}
            for blob, s in shapes.items():
                names = [PHOTOS[(k + j) % len(PHOTOS)] for j in range(s[0])]
                feed[blob] = np.stack([_photo(n, s, pre) for n in names])
            cases.append((f"photo {PHOTOS[k]}", feed))
    rng = np.random.default_rng(seed)
    for k in range(n_random):
        if image_like and pre.get("known"):  # random pixels 0-255, preprocessed like the photos
            feed = {}
            for b, s in shapes.items():
                mean = np.asarray(pre.get("mean_value") or pre.get("mean_file_per_channel") or [0.0], np.float32)
                mean = mean.reshape(-1, 1, 1) if mean.size in (1, s[1]) else np.float32(0)
                feed[b] = ((rng.uniform(0, 255, s) - mean) * np.float32(pre.get("scale", 1.0))).astype(np.float32)
            cases.append((f"random #{k + 1}", feed))
            continue
        amp = 60.0 if image_like else 1.0
        cases.append((f"random #{k + 1}", {b: (rng.standard_normal(s) * amp).astype(np.float32)
                                           for b, s in shapes.items()}))
    return cases


def torch_layer_outputs(net, info: dict, feed: dict[str, np.ndarray], dtype=None) -> dict[str, list[np.ndarray]]:
    """Run the converted module once; each module's outputs as they were right after it ran (copies, so a
    later in-place layer does not change them), by module name. dtype: run in this precision (float64 for
    --fp64; the module must have been converted with .to(dtype))."""
    captured: dict[str, list[np.ndarray]] = {}

    def keep(name):
        def hook(m, a, out):
            outs = out if isinstance(out, list | tuple) else [out]
            captured[name] = [t.detach().to("cpu", torch.float64 if dtype is not None else t.dtype).numpy().copy()
                              for t in outs]
        return hook

    hooks = [mod.register_forward_hook(keep(name)) for name, mod in net.named_children()]
    try:
        args = [torch.from_numpy(feed[i["blob"]]) for i in info["inputs"]]
        if dtype is not None:
            args = [a.to(dtype) for a in args]
        with torch.inference_mode():
            net(*args)
    finally:
        for h in hooks:
            h.remove()
    return captured


def final_blobs(info: dict, layer_outputs: dict[str, list[np.ndarray]], feed: dict[str, np.ndarray]):
    """Every blob's final value (what Caffe's net.blobs holds after forward): its last writer's output."""
    blobs = {i["blob"]: feed[i["blob"]] for i in info["inputs"]}
    for layer in info["layers"]:
        if layer["kind"] == "module":
            for k, top in enumerate(layer["tops"]):
                blobs[top] = layer_outputs[layer["module"]][k]
    return blobs


def torch_blobs(net, info: dict, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the converted module and return every blob's final value."""
    return final_blobs(info, torch_layer_outputs(net, info, feed), feed)


def same_as_data_loader(net_py, net_data, info: dict, feed: dict[str, np.ndarray]) -> None:
    """model.py and the data-only loader must compute the same outputs, bit for bit (same modules)."""
    args = [torch.from_numpy(feed[i["blob"]]) for i in info["inputs"]]
    with torch.inference_mode():
        a, b = net_py(*args), net_data(*args)
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    for name, x, y in zip((o["blob"] for o in info["outputs"]), a, b, strict=True):
        nan_same = torch.equal(torch.isnan(x), torch.isnan(y))
        if not (nan_same and torch.equal(torch.nan_to_num(x), torch.nan_to_num(y))):
            raise RuntimeError(f"converter bug: model.py and conversion.json give different '{name}'")


def blob_sizes(info: dict, size: tuple[int, int] | None) -> dict[str, int]:
    """Values per blob at an input size (shapes from a meta-device run of the data-only module)."""

    shapes = {}
    for i in info["inputs"]:
        shape = list(i["shape"])
        if size is not None and len(shape) == 4:
            shape[2], shape[3] = size[1], size[0]
        shapes[i["blob"]] = shape
    with torch.device("meta"):
        net = ConvertedNet(info)
    counts = {b: math.prod(s) for b, s in shapes.items()}
    hooks = [mod.register_forward_hook(
        lambda m, a, out, tops=tops: counts.update(
            {t: o.numel() for t, o in zip(tops, out if isinstance(out, list | tuple) else [out], strict=False)}))
        for name, _b, tops, _c, _m in net.steps for mod in [net._modules[name]]]
    try:
        with torch.inference_mode():
            net(*(torch.empty(s, device="meta") for s in shapes.values()))
    except (RuntimeError, ValueError, IndexError):
        pass  # the size is rejected by a layer: verify reports that per size
    finally:
        for h in hooks:
            h.remove()
    return counts


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(info: dict, size: tuple[int, int] | None) -> None:
    """Refuse a size Caffe cannot hold (a blob over 2^31 - 1 values is a failed CHECK, i.e. an abort) or
    this machine cannot: Caffe and PyTorch each keep every blob of the net."""
    counts = blob_sizes(info, size)
    label = "the prototxt's input size" if size is None else f"{size[0]}x{size[1]}"
    big = max(counts.items(), key=lambda kv: kv[1])
    if big[1] > 2**31 - 1:
        raise UserError(f"--verify at {label}: blob '{big[0]}' would hold {big[1]:,} values, more than Caffe's "
                        "limit of 2^31 - 1; choose smaller --sizes")
    need = 2 * 4 * sum(counts.values())
    have = available_memory()
    if have is not None and need > have:
        raise UserError(f"--verify at {label} needs about {need / 2**30:.1f} GiB for the blobs of Caffe and PyTorch, "
                        f"{have / 2**30:.1f} GiB are available; choose smaller --sizes")


def _set_inputs(net, feed: dict[str, np.ndarray]) -> None:
    for blob, arr in feed.items():
        if net.blobs[blob].data.shape != arr.shape:
            net.blobs[blob].reshape(*arr.shape)
    net.reshape()
    for blob, arr in feed.items():
        net.blobs[blob].data[...] = arr


def caffe_blobs(net, feed: dict[str, np.ndarray], names) -> dict[str, np.ndarray]:
    _set_inputs(net, feed)
    net.forward()
    return {b: net.blobs[b].data.copy() for b in names if b in net.blobs}


@dataclass
class Divergence:
    index: int            # position of the layer in Caffe's net
    layer: str
    type: str
    top: str
    max_rel: float
    case: str
    detail: str = ""


def caffe_layer_by_layer(net, feed: dict[str, np.ndarray], info: dict, torch_outputs: dict[str, list[np.ndarray]],
                         tol: float, case: str) -> Divergence | None:
    """Run Caffe one layer at a time and compare each converted layer's tops, right after it ran, with the
    converted module's outputs; the first layer beyond tolerance (or None). Caffe's own Split layers and
    layers the converter left out are not compared."""
    _set_inputs(net, feed)
    modules: dict[str, list[dict]] = {}
    for layer in info["layers"]:
        if layer["kind"] == "module":
            modules.setdefault(layer["name"], []).append(layer)
    seen: dict[str, int] = {}
    first = None
    names = list(net._layer_names)
    for i, name in enumerate(names):
        net._forward(i, i)
        k = seen.get(name, 0)
        seen[name] = k + 1
        entries = modules.get(name, [])
        if first is not None or k >= len(entries):
            continue
        entry = entries[k]
        if entry["type"] == "DetectionOutput":  # judged on its raw heads (judge_on_raw_heads)
            continue
        outs = torch_outputs.get(entry["module"])
        tops = [net._blob_names[j] for j in net._top_ids(i)]
        if outs is None or len(outs) != len(tops):
            continue
        for k_top, (top, out) in enumerate(zip(tops, outs, strict=True)):
            stat = BlobStat()
            stat.update(net.blobs[top].data, out)
            if stat.problem or stat.max_rel > tol:
                detail = stat.problem
                if entry["type"] == "Pooling" and k_top == 1 and not detail:
                    detail = _mask_ties(net.blobs[net.bottom_names[name][0]].data, net.blobs[top].data, out, tol)
                first = Divergence(i, name, entry["type"], top, stat.max_rel, case, detail)
                break
    return first


def _mask_ties(x: np.ndarray, caffe_mask: np.ndarray, mask: np.ndarray, tol: float) -> str:
    """Explain a MAX-pooling mask that differs only where the window holds equal maxima (a flat image region):
    Caffe takes the first of them, the converted net whichever its float rounding makes largest."""
    n, c = np.nonzero((caffe_mask != mask).any(axis=(2, 3)))
    plane = x.reshape(x.shape[0], x.shape[1], -1)
    scale = float(np.abs(x).max()) or 1.0
    for ni, ci in zip(n, c, strict=True):
        diff = caffe_mask[ni, ci] != mask[ni, ci]
        a = plane[ni, ci, caffe_mask[ni, ci][diff].astype(int)]
        b = plane[ni, ci, mask[ni, ci][diff].astype(int)]
        if np.abs(a - b).max() > tol * scale:
            return ""
    return (f"{int((caffe_mask != mask).sum())} mask indices differ, all between window maxima equal to within "
            "the tolerance (flat image regions): Caffe keeps the first, float rounding decides here; not a "
            "conversion error, but what unpools by this mask differs from there on")


# Caffe cannot always read big caffemodels itself: BVLC caps binary protos at 2 GiB and the unpatched
# brocolli-caffe 9.0.2 sdist at 512 MiB (a full-size FCN-8s is 537 MB). Above the lower cap, a throw-away
# subprocess tries first, because a refused read aborts the whole process instead of raising.
SMALL_ENOUGH = 512 * 2**20
_readable_up_to = SMALL_ENOUGH  # grows when a probe succeeds, so one process probes once


def _caffe_reads(prototxt, caffemodel) -> bool:
    code = ("import os, sys; os.environ.setdefault('GLOG_minloglevel', '2'); import caffe; caffe.set_mode_cpu(); "
            "caffe.Net(sys.argv[1], sys.argv[2], caffe.TEST)")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(prototxt), str(caffemodel)], capture_output=True,
                           timeout=900)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def check_caffe_runs(caffe, prototxt) -> None:
    """Caffe aborts the process on a prototxt it cannot parse or a layer type it lacks (a fork's: Interp,
    ROIPooling, C3D's Convolution3D): say so in one line before handing it the file."""
    from caffe.proto import caffe_pb2  # noqa: PLC0415  (pycaffe's schema: what Caffe itself will parse)
    from google.protobuf import text_format  # noqa: PLC0415  (with pycaffe's own schema, only --verify needs it)

    fix = ("convert without --verify (the fork's layers are checked by fcnkit's tests against the fork's rules), "
           "or verify the same net written in this Caffe's layers")
    try:
        text_format.Parse(Path(prototxt).read_text(), caffe_pb2.NetParameter())
    except text_format.ParseError as exc:
        raise UserError(f"--verify: this Caffe cannot parse {prototxt} ({str(exc).splitlines()[0]}), it uses a "
                        f"fork's fields; {fix}") from exc
    known = set(caffe.layer_type_list())
    net = schema.filter_net(schema.upgrade_net(schema.load_prototxt(prototxt), str(prototxt))[0], "TEST")
    for layer in net.layer:
        if layer.type not in known:
            raise UserError(f"--verify: this Caffe has no layer type '{layer.type}' (layer '{layer.name}' of "
                            f"{prototxt}); {fix}")


def caffe_net(caffe, prototxt, caffemodel, quiet: bool = False):
    """caffe.Net for TEST with the caffemodel's weights, read by Caffe itself when it can; otherwise the
    weights are copied in blob by blob from this package's reader (with a note saying so)."""
    global _readable_up_to
    size = Path(caffemodel).stat().st_size
    if size <= _readable_up_to or _caffe_reads(prototxt, caffemodel):
        _readable_up_to = max(_readable_up_to, size)
        return caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)

    if not quiet:
        print(f"note: this Caffe build cannot read {caffemodel} ({size / 2**20:.0f} MiB); its weights are "
              "copied into Caffe from fcnkit's caffemodel reader instead")
    net = caffe.Net(str(prototxt), caffe.TEST)
    model = read_caffemodel(caffemodel)
    for name, blobs in net.params.items():
        src = model.layers.get(name)
        if src is None or len(src.blobs) != len(blobs):
            raise UserError(f"{caffemodel}: cannot load layer '{name}' into Caffe for --verify")
        for dst, blob in zip(blobs, src.blobs, strict=True):
            dst.data[...] = blob.data.reshape(dst.data.shape)
    return net


def _fmt_shape(s) -> str:
    return "x".join(str(d) for d in s) if s else "scalar"


def print_report(rep: SizeReport, tol: float, quiet: bool) -> None:
    print(f"\n== {rep.label}: {', '.join(rep.cases) or 'no inputs'} ==")
    if rep.error:
        print(f"   FAILED: {rep.error}")
        return
    if rep.note and not rep.stats:
        print(f"   not compared: {rep.note}")
        return
    if quiet:
        bad = [b for b, s in rep.stats.items() if not s.ranked and (s.problem or s.max_rel > tol)]
        for b, s in rep.stats.items():
            if s.ranked:
                print(f"   {b}: {s.ranked}")
        worst = max((s.max_rel for s in rep.stats.values() if not s.ranked), default=0.0)
        failing = f", FAILING: {bad}" if bad else ""
        print(f"   {len(rep.stats)} blobs, worst max rel diff {worst:.2e}{failing}")
        return
    width = max([len(b) for b in rep.stats] + [4])
    print(f"   {'blob':<{width}}  {'shape':<18} {'max|caffe|':>11} {'max abs diff':>13} "
          f"{'max rel diff':>13}  ok")
    for blob, s in rep.stats.items():
        if s.ranked:
            print(f"   {blob:<{width}}  {_fmt_shape(s.shape):<18} {'':>39}  info: {s.ranked}")
            continue
        if s.problem:
            print(f"   {blob:<{width}}  {_fmt_shape(s.shape):<18} {'':>39}  NO: {s.problem}")
            continue
        ok = "yes" if s.max_rel <= tol else "NO"
        print(f"   {blob:<{width}}  {_fmt_shape(s.shape):<18} {s.ref_max:>11.4g} {s.max_abs:>13.3e} "
              f"{s.max_rel:>13.3e}  {ok}")


def _recurrent_state(info: dict) -> bool:
    """Caffe's LSTM/RNN without expose_hidden carry their last state into the next forward call."""
    return any(layer["type"] in ("LSTM", "RNN") for layer in info["layers"])


def verify(prototxt, caffemodel, out_dir, *, sizes=None, tol: float = TOL, n_photos: int = 2,
           n_random: int = 1, quiet: bool = False, seed: int = 0, fp64: bool = False, onnx: bool = False) -> bool:
    """Compare Caffe and the converted module blob by blob (and layer by layer, to name the first layer that
    diverges); with onnx also model.onnx's outputs in onnxruntime. Prints tables; True when all are
    within tol."""
    out_dir = Path(out_dir)
    info = read_info(out_dir)
    for size in (sizes or [None]):
        check_memory(info, size)  # before Caffe, which aborts on blobs over 2^31 values
    caffe = load_caffe()
    check_caffe_runs(caffe, prototxt)
    module = load_generated(out_dir / MODEL_FILE)
    net_t = module.load_model(str(out_dir / WEIGHTS_FILE))
    # what inference runs: conversion.json as data, not model.py (plugin layers exist only in model.py)
    net_d = None if info.get("plugins") else load_converted(out_dir, allow_non_finite=True)
    dtype = None
    if fp64:
        net_t = net_t.to(torch.float64)
        dtype = torch.float64
    net_c = caffe_net(caffe, prototxt, caffemodel, quiet)
    missing = [i["blob"] for i in info["inputs"] if i["blob"] not in net_c.inputs]
    if missing:
        raise UserError(f"--verify feeds inputs {missing}, which are data layers in {prototxt}; verify "
                        "with a deploy prototxt (Input layers)")
    fresh_net_per_case = _recurrent_state(info)
    names = list(info["blobs"])
    pre = info.get("preprocessing", {})
    onnx_info = info.get("onnx", {})
    ort_cache: dict = {}
    reports = []
    onnx_reports = []
    first: Divergence | None = None
    last_feed = None  # the input the backends table runs on (the first one that the converted net took)
    for size in (sizes or [None]):
        label = "prototxt input size" if size is None else f"{size[0]}x{size[1]} (WxH)"
        cases = make_inputs(info["inputs"], size, pre, n_photos, n_random, seed)
        rep = SizeReport(label, [c for c, _ in cases])
        onnx_rep = SizeReport(label, [c for c, _ in cases])
        for case, feed in cases:
            try:
                layer_outs = torch_layer_outputs(net_t, info, feed, dtype)
                if net_d is not None and dtype is None:
                    same_as_data_loader(net_t, net_d, info, feed)
            except RuntimeError as exc:  # e.g. an InnerProduct net at another size; Caffe would abort
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                rep.error = f"the converted net rejects this size ({why}); not run in Caffe"
                break
            tb = final_blobs(info, layer_outs, feed)
            if last_feed is None:
                last_feed = feed
            if fresh_net_per_case:
                net_c = caffe_net(caffe, prototxt, caffemodel, True)
            div = caffe_layer_by_layer(net_c, feed, info, layer_outs, tol, f"{label}, {case}")
            if div is not None and (first is None or div.index < first.index):
                first = div
            cb = {b: net_c.blobs[b].data.copy() for b in names if b in net_c.blobs}
            for blob in names:
                if blob not in cb:
                    continue
                stat = rep.stats.setdefault(blob, BlobStat())
                if blob not in tb:
                    stat.problem = "not produced by the converted module"
                    continue
                stat.update(cb[blob], tb[blob])
            if onnx:
                _compare_onnx(out_dir, onnx_info, feed, cb, onnx_rep, ort_cache)
        judge_on_raw_heads(rep, info, tol)
        print_report(rep, tol, quiet)
        reports.append(rep)
        if onnx:
            onnx_rep.label = f"onnxruntime (model.onnx) vs Caffe, {label}"
            print_report(onnx_rep, tol, quiet)
            onnx_reports.append(onnx_rep)
    if last_feed is not None and not fp64:
        net_b = caffe_net(caffe, prototxt, caffemodel, True) if fresh_net_per_case else net_c
        backends_report(prototxt, caffemodel, out_dir, info, last_feed, net_b, net_t, tol, onnx)
    ok = all(r.ok(tol) for r in reports + onnx_reports)
    worst = max((s.max_rel for r in reports for s in r.stats.values() if not s.ranked), default=0.0)
    n_blobs = len({b for r in reports for b in r.stats})
    precision = " (converted module in float64)" if fp64 else ""
    if first is not None:
        extra = f" ({first.detail})" if first.detail else f" (max rel diff {first.max_rel:.2e})"
        print(f"\nfirst divergence: layer '{first.layer}' ({first.type}), top '{first.top}'{extra}, "
              f"{first.case}; the layers before it agree{precision}")
    else:
        print(f"\nfirst divergence: none -- every converted layer agrees with Caffe right after it runs{precision}")
    if onnx:
        worst_onnx = max((s.max_rel for r in onnx_reports for s in r.stats.values()), default=0.0)
        print(f"onnxruntime: {len({b for r in onnx_reports for b in r.stats})} output(s), worst max rel diff "
              f"{worst_onnx:.2e} against Caffe")
    verdict = "PASS" if ok else "FAIL"
    print(f"\nverify: {verdict}: {n_blobs} blobs x {len(reports)} size(s), worst max rel diff {worst:.2e} "
          f"(tolerance {tol:g} of each blob's max |value|){precision}")
    return ok


def _median_ms(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1000


def opencv_outputs(prototxt, caffemodel, feed: dict[str, np.ndarray], names: list[str]):
    """OpenCV dnn (cv2.dnn.readNetFromCaffe) on the same feed: (outputs by name, the net, its forward) or raises
    cv2.error / ValueError when OpenCV cannot read or run the net."""
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        raise ValueError(f"OpenCV {cv2.__version__} has no Caffe importer (OpenCV 5 removed readNetFromCaffe); "
                         "install opencv-python-headless<5 for this row")
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    for blob, arr in feed.items():
        net.setInput(np.ascontiguousarray(arr, np.float32), blob)

    def run():
        return net.forward(names)

    return dict(zip(names, run(), strict=True)), run


def backends_report(prototxt, caffemodel, out_dir: Path, info: dict, feed: dict[str, np.ndarray], net_c, net_t,
                    tol: float, onnx: bool) -> dict:
    """OpenCV dnn beside pycaffe, the converted module (PyTorch eager) and onnxruntime, on one input, same
    threads: each one's net outputs against Caffe's and ms per forward. Where OpenCV and Caffe disagree, says
    which one the converted net follows. Returns the printed lines and each backend's worst difference."""
    threads = torch.get_num_threads()
    cv2.setNumThreads(threads)
    # net outputs; a detection net on its raw heads (what DetectionOutput reads), not on its top-k list
    det = [layer for layer in info["layers"] if layer["type"] == "DetectionOutput" and layer["kind"] == "module"]
    ranked = {t for layer in det for t in layer["tops"]}
    outs = [o["blob"] for o in info["outputs"] if o["blob"] not in ranked]
    outs += [b for layer in det for b in layer["bottoms"] if b not in outs]
    outs = [b for b in outs if b in net_c.blobs]
    _set_inputs(net_c, feed)
    net_c.forward()
    ref = {b: net_c.blobs[b].data.copy() for b in outs}
    rows: list[tuple[str, str, str]] = [("pycaffe", "reference", f"{_median_ms(net_c.forward):.1f}")]
    xs = [torch.from_numpy(feed[i["blob"]]) for i in info["inputs"]]

    def run_torch():
        with torch.inference_mode():
            return net_t(*xs)

    t_out = final_blobs(info, torch_layer_outputs(net_t, info, feed), feed)
    t_diff = {b: rel_diff(ref[b], t_out[b]) for b in outs if b in t_out and ref[b].shape == t_out[b].shape}
    rows.append(("PyTorch eager (model.py)", _worst(t_diff), f"{_median_ms(run_torch):.1f}"))
    cv_diff: dict[str, float] = {}
    try:
        cv_out, cv_run = opencv_outputs(prototxt, caffemodel, feed, outs)
        for b in outs:
            a = np.asarray(cv_out[b], np.float32)
            cv_diff[b] = rel_diff(ref[b], a.reshape(ref[b].shape)) if a.size == ref[b].size else float("inf")
        rows.append((f"OpenCV dnn {cv2.__version__}", _worst(cv_diff), f"{_median_ms(cv_run):.1f}"))
    except (cv2.error, ValueError, KeyError) as exc:
        why = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        rows.append((f"OpenCV dnn {cv2.__version__}", f"not run: {why}", "-"))
    if onnx:
        import onnxruntime as ort  # noqa: PLC0415  (heavy: only --onnx uses it)

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(out_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        o_feed = {i.name: feed[i.name] for i in sess.get_inputs()}
        o_names = [o.name for o in sess.get_outputs()]
        try:
            o_out = dict(zip(o_names, sess.run(o_names, o_feed), strict=True))
            o_diff = {b: rel_diff(ref[b], o_out[b]) for b in o_names if b in ref and ref[b].shape == o_out[b].shape}
            rows.append(("onnxruntime (model.onnx)", _worst(o_diff) + ("" if set(o_names) == set(outs) else
                         f" (its outputs {o_names})"), f"{_median_ms(lambda: sess.run(o_names, o_feed)):.1f}"))
        except Exception as exc:  # onnxruntime refusing this input size (a fixed-size model.onnx)
            rows.append(("onnxruntime (model.onnx)", f"not run ({str(exc).strip().splitlines()[0][:100]})", "-"))
    shape = ", ".join(f"{b} {_fmt_shape(a.shape)}" for b, a in feed.items())
    heads = " (detection: the raw heads, not the top-k list)" if det else ""
    lines = [f"\n== backends on one input ({shape}); {threads} thread(s); net outputs vs Caffe{heads} ==",
             f"   {'backend':<28} {'max rel diff vs Caffe':<44} {'ms/forward':>10}"]
    lines += [f"   {name:<28} {diff:<44} {ms:>10}" for name, diff, ms in rows]
    disagree = [b for b, d in cv_diff.items() if d > tol]
    if disagree:
        follows = all(t_diff.get(b, float("inf")) <= tol for b in disagree)
        lines.append(f"   OpenCV and Caffe disagree on {disagree}: the converted net follows "
                     f"{'Caffe' if follows else 'neither (see the tables above)'}")
    for line in lines:
        print(line)
    worst = {"torch": max(t_diff.values(), default=float("nan")),
             "opencv": max(cv_diff.values(), default=float("nan"))}
    return {"lines": lines, "worst": worst, "opencv_disagrees": disagree}


def _worst(diffs: dict[str, float]) -> str:
    if not diffs:
        return "no common outputs"
    blob = max(diffs, key=lambda b: diffs[b])
    return f"{diffs[blob]:.2e} ({blob})"


def _compare_onnx(out_dir: Path, onnx_info: dict, feed, cb, rep: SizeReport, cache: dict) -> None:
    dynamic = onnx_info.get("dynamic", "none")
    exported = onnx_info.get("checked_input_shapes", [[]])[0]
    shapes = [list(feed[name].shape) for name in onnx_info.get("inputs", [])]
    fixed = {"none": slice(0, None), "batch": slice(1, None)}.get(dynamic)
    if fixed is not None and [s[fixed] for s in shapes] != [s[fixed] for s in exported]:
        rep.note = (f"model.onnx has fixed input shapes {exported} (dynamic axes: {dynamic}); not run at "
                    f"{shapes}")
        return
    try:
        outs = onnx_outputs(out_dir, feed, cache)
    except Exception as exc:  # onnxruntime refusing the input
        rep.error = f"onnxruntime failed: {str(exc).strip().splitlines()[0][:200]}"
        return
    for blob, value in outs.items():
        stat = rep.stats.setdefault(blob, BlobStat())
        if blob in cb:
            stat.update(cb[blob], value)
