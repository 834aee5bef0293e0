"""`solve SOLVER.prototxt`: run a real Caffe SGD solver with progress, logging and a safe Ctrl-C.

Caffe aborts the whole process on a failed CHECK, so everything that can be checked (solver and net
files exist and parse, weights and solverstate exist) is checked here first and reported in one line.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tqdm import tqdm

from fcnkit import metrics, surgery
from fcnkit.caffe_env import caffe_pb2, load_caffe
from fcnkit.errors import UserError, cli_entry
from fcnkit.stages import STAGE_BY_NAME

# What Caffe 1.0's SGDSolver::GetLearningRate and its solver registry accept (anything else aborts).
LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
VGG_DIR = Path("weights/vgg16")
VGG_MODEL = VGG_DIR / "VGG_ILSVRC_16_layers.caffemodel"
VGG_DEPLOY = VGG_DIR / "VGG_ILSVRC_16_layers_deploy.prototxt"


def read_prototxt(path: str | os.PathLike, message):
    """Parse a text prototxt into `message`; a parse error names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        text_format.Merge(path.read_text(), message)
    except text_format.ParseError as exc:
        raise UserError(f"{path}:{exc}") from None
    return message


def load_solver_param(path: str | os.PathLike):
    sp = read_prototxt(path, caffe_pb2().SolverParameter())
    if sp.lr_policy not in LR_POLICIES:
        raise UserError(f"{path}: lr_policy {sp.lr_policy!r} is not one Caffe knows; use one of "
                        + ", ".join(LR_POLICIES))
    if sp.type not in SOLVER_TYPES:
        raise UserError(f"{path}: type {sp.type!r} is not a Caffe solver; use one of " + ", ".join(SOLVER_TYPES))
    net = sp.net or sp.train_net
    if not net:
        raise UserError(f"{path}: solver names no `net:`/`train_net:`; add one")
    if not Path(net).is_file():
        raise UserError(f"{path}: net file {net} does not exist (paths are relative to the working "
                        f"directory {os.getcwd()})")
    for net_path in [net, *sp.test_net]:
        check_data_sources(net_path)
    return sp


def check_data_sources(net_path: str | os.PathLike) -> None:
    """Caffe aborts the process on a missing LMDB: name it, and the command that builds it, first."""
    net = read_prototxt(net_path, caffe_pb2().NetParameter())
    for lay in net.layer:
        if lay.type == "Data" and not (Path(lay.data_param.source) / "data.mdb").is_file():
            raise UserError(f"{net_path}: layer {lay.name} reads {lay.data_param.source}, which is not an LMDB; "
                            "build it with `prep lmdb` (or `prep sample` for the demo data)")


def fixed_upsampling_layers(net_path: str | os.PathLike) -> list[str]:
    """Deconvolution layers whose weights never learn (lr_mult 0): FCN's bilinear upsamplers."""
    net = read_prototxt(net_path, caffe_pb2().NetParameter())
    return [lay.name for lay in net.layer
            if lay.type == "Deconvolution" and lay.param and all(p.lr_mult == 0 for p in lay.param)]


def latest_snapshot(prefix: Path) -> Path | None:
    """The highest-iteration `<prefix>_iter_N.caffemodel`, or None."""
    found = []
    for path in prefix.parent.glob(f"{prefix.name}_iter_*.caffemodel"):
        m = re.fullmatch(rf"{re.escape(prefix.name)}_iter_(\d+)\.caffemodel", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return max(found)[1] if found else None


def resolve_init(sp) -> tuple[str, Path | None]:
    """Initial weights by the paper's chain: VGG-16 -> 32s -> 16s -> 8s -> composite -> fine-tune.

    The stage is named by the solver's snapshot_prefix (weights/snapshots[/tiny]/<stage>). Returns
    ("vgg16" | "snapshot" | "none", path). Tiny nets have no ImageNet weights: they start from scratch.
    """
    prefix = Path(sp.snapshot_prefix)
    st = STAGE_BY_NAME.get(prefix.name)
    if st is None:
        return "none", None
    tiny = prefix.parent.name == "tiny"
    if st.init_from == "vgg16":
        net = read_prototxt(sp.net or sp.train_net, caffe_pb2().NetParameter())
        conv1 = next((lay for lay in net.layer if lay.name == "conv1_1"), None)
        if conv1 is None or conv1.convolution_param.num_output != 64:
            return "none", None  # not VGG-16-shaped (the tiny variant): trains from scratch
        for path in (VGG_MODEL, VGG_DEPLOY):
            if not path.is_file():
                raise UserError(f"{path}: missing; {st.name} starts from VGG-16 ImageNet weights: fetch them "
                                "with `python weights/fetch_vgg16.py` (or pass --weights)")
        return "vgg16", VGG_MODEL
    prev = latest_snapshot(prefix.parent / st.init_from)
    if prev is None:
        solver = f"solvers/{'tiny/' if tiny else ''}{st.init_from}.prototxt"
        raise UserError(f"no snapshot {prefix.parent / st.init_from}_iter_*.caffemodel for {st.name} to start "
                        f"from; train the previous stage first: `solve {solver}` (or pass --weights)")
    return "snapshot", prev


def check_weights_fit(net, path: str | os.PathLike) -> None:
    """Caffe aborts when a same-named layer's blobs differ in count or shape: say which, and why, first."""
    from fcnkit.convert.schema import read_caffemodel  # noqa: PLC0415  (zero-copy reader, no pycaffe)

    for name, layer in read_caffemodel(path).layers.items():
        if name not in net.params:
            continue  # layers the net lacks are skipped by Caffe too
        target = net.params[name]
        if len(layer.blobs) != len(target):
            raise UserError(f"{path}: layer {name} has {len(layer.blobs)} blobs, the net wants {len(target)}")
        for i, (blob, t) in enumerate(zip(layer.blobs, target, strict=True)):
            want = tuple(t.data.shape)
            got = blob.shape if blob.shape is not None else blob.legacy
            if blob.shape is None:  # old files: compared as (num, channels, height, width), like Caffe does
                want = (1,) * (4 - len(want)) + want
            if got != want:
                raise UserError(f"{path}: layer {name} blob {i} has shape {got}, the net wants {want}; rename the "
                                "layer in the new net if it is meant to start fresh, or pass other --weights")


def validate(net, n_batches: int, num_classes: int) -> dict:
    """Forward `n_batches` of a val net and score argmax(score) against label."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for _ in range(n_batches):
        net.forward()
        hist += metrics.fast_hist(net.blobs["label"].data, net.blobs["score"].data.argmax(1), num_classes)
    return metrics.scores(hist)


def run_solver(solver_path: str | os.PathLike, *, weights: str | None = None, resume: str | None = None,
               gpu: int | None = None, max_iter: int | None = None, display: int | None = None,
               val_iter: int | None = None, log=print) -> dict:
    """Run the solver to its max_iter (or `max_iter`), returning {'iter', 'loss', 'seconds', 'val'}.

    Without --weights/--resume the initial weights follow the paper's chain (`resolve_init`).
    Validation (pixel accuracy, mean IoU on the solver's test net) runs at every snapshot and at the end,
    over `val_iter` batches (default: the solver's test_iter).
    """
    solver, sp, init = prepare_solver(solver_path, weights=weights, resume=resume, gpu=gpu, max_iter=max_iter,
                                      log=log)
    return train(solver, sp, Path(solver_path).stem, display=display, val_iter=val_iter, log=log) | {"init": init}


def prepare_solver(solver_path, *, weights=None, resume=None, gpu=None, max_iter=None, log=print):
    """Validate inputs, build the Caffe solver and initialise its weights; returns (solver, param, init)."""
    sp = load_solver_param(solver_path)
    for name, path in (("--weights", weights), ("--resume", resume)):
        if path and not Path(path).is_file():
            raise UserError(f"{name} {path}: no such file")
    if weights and resume:
        raise UserError("give either --weights (start from these weights) or --resume (continue a run)")
    if max_iter is not None:
        sp.max_iter = max_iter
    if sp.snapshot_prefix:
        Path(sp.snapshot_prefix).parent.mkdir(parents=True, exist_ok=True)
    caffe = load_caffe(gpu)
    # Caffe reads solvers from files: hand it the validated (possibly capped) copy.
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt", delete=False) as f:
        f.write(text_format.MessageToString(sp))
    try:
        solver = caffe.get_solver(f.name)
    finally:
        os.unlink(f.name)
    init = "weights" if weights else "resume" if resume else "none"
    if not weights and not resume:
        init, path = resolve_init(sp)
        if init == "vgg16":
            vgg = caffe.Net(str(VGG_DEPLOY), str(path), caffe.TEST)
            done = surgery.transplant(solver.net, vgg)
            log(f"init: VGG-16 {path} -> {len(done)} layers ({', '.join(k for k, v in done.items() if v != 'copied')}"
                " reshaped)")
            del vgg
        elif init == "snapshot":
            weights = str(path)
    if weights:
        check_weights_fit(solver.net, weights)
        solver.net.copy_from(weights)
        log(f"init: weights from {weights}")
    # Fixed upsamplers are bilinear whatever the weights say (test nets share these blobs).
    surgery.interp(solver.net, fixed_upsampling_layers(sp.net or sp.train_net))
    if resume:
        solver.restore(resume)
    return solver, sp, init


def train(solver, sp, name: str, *, display=None, val_iter=None, log=print) -> dict:
    """Step `solver` to sp.max_iter with progress, NaN guard, periodic validation and Ctrl-C snapshot."""
    n_val = val_iter if val_iter is not None else (sp.test_iter[0] if sp.test_iter else 0)
    test_net = solver.test_nets[0] if len(solver.test_nets) and n_val else None
    if test_net is not None:
        # Caffe shares trained weights with its test nets only inside its own test pass: share them now.
        test_net.share_with(solver.net)
    num_classes = solver.net.blobs["score"].data.shape[1] if "score" in solver.net.blobs else 0
    val = {}

    def run_val():
        nonlocal val
        if test_net is not None and num_classes:
            val = validate(test_net, n_val, num_classes)
            log(f"val iter {solver.iter}: pixel_acc {val['pixel_acc']:.4f} mean_iou {val['mean_iou']:.4f} "
                f"lr {current_lr(sp, solver.iter):.3g}")

    every = display or sp.display or 20
    loss = math.nan
    t0 = time.time()
    start = solver.iter
    bar = tqdm(total=sp.max_iter, initial=start, desc=name, unit="it", leave=False,
               disable=None)  # None: no bar when stdout is not a terminal (logs, CI)
    try:
        while solver.iter < sp.max_iter:
            solver.step(1)
            bar.update(1)
            loss = float(solver.net.blobs["loss"].data) if "loss" in solver.net.blobs else math.nan
            bar.set_postfix(loss=f"{loss:.4g}")
            if not math.isfinite(loss):
                # Stop at once: Caffe's MAX pooling indexes out of bounds when fed NaNs.
                raise UserError(f"{name}: loss became {loss} at iteration {solver.iter}; "
                                "lower base_lr or check the data")
            if solver.iter % every == 0 or solver.iter == sp.max_iter:
                log(f"iter {solver.iter} loss {loss:.6g} lr {current_lr(sp, solver.iter):.3g}")
            if sp.snapshot and solver.iter % sp.snapshot == 0 and solver.iter < sp.max_iter:
                run_val()
    except KeyboardInterrupt:
        bar.close()
        log(f"interrupted at iteration {solver.iter}: snapshotting before exit")
        if sp.snapshot_prefix:
            solver.snapshot()
        raise
    bar.close()
    if sp.snapshot_prefix and solver.iter > start and not (sp.snapshot and solver.iter % sp.snapshot == 0):
        solver.snapshot()  # Caffe itself snapshots on multiples of `snapshot`
    run_val()
    return {"iter": solver.iter, "loss": loss, "seconds": time.time() - t0, "val": val}


def current_lr(sp, it: int) -> float:
    """The learning rate Caffe uses at iteration `it` for the policies our solvers use."""
    if sp.lr_policy == "step":
        return sp.base_lr * sp.gamma ** (it // sp.stepsize)
    if sp.lr_policy == "fixed":
        return sp.base_lr
    return float("nan")


@cli_entry("solve")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="solve", description="Run a Caffe solver prototxt with real Caffe.")
    p.add_argument("solver", help="solver prototxt, e.g. solvers/fcn8s.prototxt")
    p.add_argument("--weights", help="initial weights (.caffemodel), copied by layer name")
    p.add_argument("--resume", help="continue from a .solverstate")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpu", type=int, metavar="N", help="run on GPU N")
    dev.add_argument("--cpu", action="store_true", help="run on the CPU (default)")
    p.add_argument("--max-iter", type=int, help="stop after this many iterations (smoke runs)")
    p.add_argument("--val-iter", type=int, help="validation batches per check (default: solver test_iter)")
    a = p.parse_args(argv)
    try:
        r = run_solver(a.solver, weights=a.weights, resume=a.resume, gpu=a.gpu, max_iter=a.max_iter,
                       val_iter=a.val_iter)
    except KeyboardInterrupt:
        print("solve: interrupted; resume with --resume <snapshot_prefix>_iter_N.solverstate", file=sys.stderr)
        return 130
    print(f"done: {r['iter']} iterations, final loss {r['loss']:.6g}, {r['seconds']:.1f}s")
    return 0
