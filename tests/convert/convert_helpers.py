"""Shared helpers for the converter tests: build a tiny net with NetSpec, give it random weights in real
Caffe, convert it, run both on the same inputs and compare every blob."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.convert.convert import convert, load_generated
from fcnkit.convert.sample_nets import randomize
from fcnkit.convert.verify import caffe_blobs, torch_blobs

TOL = 1e-4  # max abs diff relative to the blob's max |value|, as the issue asks


def assert_blob_close(name: str, ref: np.ndarray, out: np.ndarray, tol: float = TOL) -> float:
    """Caffe (ref) vs converted (out): same shape, NaN in the same places, diff <= tol * max|ref|."""
    assert out.shape == ref.shape, f"blob {name}: shape {out.shape} != Caffe {ref.shape}"
    nan_ref, nan_out = np.isnan(ref), np.isnan(out)
    assert (nan_ref == nan_out).all(), f"blob {name}: NaN positions differ"
    r = ref[~nan_ref].astype(np.float64)
    o = out[~nan_out].astype(np.float64)
    if r.size == 0:
        return 0.0
    scale = np.abs(r).max()
    diff = np.abs(r - o).max()
    assert diff <= tol * scale or diff == 0, (
        f"blob {name}: max abs diff {diff:.3e} > {tol} x max|caffe| {scale:.3e}")
    return float(diff / scale) if scale else 0.0


def run_case(workdir: Path, build, inputs: dict[str, tuple[int, ...]], *, fill=None, feed=None, seed: int = 0,
             tol: float = TOL, convert_kwargs=None):
    """build(n, L, P) adds layers to a NetSpec whose Input layers are already there (one per input).
    fill(net) may adjust the random parameters; feed(rng, shapes) may supply inputs.
    Returns (conversion info, caffe blobs, torch blobs)."""
    caffe = load_caffe()
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    for name, shape in inputs.items():
        setattr(n, name, L.Input(shape=dict(dim=list(shape))))
    build(n, L, P)
    workdir.mkdir(parents=True, exist_ok=True)
    proto = workdir / "net.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, seed)
    if fill is not None:
        fill(net)
    model = workdir / "net.caffemodel"
    net.save(str(model))
    rng = np.random.default_rng(seed + 1)
    if feed is not None:
        arrays = feed(rng, inputs)
    else:
        arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in inputs.items()}
    return parity(net, proto, model, workdir / "out", arrays, tol=tol, convert_kwargs=convert_kwargs)


def parity(caffe_net, proto: Path, model: Path, out: Path, arrays: dict[str, np.ndarray], *, tol: float = TOL,
           convert_kwargs=None):
    """Convert proto+model into `out`, run Caffe (`caffe_net`, weights loaded) and the generated module on
    `arrays`, assert every converted blob agrees. Returns (info, caffe blobs, torch blobs)."""
    res = convert(proto, model, out, **(convert_kwargs or {}))
    info = res.info
    tnet = load_generated(out / "model.py").load_model()
    names = list(info["blobs"])
    cb = caffe_blobs(caffe_net, arrays, names)
    tb = torch_blobs(tnet, info, arrays)
    assert set(cb) == set(names), f"blobs missing in Caffe: {set(names) - set(cb)}"
    for blob in names:
        assert blob in tb, f"blob {blob} not produced by the converted module"
        assert_blob_close(blob, cb[blob], tb[blob], tol)
    if all(len(s) <= 4 for s in info["tensors"].values()):
        # the channels-last layout (load_model(channels_last=True)) must give the same blobs
        cl_net = load_generated(out / "model.py").load_model(channels_last=True)
        cl = torch_blobs(cl_net, info, {k: _channels_last(v) for k, v in arrays.items()})
        for blob in names:
            assert_blob_close(f"{blob} (channels-last)", cb[blob], cl[blob], tol)
    return info, cb, tb


def _channels_last(a: np.ndarray) -> np.ndarray:
    """A 4-d array with NHWC memory order (same values), as torch.from_numpy then sees channels-last."""
    if a.ndim != 4:
        return a
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@dataclass
class Case:
    """One row of a table-driven parity test: a tiny net built with NetSpec, run in Caffe and converted."""
    id: str
    types: tuple[str, ...]               # registry types this case exercises
    build: object                        # build(n, L, P) adds layers to a NetSpec with Input layers
    inputs: dict = field(default_factory=lambda: {"data": (2, 3, 11, 13)})
    fill: object = None                  # fill(caffe_net) adjusts the random parameters
    feed: object = None                  # feed(rng, input_shapes) -> {input: array}
    check: object = None                 # check(info, caffe_blobs, torch_blobs)
    convert_kwargs: dict | None = None


def run_table_case(case: Case, workdir: Path):
    """run_case for a Case, then its own check; the converted types must include case.types."""
    info, cb, tb = run_case(workdir, case.build, case.inputs, fill=case.fill, feed=case.feed,
                            convert_kwargs=case.convert_kwargs)
    converted = {layer["type"] for layer in info["layers"] if layer["kind"] == "module"}
    assert set(case.types) <= converted, f"not converted: {set(case.types) - converted}"
    assert info["scriptability"]["torch.jit.script"] == "ok", info["scriptability"]
    if case.check is not None:
        case.check(info, cb, tb)
    return info, cb, tb


def write_caffemodel(path: Path, layers: list[tuple[str, str, list[np.ndarray]]], *, raw: str = "") -> Path:
    """A caffemodel written with the converter's schema (for fork layers real Caffe cannot create): one
    LayerParameter per (name, type, blobs). raw="float16"/"double" stores blobs as NVIDIA Caffe's raw half
    data or as double_data instead of float data."""
    from fcnkit.io import caffe_schema as schema

    pb = schema.pb()
    msg = pb.NetParameter(name="fork")
    for name, ltype, blobs in layers:
        layer = msg.layer.add(name=name, type=ltype)
        for arr in blobs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(arr.shape)
            if raw == "float16":
                blob.raw_data_type = pb.FLOAT16
                blob.raw_data = arr.astype("<f2").tobytes()
            elif raw == "double":
                blob.double_data.extend(arr.astype(np.float64).reshape(-1).tolist())
            else:
                blob.data.extend(arr.astype(np.float32).reshape(-1).tolist())
    path.write_bytes(msg.SerializeToString())
    return path


def convert_fork_net(workdir: Path, prototxt: str, layers, feed: dict[str, np.ndarray], **convert_kwargs):
    """Write a (fork) prototxt and its caffemodel, convert, run the generated module on `feed`.
    Returns (conversion info, {blob: array})."""
    workdir.mkdir(parents=True, exist_ok=True)
    proto = workdir / "fork.prototxt"
    proto.write_text(prototxt)
    model = write_caffemodel(workdir / "fork.caffemodel", layers)
    res = convert(proto, model, workdir / "out", **convert_kwargs)
    net = load_generated(workdir / "out" / "model.py").load_model()
    return res.info, torch_blobs(net, res.info, feed)


def expect_shape(blob: str, shape: tuple[int, ...]):
    """A Case.check: Caffe's blob has this shape (the converted one is compared with it by run_case)."""
    def check(info, cb, tb):
        assert tuple(cb[blob].shape) == shape, (cb[blob].shape, shape)
    return check


def assign_tops(n, names, tops) -> None:
    """Name the tops of a multi-top NetSpec layer: n.<name> = top."""
    for name, top in zip(names, tops, strict=True):
        setattr(n, name, top)
