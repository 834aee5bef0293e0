"""The Caffe engine: a pycaffe solver checked, built and initialised (`prepare_solver`), and the
`TrainingEngine` that `loop.train` drives over it (`CaffeEngine`).

Caffe aborts the whole process on a failed CHECK, so everything that can be checked (solver and net files
exist and parse, layer types this build knows, data sources, weights and solverstate exist and fit) is
checked first (`fcnkit.caffe.preflight`) and reported in one line.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from fcnkit.caffe import preflight, surgery
from fcnkit.caffe.loop import (
    NetRoles,
    TrainingEngine,
    initial_weights,
    initialise,
    net_roles,
    refuse_non_finite_start,
    solver_args,
)
from fcnkit.caffenet.pycaffe import build_info, load_caffe
from fcnkit.errors import UserError
from fcnkit.evaluation import metrics
from fcnkit.io.atomic import fsync_path
from fcnkit.io.caffe_schema import load_prototxt
from fcnkit.models.fcn.vgg16 import VGG_DEPLOY, VGG_MODEL


def validate(net, n_batches: int, num_classes: int, roles: NetRoles) -> dict:
    """Forward `n_batches` of a val net and score argmax(score) against label."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for _ in range(n_batches):
        net.forward()
        hist += metrics.fast_hist(net.blobs[roles.label].data, net.blobs[roles.score].data.argmax(1), num_classes)
    return metrics.scores(hist)


def prepare_solver(solver_path, *, weights=None, resume=None, gpu=None, max_iter=None, log=print):
    """Check everything (see preflight), build the Caffe solver and initialise its weights.

    Returns (solver, param, init)."""
    sp = solver_args(solver_path, weights=weights, resume=resume, max_iter=max_iter)
    preflight.device(gpu)
    caffe = load_caffe(gpu)
    types = set(caffe.layer_type_list())
    nets = [(sp.net or sp.train_net, "TRAIN")] + [(t, "TEST") for t in sp.test_net]
    for net_path, phase in nets:
        preflight.data_sources(net_path, preflight.net_param(net_path, phase, types))
    preflight.snapshot_folder(sp.snapshot_prefix)
    init, weights, vgg = initial_weights(sp, weights, resume)
    if resume:
        preflight.solverstate(resume, sp.type)
    preflight.probe(sp, weights=weights, resume=resume, gpu=gpu, vgg=(VGG_DEPLOY, VGG_MODEL) if vgg else None)
    # Caffe reads solvers from files: hand it the validated (possibly capped) copy.
    with tempfile.NamedTemporaryFile("w", suffix=".solver.prototxt", delete=False) as f:
        f.write(text_format.MessageToString(sp))
    try:
        solver = caffe.get_solver(f.name)
    finally:
        os.unlink(f.name)
    source = caffe.Net(str(VGG_DEPLOY), str(VGG_MODEL), caffe.TEST) if vgg else None
    initialise(surgery.caffe_params(solver.net), sp, weights=weights,
               vgg_source=surgery.caffe_params(source) if source is not None else None,
               copy_weights=solver.net.copy_from, log=log)
    del source
    if resume:
        solver.restore(resume)
    refuse_non_finite_start(non_finite_params(solver.net), resume or weights or "the initialisation")
    return solver, sp, init


def non_finite_params(net) -> dict[str, int]:
    """{layer: number of NaN/inf parameter values} for the layers that have any."""
    bad = {}
    for name, blobs in net.params.items():
        n = sum(int(b.data.size - np.isfinite(b.data).sum()) for b in blobs)
        if n:
            bad[name] = n
    return bad


def fsync_snapshot(sp, iteration: int) -> None:
    """Caffe writes snapshots without flushing them: make them durable before training goes on."""
    if not sp.snapshot_prefix:
        return
    for ext in ("caffemodel", "solverstate"):
        path = Path(f"{sp.snapshot_prefix}_iter_{iteration}.{ext}")
        if path.is_file():
            fsync_path(path)


class CaffeEngine(TrainingEngine):
    """A pycaffe solver; its test net shares the trained weights and scores them."""

    name = "caffe"

    def __init__(self, solver, sp):
        self.solver, self.sp = solver, sp
        self.roles = net_roles(load_prototxt(sp.net or sp.train_net, "net"))
        self.val_roles = net_roles(load_prototxt(sp.test_net[0], "net")) if sp.test_net else self.roles
        self.test_net = solver.test_nets[0] if len(solver.test_nets) else None
        if self.test_net is not None:
            # Caffe shares trained weights with its test nets only inside its own test pass: share them now.
            self.test_net.share_with(solver.net)

    @property
    def iter(self) -> int:
        return self.solver.iter

    def step(self) -> float:
        self.solver.step(1)
        if self.sp.snapshot and self.solver.iter % self.sp.snapshot == 0:
            fsync_snapshot(self.sp, self.solver.iter)  # Caffe snapshotted inside step()
        blobs = self.solver.net.blobs
        return float(blobs[self.roles.loss].data) if self.roles.loss in blobs else math.nan

    def snapshot(self) -> None:
        self.solver.snapshot()
        fsync_snapshot(self.sp, self.solver.iter)

    def non_finite_params(self) -> dict[str, int]:
        return non_finite_params(self.solver.net)

    def validate(self, n_batches: int) -> dict:
        r, net = self.val_roles, self.test_net
        if net is None or not n_batches or not (r.score and r.label and r.score in net.blobs):
            return {}
        return validate(net, n_batches, net.blobs[r.score].data.shape[1], r)


GLOG_FAILURE = re.compile(r"[EF]\d{4} ")
CAFFE_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+0-9.eEnaif]+)")


def check_multi_gpu(gpus: list[int]) -> None:
    """Caffe's own multi-GPU solver needs the CUDA build whose `caffe train` runs it (BUILD_INFO multi_gpu)."""
    info = build_info() or {}
    flag = ",".join(map(str, gpus))
    if not info.get("gpu"):
        raise UserError(f"--gpu {flag}: this Caffe is a CPU-only build ({info.get('key', 'no BUILD_INFO.json')}); "
                        "Caffe's multi-GPU solver runs in the CUDA container (Dockerfile.caffe), or train on several "
                        "GPUs with --engine torch under torchrun (README, Training)")
    if not info.get("multi_gpu"):
        raise UserError(f"--gpu {flag}: this CUDA build of Caffe ({info.get('key')}) predates the multi-GPU recipe; "
                        "rebuild it (`make setup CAFFE_FLAGS=--gpu`, or docker build -f Dockerfile.caffe)")


def run_multi_gpu(solver_path, gpus: list[int], *, weights=None, resume=None, max_iter=None, log=print) -> dict:
    """`solve --gpu 0,1`: Caffe's own multi-GPU solver (P2PSync: every GPU runs the solver's batch on its own
    records, i mod N; the gradients are averaged; GPU 0 tests and snapshots), run by Caffe's `caffe train`.

    The checks and the initial weights are the one-GPU run's (`prepare_solver` on the first GPU: the paper's
    chain, VGG-16 surgery, bilinear upsamplers), handed to the tool as --weights (or --snapshot to resume)."""
    check_multi_gpu(gpus)
    solver, sp, init = prepare_solver(solver_path, weights=weights, resume=resume, gpu=gpus[0], max_iter=max_iter,
                                      log=log)
    tool = Path(sys.executable).parent / "caffe"
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fcnkit-multigpu-") as tmp:
        solver_copy = Path(tmp) / "solver.prototxt"
        solver_copy.write_text(text_format.MessageToString(sp))
        cmd = [str(tool), "train", "--solver", str(solver_copy), "--gpu", ",".join(map(str, gpus))]
        if resume:
            cmd += ["--snapshot", str(resume)]
        else:
            start = Path(tmp) / "init.caffemodel"
            solver.net.save(str(start))
            cmd += ["--weights", str(start)]
        del solver
        log(f"engine: Caffe's multi-GPU solver on GPUs {','.join(map(str, gpus))}: {' '.join(cmd[:2])} ...")
        it, loss = 0, math.nan
        env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}
        with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env) as proc:
            for line in proc.stderr:
                m = CAFFE_LOSS.search(line)
                if m:
                    it, loss = int(m.group(1)), float(m.group(2))
                    log(f"iter {it} loss {loss:.6g}")
                elif GLOG_FAILURE.match(line):  # errors and the fatal CHECK that stopped it
                    print(line.rstrip(), file=sys.stderr)
        if proc.returncode:
            raise UserError(f"caffe train --gpu {','.join(map(str, gpus))} stopped with status {proc.returncode} "
                            f"at iteration {it} (its message is above); resume from the last snapshot of "
                            f"{sp.snapshot_prefix} with --resume")
    return {"iter": sp.max_iter, "loss": loss, "seconds": time.time() - t0, "val": {}, "init": init,
            "engine": "caffe"}
