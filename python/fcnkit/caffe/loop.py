"""What both training engines share: the checks of a solver's arguments, the initial weights (the paper's
chain, VGG-16 surgery, --weights, bilinear upsamplers), the roles of a net's blobs, and the one training loop
(`train`, over a `TrainingEngine`): progress, Caffe's smoothed loss display, validation at snapshots, the
NaN/inf stop, Ctrl-C / SIGTERM held until an iteration ends and then a snapshot.

Which stage a solver trains, and so where its initial weights come from, is the model registry's answer for
its snapshot prefix (`fcnkit.models`). The engines themselves: `caffe_engine` (real Caffe) and
`torch_engine/`; `solve.run_solver` picks one.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fcnkit import models
from fcnkit.caffe import preflight, surgery
from fcnkit.errors import Interrupted, UserError, silent
from fcnkit.io.caffe_schema import load_prototxt, read_caffemodel
from fcnkit.models.fcn.vgg16 import VGG_DEPLOY, VGG_MODEL
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


class Diverged(UserError):
    """The weights or the loss became NaN/inf. Caffe's own teardown of such a net can corrupt the heap (MAX
    pooling indexes out of bounds on NaN), so the command prints this line and leaves with os._exit."""

    exit_now = True


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
    """Caffe aborts when a same-named layer's blobs differ in count or shape: say which, and why, first.

    `net`: a pycaffe Net, or a parameter mapping {layer: [array in Caffe's shape, ...]} (surgery.Params)."""
    params = surgery.caffe_params(net) if hasattr(net, "params") else net
    for name, layer in read_caffemodel(path).layers.items():
        if name not in params:
            continue  # layers the net lacks are skipped by Caffe too
        target = params[name]
        if len(layer.blobs) != len(target):
            raise UserError(f"{path}: layer {name} has {len(layer.blobs)} blobs, the net wants {len(target)}")
        for i, (blob, t) in enumerate(zip(layer.blobs, target, strict=True)):
            want = tuple(t.shape)
            got = blob.shape if blob.shape is not None else blob.legacy
            if blob.shape is None:  # old files: compared as (num, channels, height, width), like Caffe does
                want = (1,) * (4 - len(want)) + want
            if got != want:
                raise UserError(f"{path}: layer {name} blob {i} has shape {got}, the net wants {want}; rename the "
                                "layer in the new net if it is meant to start fresh, or pass other --weights")


def solver_args(solver_path, *, weights=None, resume=None, max_iter=None):
    """The checked SolverParameter (max_iter capped), after the checks both engines share."""
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
    if sp.regularization_type not in ("L1", "L2"):  # Caffe aborts in the first update
        raise UserError(f"{solver_path}: regularization_type {sp.regularization_type!r} is not L1 or L2")
    return sp


def initial_weights(sp, weights, resume) -> tuple[str, str | None, bool]:
    """(init, weights, vgg): what the run starts from. Without --weights/--resume: the paper's chain."""
    init = "weights" if weights else "resume" if resume else "none"
    vgg = False
    if not weights and not resume:
        init, path = resolve_init(sp)
        vgg = init == "vgg16"
        if init == "snapshot":
            weights = str(path)
    return init, weights, vgg


def initialise(params: surgery.Params, sp, *, weights: str | None, vgg_source: surgery.Params | None,
               copy_weights: Callable[[str], None], log=print) -> None:
    """The initial weights, the same in both engines: VGG-16 by surgery, --weights (or the previous stage's
    snapshot) copied by layer name, and bilinear fixed upsamplers. `params` maps layer -> writable arrays."""
    if vgg_source is not None:
        done = surgery.transplant(params, vgg_source)
        log(f"init: VGG-16 {VGG_MODEL} -> {len(done)} layers ({', '.join(k for k, v in done.items() if v != 'copied')}"
            " reshaped)")
    if weights:
        check_weights_fit(params, weights)
        copy_weights(weights)
        log(f"init: weights from {weights}")
    # Fixed upsamplers are bilinear whatever the weights say (test nets share these blobs).
    surgery.interp(params, fixed_upsampling_layers(sp.net or sp.train_net))


def refuse_non_finite_start(bad: dict[str, int], source: str) -> None:
    if bad:
        raise UserError(f"the starting weights ({source}) hold NaN/inf in {describe_bad(bad)}; start from an "
                        "earlier snapshot or other weights (the learning rate is not the cause)")


def describe_bad(bad: dict[str, int], most: int = 4) -> str:
    more = f" and {len(bad) - most} more layers" if len(bad) > most else ""
    return ", ".join(f"{k} ({n} values)" for k, n in list(bad.items())[:most]) + more


class TrainingEngine:
    """What `train` drives: one engine's solver. `iter` counts the updates done (Caffe's iter_)."""

    name = "engine"
    iter: int
    is_main = True  # rank 0 of a distributed run (or the only process): the one that logs


    def step(self) -> float:
        """One iteration as Caffe's Solver::Step(1): test if test_interval says so, forward/backward
        (iter_size times), update, count, and snapshot when `snapshot` divides the new count. Returns the
        iteration's loss."""
        raise NotImplementedError

    def snapshot(self) -> None:
        """Write <prefix>_iter_<iter>.caffemodel and .solverstate, durably."""
        raise NotImplementedError

    def non_finite_params(self) -> dict[str, int]:
        raise NotImplementedError

    def validate(self, n_batches: int) -> dict:
        """Pixel accuracy and mean IoU of the test net over n_batches (its data stream continues), or {}."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine holds besides memory (data threads)."""


class SmoothedLoss:
    """Caffe's displayed loss: the mean of the last `average_loss` iteration losses (Solver::UpdateSmoothedLoss)."""

    def __init__(self, average_loss: int):
        self.n = max(1, average_loss)
        self.losses: list[float] = []
        self.value = 0.0
        self.count = 0

    def update(self, loss: float) -> float:
        if len(self.losses) < self.n:
            self.losses.append(loss)
            k = len(self.losses)
            self.value = (self.value * (k - 1) + loss) / k
        else:
            i = self.count % self.n
            self.value += (loss - self.losses[i]) / self.n
            self.losses[i] = loss
        self.count += 1
        return self.value


@contextlib.contextmanager
def deferred_signals():
    """Hold Ctrl-C and SIGTERM until the block ends, then raise them (KeyboardInterrupt / Interrupted): an
    iteration is never cut between its forward pass and its update. A no-op outside the main thread. A
    signal the process was started with ignored (`nohup`, a script's `cmd &`) stays ignored, as Python
    itself leaves it."""
    got: list[int] = []
    try:
        old = {s: signal.signal(s, lambda signum, frame: got.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if got:
        raise Interrupted() if got[0] == signal.SIGTERM else KeyboardInterrupt()


def train(engine: TrainingEngine, sp, name: str, *, display=None, val_iter=None, log=print) -> dict:
    """Step `engine` to sp.max_iter with progress, NaN guard, periodic
    validation and Ctrl-C snapshot. Logs `iter N loss L lr R` every display iterations, L smoothed over
    average_loss iterations as Caffe displays it."""
    if not engine.is_main:  # another rank of a torchrun job: rank 0 logs for all
        log = silent
    roles = net_roles(load_prototxt(sp.net or sp.train_net, "net"))
    n_val = val_iter if val_iter is not None else (sp.test_iter[0] if sp.test_iter else 0)
    val = {}

    def run_val():
        nonlocal val
        val = engine.validate(n_val) or val
        if val:
            log(f"val iter {engine.iter}: pixel_acc {val['pixel_acc']:.4f} mean_iou {val['mean_iou']:.4f} "
                f"lr {current_lr(sp, engine.iter):.3g}")

    every = display or sp.display or 20
    smoothed = SmoothedLoss(sp.average_loss)
    loss = math.nan
    t0 = time.time()
    start = engine.iter
    bar = tqdm(total=sp.max_iter, initial=start, desc=name, unit="it", leave=False,
               disable=None if engine.is_main else True)  # None: no bar when stdout is not a terminal (logs, CI)
    try:
        while engine.iter < sp.max_iter:
            with deferred_signals():
                loss = engine.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}")
            # Stop before the next forward pass: Caffe's MAX pooling indexes out of bounds (heap corruption,
            # a crash later) when fed NaN, and an update with a too-large rate makes the weights NaN/inf first.
            bad = engine.non_finite_params()
            if bad or (roles.loss and not math.isfinite(loss)):
                what = f"the weights became NaN/inf ({describe_bad(bad)})" if bad else f"the loss became {loss}"
                last = latest_snapshot(Path(sp.snapshot_prefix)) if sp.snapshot_prefix else None
                raise Diverged(f"{name}: {what} at iteration {engine.iter} (lr {current_lr(sp, engine.iter):.3g}); "
                                "lower base_lr in the solver, or check the data; last good snapshot: "
                                f"{last or 'none yet'}")
            shown = smoothed.update(loss)
            if engine.iter % every == 0 or engine.iter == sp.max_iter:
                log(f"iter {engine.iter} loss {shown:.6g} lr {current_lr(sp, engine.iter):.3g}")
            if sp.snapshot and engine.iter % sp.snapshot == 0 and engine.iter < sp.max_iter:
                run_val()
    except KeyboardInterrupt:
        bar.close()
        log(f"interrupted at iteration {engine.iter}: snapshotting before exit")
        if sp.snapshot_prefix:
            engine.snapshot()
        raise
    bar.close()
    if sp.snapshot_prefix and engine.iter > start and not (sp.snapshot and engine.iter % sp.snapshot == 0):
        engine.snapshot()  # the engines snapshot on multiples of `snapshot` themselves
    run_val()
    return {"iter": engine.iter, "loss": loss, "seconds": time.time() - t0, "val": val}


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

