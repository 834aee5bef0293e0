"""Everything Caffe would CHECK (and abort the whole process on) before `solve` hands it anything.

Caffe answers bad input with a failed CHECK: glog prints a stack trace and the process dies (exit 134,
sometimes heap corruption first). So `solve` checks, in this order, and stops at the first problem with
one line naming the file, the layer and the fix:

1. the solver: known type and lr_policy, a positive finite base_lr, the policy's own parameters;
2. every net it names, in its phase: layer types this Caffe build knows, Python layer modules that import,
   bottoms produced by an earlier layer, positive kernel/stride/num_output, positive batch sizes;
3. the LMDBs the Data layers read: present, whole (not truncated: see io.lmdb_io.check_lmdb), not empty,
   the Data layers of one net in step (same number of records, same image size);
4. the device (`--gpu` on a CPU-only build, or where the NVIDIA driver sees no such GPU), the snapshot folder
   (writable), the weights and the solverstate (whole, and consistent with each other);
5. what only Caffe itself can judge, in a throw-away child process that builds the solver, copies the
   weights and restores the state: if Caffe aborts there, its own CHECK message becomes the one line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from fcnkit.caffenet.pycaffe import abort_reason, require_gpu
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import filter_net, load_prototxt, read_caffemodel, read_solverstate
from fcnkit.io.lmdb_io import REBUILD, check_lmdb, decode_datum, read_lmdb

# What Caffe 1.0's SGDSolver::GetLearningRate and its solver registry accept (anything else aborts).
LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
HISTORY_PER_PARAM = {"Adam": 2, "AdaDelta": 2}  # extra history blobs these solvers keep per parameter


def solver_param(path: str | os.PathLike):
    """The SolverParameter, checked as Caffe's solver constructor and GetLearningRate would use it."""
    sp = load_prototxt(path, "solver", "SolverParameter")

    def bad(msg: str):
        raise UserError(f"{path}: {msg}")

    if sp.lr_policy not in LR_POLICIES:
        bad(f"lr_policy {sp.lr_policy!r} is not one Caffe knows; use one of " + ", ".join(LR_POLICIES))
    if sp.type not in SOLVER_TYPES:
        bad(f"type {sp.type!r} is not a Caffe solver; use one of " + ", ".join(SOLVER_TYPES))
    if not sp.base_lr > 0 or sp.base_lr == float("inf"):
        bad(f"base_lr {sp.base_lr:g} must be a positive number (a negative rate trains the loss upwards)")
    if sp.lr_policy == "step" and sp.stepsize <= 0:
        bad(f"lr_policy step needs a positive stepsize (got {sp.stepsize}); Caffe divides by it")
    if sp.lr_policy == "multistep" and list(sp.stepvalue) != sorted(set(sp.stepvalue)):
        bad("multistep stepvalue entries must increase")
    if sp.lr_policy in ("exp", "step", "multistep", "inv", "sigmoid") and not sp.HasField("gamma"):
        bad(f"lr_policy {sp.lr_policy} needs gamma")
    if sp.lr_policy == "poly" and sp.max_iter <= 0:
        bad("lr_policy poly needs a positive max_iter")
    if sp.momentum < 0 or sp.weight_decay < 0:
        bad("momentum and weight_decay must not be negative")
    if sp.iter_size < 1:
        bad(f"iter_size {sp.iter_size} must be at least 1")
    net = sp.net or sp.train_net
    if not net:
        bad("solver names no `net:`/`train_net:`; add one")
    if not Path(net).is_file():
        bad(f"net file {net} does not exist (paths are relative to the working directory {os.getcwd()})")
    if len(sp.test_iter) and len(sp.test_iter) != len(sp.test_net) + (1 if sp.net and not sp.test_net else 0):
        bad(f"{len(sp.test_iter)} test_iter values for {len(sp.test_net)} test nets; give one per test net")
    return sp


def _positive(lay, param, fields_, what):
    for f in fields_:
        field = param.DESCRIPTOR.fields_by_name[f]
        if field.is_repeated:
            vals = list(getattr(param, f))
        else:
            vals = [getattr(param, f)] if param.HasField(f) else []
        if any(v <= 0 for v in vals):
            raise UserError(f"layer '{lay.name}' ({lay.type}): {what} {f} must be positive, got {vals}")


def net_param(net_path: str | os.PathLike, phase: str, known_types=None):
    """The net as Caffe builds it for `phase`, checked layer by layer; returns the filtered NetParameter."""
    full = load_prototxt(net_path, "net")
    net = filter_net(full, phase)
    produced: set[str] = set()
    try:
        for lay in net.layer:
            if known_types is not None and lay.type not in known_types:
                raise UserError(f"layer '{lay.name}' has type '{lay.type}', which this Caffe does not know "
                                "(`caffe.layer_type_list()` lists them); fix the type")
            if lay.type == "Python":
                mod = lay.python_param.module
                if not mod or importlib.util.find_spec(mod.split(".")[0]) is None \
                        or importlib.util.find_spec(mod) is None:
                    raise UserError(f"layer '{lay.name}': Python module {mod!r} does not import; fix "
                                    "python_param.module or install it")
            for b in lay.bottom:
                if b not in produced:
                    raise UserError(f"layer '{lay.name}' reads bottom '{b}', which no earlier layer produces "
                                    "in this phase (check spelling, order and include/exclude rules)")
            if lay.type in ("Convolution", "Deconvolution"):
                p = lay.convolution_param
                _positive(lay, p, ("num_output", "kernel_size", "kernel_h", "kernel_w", "stride", "stride_h",
                                   "stride_w"), "convolution_param")
                if not p.num_output:
                    raise UserError(f"layer '{lay.name}' ({lay.type}): convolution_param.num_output is missing")
                if not (len(p.kernel_size) or (p.kernel_h and p.kernel_w)):
                    raise UserError(f"layer '{lay.name}' ({lay.type}): give a positive kernel_size")
            elif lay.type == "Pooling" and not lay.pooling_param.global_pooling:
                p = lay.pooling_param
                _positive(lay, p, ("kernel_size", "kernel_h", "kernel_w", "stride", "stride_h", "stride_w"),
                          "pooling_param")
                if not (p.kernel_size or (p.kernel_h and p.kernel_w)):
                    raise UserError(f"layer '{lay.name}' (Pooling): give a positive kernel_size")
            elif lay.type == "InnerProduct" and lay.inner_product_param.num_output <= 0:
                raise UserError(f"layer '{lay.name}' (InnerProduct): num_output must be positive")
            elif lay.type == "Data" and lay.data_param.batch_size <= 0:
                raise UserError(f"layer '{lay.name}' (Data): batch_size must be positive")
            produced.update(lay.top)
    except UserError as exc:
        raise UserError(f"{net_path}: {exc}") from None
    return net


def data_sources(net_path: str | os.PathLike, net) -> None:
    """The LMDBs of a net's Data layers: present, whole, not empty, and in step with each other."""
    infos = []
    for lay in net.layer:
        if lay.type != "Data":
            continue
        src = Path(lay.data_param.source)
        if not (src / "data.mdb").is_file():
            raise UserError(f"{net_path}: layer {lay.name} reads {src}, which is not an LMDB; {REBUILD}")
        info = check_lmdb(src)
        if info.entries == 0:
            raise UserError(f"{src}: the LMDB is empty (layer {lay.name} of {net_path}); {REBUILD}")
        try:
            shape = decode_datum(info.first_value)[0].shape
        except ValueError as exc:
            raise UserError(f"{src}: first record is not a raw Datum ({exc}); {REBUILD}") from None
        infos.append((lay.name, src, info.entries, shape))
    for (n1, s1, e1, sh1), (n2, s2, e2, sh2) in zip(infos, infos[1:], strict=False):
        if e1 != e2:
            raise UserError(f"{net_path}: Data layers {n1} and {n2} read LMDBs of different lengths ({s1}: {e1}, "
                            f"{s2}: {e2}), so images and labels would drift apart; rebuild them together with "
                            "`prep lmdb`")
        if sh1[1:] != sh2[1:]:
            raise UserError(f"{net_path}: Data layers {n1} and {n2} hold records of different sizes ({s1}: "
                            f"{sh1[1]}x{sh1[2]}, {s2}: {sh2[1]}x{sh2[2]}); rebuild them together with `prep lmdb`")
    sources = {lay.top[0]: (lay.name, Path(lay.data_param.source)) for lay in net.layer
               if lay.type == "Data" and lay.top}
    if len(sources) > 1:
        keys_in_step(net_path, list(sources.values()))
    for lay in net.layer:
        if lay.type == "SoftmaxWithLoss" and len(lay.bottom) > 1 and lay.bottom[1] in sources:
            ignore = lay.loss_param.ignore_label if lay.loss_param.HasField("ignore_label") else None
            classes = _classes(net, lay)
            if classes:
                label_values(net_path, lay.name, sources[lay.bottom[1]][1], classes, ignore)


def _classes(net, loss) -> int | None:
    """The number of score channels `loss` reads: num_output of the layer that makes its first bottom,
    followed back through shape-keeping layers (Crop, ReLU in place, Dropout, ...)."""
    layers = list(net.layer)
    blob, j = loss.bottom[0], layers.index(loss)
    while j > 0:
        j -= 1
        lay = layers[j]
        if blob not in lay.top:
            continue
        if lay.type in ("Convolution", "Deconvolution"):
            return lay.convolution_param.num_output
        if lay.type == "InnerProduct":
            return lay.inner_product_param.num_output
        if not lay.bottom or lay.type in ("Concat", "Python"):
            return None
        blob = lay.bottom[0]
    return None


def keys_in_step(net_path, sources: list[tuple[str, Path]]) -> None:
    """The Data layers of one net read their LMDBs side by side, record by record: the keys must be the
    same, in the same order, or images are trained against another image's labels."""
    (n1, s1), rest = sources[0], sources[1:]
    for n2, s2 in rest:
        for i, ((k1, _), (k2, _)) in enumerate(zip(read_lmdb(s1), read_lmdb(s2), strict=False)):
            if bytes(k1) != bytes(k2):
                a, b = (bytes(k).decode(errors="replace") for k in (k1, k2))
                raise UserError(f"{net_path}: Data layers {n1} and {n2} read LMDBs whose keys differ (record {i}: "
                                f"{a!r} in {s1}, {b!r} in {s2}), so images would meet other images' labels; rebuild "
                                "them together with `prep lmdb`")


def label_values(net_path, loss: str, source: Path, classes: int, ignore: int | None) -> None:
    """Every label value in `source` is a class of the net (0 .. classes-1) or the loss's ignore_label: Caffe
    indexes the score blob with it unchecked (a segfault, or silently wrong gradients)."""
    allowed = np.zeros(256, bool)
    allowed[:min(classes, 256)] = True
    if ignore is not None and 0 <= ignore < 256:
        allowed[ignore] = True
    for key, value in read_lmdb(source):
        arr, _ = decode_datum(bytes(value))
        counts = np.bincount(arr.reshape(-1), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~allowed)
        if bad.size:
            ok = f"0..{classes - 1}" + (f" or {ignore}" if ignore is not None else "")
            raise UserError(f"{source}: record {bytes(key).decode(errors='replace')!r} holds label value(s) "
                            f"{', '.join(map(str, bad[:5]))}, but the net ({net_path}, loss {loss}) has {classes} "
                            f"classes and ignore_label {ignore}: labels must be {ok}; rebuild the label LMDB "
                            "(`prep masks` then `prep lmdb`)")


def snapshot_folder(prefix: str) -> None:
    """Caffe writes snapshots with no error handling worth the name: the folder must exist and be writable."""
    if not prefix:
        return
    folder = Path(prefix).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"snapshot folder {folder} is not writable ({exc.strerror or exc}); change "
                        "snapshot_prefix or the folder's permissions") from None


def device(gpu: int | None) -> None:
    if gpu is not None:
        require_gpu(gpu, f"--gpu {gpu}")


def solverstate(path: str | os.PathLike, solver_type: str):
    """A --resume file: whole, its learned_net whole, and as many history blobs as the solver keeps."""
    st = read_solverstate(path)
    learned = Path(st.learned_net)
    if not learned.is_file():
        raise UserError(f"{path}: its weights {learned} are missing (Caffe loads them on resume; paths are "
                        "relative to the working directory)")
    model = read_caffemodel(learned)
    blobs = [b for name in model.order for b in model.layers[name].blobs]
    per = HISTORY_PER_PARAM.get(solver_type, 1)
    if len(st.history) != per * len(blobs):
        raise UserError(f"{path}: holds {len(st.history)} history blobs, a {solver_type} solver for the net in "
                        f"{learned} keeps {per * len(blobs)}; is it the state of another net or solver type?")
    for i, (h, b) in enumerate(zip(st.history, blobs * per, strict=True)):
        if h.data.size != b.data.size:
            raise UserError(f"{path}: history blob {i} has {h.data.size} values, parameter {i % len(blobs)} of "
                            f"{learned} has {b.data.size}; the state belongs to another net")
    return st


_GLOG_FATAL_START = re.compile(r"^F\d{4} ")


def probe(sp, *, weights: str | None, resume: str | None, gpu: int | None, vgg=None) -> None:
    """Build the solver in a child process the way `solve` will; turn a Caffe abort into one line."""
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt", delete=False) as f:
        f.write(text_format.MessageToString(sp))
    cmd = [sys.executable, "-m", "fcnkit.caffe.probe", f.name]
    cmd += ["--weights", str(weights)] if weights else []
    cmd += ["--resume", str(resume)] if resume else []
    cmd += ["--vgg", str(vgg[0]), str(vgg[1])] if vgg else []
    cmd += ["--gpu", str(gpu)] if gpu is not None else []
    env = dict(os.environ, GLOG_minloglevel="2", GLOG_logtostderr="1")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        os.unlink(f.name)
    if r.returncode == 0:
        return
    lines = r.stderr.strip().splitlines()
    mine = [ln[len("probe-error: "):] for ln in lines if ln.startswith("probe-error: ")]
    if mine:
        raise UserError(mine[-1])
    if any(_GLOG_FATAL_START.match(ln) for ln in lines):
        raise UserError(f"Caffe refuses this solver ({abort_reason(r.stderr, r.returncode)}); fix the net or solver "
                        "it names")
    raise UserError(f"Caffe could not build this solver ({abort_reason(r.stderr, r.returncode)})")
