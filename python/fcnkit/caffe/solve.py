"""Run a real Caffe solver with progress, logging, validation and a safe Ctrl-C (`fcnkit solve`).

Caffe aborts the whole process on a failed CHECK, so everything that can be checked (solver and net
files exist and parse, weights and solverstate exist and fit) is checked here first and reported in one
line. Which stage a solver trains, and so where its initial weights come from, is the model registry's
answer for its snapshot prefix (`fcnkit.models`).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from tqdm import tqdm

from fcnkit import models
from fcnkit.caffe import preflight, surgery
from fcnkit.caffe.runtime import load_caffe
from fcnkit.caffe.vgg16 import VGG_DEPLOY, VGG_MODEL
from fcnkit.errors import UserError
from fcnkit.evaluation import metrics
from fcnkit.io.atomic import fsync_path
from fcnkit.io.caffe_schema import load_prototxt, read_caffemodel
from fcnkit.models.registry import latest_snapshot

LOSS_TYPES = ("SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
              "MultinomialLogisticLoss", "ContrastiveLoss")


def fixed_upsampling_layers(net_path: str | os.PathLike) -> list[str]:
    """Deconvolution layers whose weights never learn (lr_mult 0): FCN's bilinear upsamplers."""
    net = load_prototxt(net_path, "net")
    return [lay.name for lay in net.layer
            if lay.type == "Deconvolution" and lay.param and all(p.lr_mult == 0 for p in lay.param)]


def resolve_init(sp) -> tuple[str, Path | None]:
    """Initial weights by the paper's chain: VGG-16 -> 32s -> 16s -> 8s -> composite -> fine-tune.

    The registry names the model a solver trains by its snapshot_prefix, and the model it starts from
    (`init`). Returns ("vgg16" | "snapshot" | "none", path); "none" for solvers no model is registered
    for and for models that train from scratch (the tiny nets have no ImageNet weights).
    """
    spec = models.by_snapshot_prefix(sp.snapshot_prefix) if sp.snapshot_prefix else None
    if spec is None or spec.init in (None, "scratch"):
        return "none", None
    if spec.init == "vgg16":
        for path in (VGG_MODEL, VGG_DEPLOY):
            if not path.is_file():
                raise UserError(f"{path}: missing; {spec.name} starts from VGG-16 ImageNet weights: fetch them "
                                "with `fcnkit fetch-vgg16` (or pass --weights)")
        return "vgg16", VGG_MODEL
    prev = models.get(spec.init)
    snap = latest_snapshot(Path(prev.snapshot_prefix))
    if snap is None:
        raise UserError(f"no snapshot {prev.snapshot_prefix}_iter_*.caffemodel for {spec.name} to start "
                        f"from; train the previous stage first: `solve {prev.solver}` (or pass --weights)")
    return "snapshot", snap


@dataclass(frozen=True)
class NetRoles:
    """The blobs `solve` reads: the loss, and the score map and label the loss compares (if any)."""

    loss: str | None
    score: str | None
    label: str | None


def net_roles(net_param) -> NetRoles:
    """Read the roles off the net's loss layer (e.g. SoftmaxWithLoss(score, label) -> loss)."""
    for lay in net_param.layer:
        if lay.type in LOSS_TYPES and lay.top:
            bottoms = list(lay.bottom)
            return NetRoles(lay.top[0], bottoms[0] if bottoms else None,
                            bottoms[1] if len(bottoms) > 1 and lay.type == "SoftmaxWithLoss" else None)
    return NetRoles(None, None, None)


def check_weights_fit(net, path: str | os.PathLike) -> None:
    """Caffe aborts when a same-named layer's blobs differ in count or shape: say which, and why, first."""
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


def validate(net, n_batches: int, num_classes: int, roles: NetRoles) -> dict:
    """Forward `n_batches` of a val net and score argmax(score) against label."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for _ in range(n_batches):
        net.forward()
        hist += metrics.fast_hist(net.blobs[roles.label].data, net.blobs[roles.score].data.argmax(1), num_classes)
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
    """Check everything (see preflight), build the Caffe solver and initialise its weights.

    Returns (solver, param, init)."""
    sp = preflight.solver_param(solver_path)
    for name, path in (("--weights", weights), ("--resume", resume)):
        if path and not Path(path).is_file():
            raise UserError(f"{name} {path}: no such file")
    if weights and resume:
        raise UserError("give either --weights (start from these weights) or --resume (continue a run)")
    if max_iter is not None:
        if max_iter < 0:
            raise UserError(f"--max-iter {max_iter} must not be negative")
        sp.max_iter = max_iter
    preflight.device(gpu)
    caffe = load_caffe(gpu)
    types = set(caffe.layer_type_list())
    nets = [(sp.net or sp.train_net, "TRAIN")] + [(t, "TEST") for t in sp.test_net]
    for net_path, phase in nets:
        preflight.data_sources(net_path, preflight.net_param(net_path, phase, types))
    preflight.snapshot_folder(sp.snapshot_prefix)
    init = "weights" if weights else "resume" if resume else "none"
    vgg = None
    if not weights and not resume:
        init, path = resolve_init(sp)
        if init == "vgg16":
            vgg = (VGG_DEPLOY, path)
        elif init == "snapshot":
            weights = str(path)
    if resume:
        preflight.solverstate(resume, sp.type)
    preflight.probe(sp, weights=weights, resume=resume, gpu=gpu, vgg=vgg)
    # Caffe reads solvers from files: hand it the validated (possibly capped) copy.
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt", delete=False) as f:
        f.write(text_format.MessageToString(sp))
    try:
        solver = caffe.get_solver(f.name)
    finally:
        os.unlink(f.name)
    if vgg is not None:
        source = caffe.Net(str(vgg[0]), str(vgg[1]), caffe.TEST)
        done = surgery.transplant(solver.net, source)
        log(f"init: VGG-16 {vgg[1]} -> {len(done)} layers ({', '.join(k for k, v in done.items() if v != 'copied')}"
            " reshaped)")
        del source
    if weights:
        check_weights_fit(solver.net, weights)
        solver.net.copy_from(weights)
        log(f"init: weights from {weights}")
    # Fixed upsamplers are bilinear whatever the weights say (test nets share these blobs).
    surgery.interp(solver.net, fixed_upsampling_layers(sp.net or sp.train_net))
    if resume:
        solver.restore(resume)
    bad = non_finite_params(solver.net)
    if bad:
        source = resume or weights or "the initialisation"
        raise UserError(f"the starting weights ({source}) hold NaN/inf in {describe_bad(bad)}; start from an "
                        "earlier snapshot or other weights (the learning rate is not the cause)")
    return solver, sp, init


def non_finite_params(net) -> dict[str, int]:
    """{layer: number of NaN/inf parameter values} for the layers that have any."""
    bad = {}
    for name, blobs in net.params.items():
        n = sum(int(b.data.size - np.isfinite(b.data).sum()) for b in blobs)
        if n:
            bad[name] = n
    return bad


def describe_bad(bad: dict[str, int], most: int = 4) -> str:
    more = f" and {len(bad) - most} more layers" if len(bad) > most else ""
    return ", ".join(f"{k} ({n} values)" for k, n in list(bad.items())[:most]) + more


def fsync_snapshot(sp, iteration: int) -> None:
    """Caffe writes snapshots without flushing them: make them durable before training goes on."""
    if not sp.snapshot_prefix:
        return
    for ext in ("caffemodel", "solverstate"):
        path = Path(f"{sp.snapshot_prefix}_iter_{iteration}.{ext}")
        if path.is_file():
            fsync_path(path)


def train(solver, sp, name: str, *, display=None, val_iter=None, log=print) -> dict:
    """Step `solver` to sp.max_iter with progress, NaN guard, periodic validation and Ctrl-C snapshot."""
    n_val = val_iter if val_iter is not None else (sp.test_iter[0] if sp.test_iter else 0)
    test_net = solver.test_nets[0] if len(solver.test_nets) and n_val else None
    if test_net is not None:
        # Caffe shares trained weights with its test nets only inside its own test pass: share them now.
        test_net.share_with(solver.net)
    roles = net_roles(load_prototxt(sp.net or sp.train_net, "net"))
    val_roles = net_roles(load_prototxt(sp.test_net[0], "net")) if sp.test_net else roles
    scored = val_roles.score and val_roles.label and test_net is not None and val_roles.score in test_net.blobs
    num_classes = test_net.blobs[val_roles.score].data.shape[1] if scored else 0
    val = {}

    def run_val():
        nonlocal val
        if test_net is not None and num_classes:
            val = validate(test_net, n_val, num_classes, val_roles)
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
            loss = float(solver.net.blobs[roles.loss].data) if roles.loss in solver.net.blobs else math.nan
            bar.set_postfix(loss=f"{loss:.4g}")
            # Stop before the next forward pass: Caffe's MAX pooling indexes out of bounds (heap corruption,
            # a crash later) when fed NaN, and an update with a too-large rate makes the weights NaN/inf first.
            bad = non_finite_params(solver.net)
            if bad or (roles.loss and not math.isfinite(loss)):
                what = f"the weights became NaN/inf ({describe_bad(bad)})" if bad else f"the loss became {loss}"
                last = latest_snapshot(Path(sp.snapshot_prefix)) if sp.snapshot_prefix else None
                raise UserError(f"{name}: {what} at iteration {solver.iter} (lr {current_lr(sp, solver.iter):.3g}); "
                                "lower base_lr in the solver, or check the data; last good snapshot: "
                                f"{last or 'none yet'}")
            if sp.snapshot and solver.iter % sp.snapshot == 0:
                fsync_snapshot(sp, solver.iter)  # Caffe snapshotted inside step()
            if solver.iter % every == 0 or solver.iter == sp.max_iter:
                log(f"iter {solver.iter} loss {loss:.6g} lr {current_lr(sp, solver.iter):.3g}")
            if sp.snapshot and solver.iter % sp.snapshot == 0 and solver.iter < sp.max_iter:
                run_val()
    except KeyboardInterrupt:
        bar.close()
        log(f"interrupted at iteration {solver.iter}: snapshotting before exit")
        if sp.snapshot_prefix:
            solver.snapshot()
            fsync_snapshot(sp, solver.iter)
        raise
    bar.close()
    if sp.snapshot_prefix and solver.iter > start and not (sp.snapshot and solver.iter % sp.snapshot == 0):
        solver.snapshot()  # Caffe itself snapshots on multiples of `snapshot`
        fsync_snapshot(sp, solver.iter)
    run_val()
    return {"iter": solver.iter, "loss": loss, "seconds": time.time() - t0, "val": val}


def current_lr(sp, it: int) -> float:
    """The learning rate Caffe's SGDSolver::GetLearningRate gives at iteration `it`, for every lr_policy."""
    lr, g, policy = sp.base_lr, sp.gamma, sp.lr_policy
    if policy == "fixed":
        return lr
    if policy == "step":
        return lr * g ** (it // sp.stepsize)
    if policy == "exp":
        return lr * g ** it
    if policy == "inv":
        return lr * (1 + g * it) ** (-sp.power)
    if policy == "multistep":
        return lr * g ** sum(1 for v in sp.stepvalue if it >= v)
    if policy == "poly":
        return lr * (1 - it / sp.max_iter) ** sp.power
    if policy == "sigmoid":
        return lr / (1 + math.exp(-g * (it - sp.stepsize)))
    return float("nan")
