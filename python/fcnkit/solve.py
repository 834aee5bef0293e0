"""`solve SOLVER.prototxt`: run a real Caffe SGD solver with progress, logging and a safe Ctrl-C.

Caffe aborts the whole process on a failed CHECK, so everything that can be checked (solver and net
files exist and parse, weights and solverstate exist) is checked here first and reported in one line.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from google.protobuf import text_format
from tqdm import tqdm

from fcnkit import surgery
from fcnkit.caffe_env import caffe_pb2, load_caffe
from fcnkit.errors import UserError, cli_entry


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
    net = sp.net or sp.train_net
    if not net:
        raise UserError(f"{path}: solver names no `net:`/`train_net:`; add one")
    if not Path(net).is_file():
        raise UserError(f"{path}: net file {net} does not exist (paths are relative to the working "
                        f"directory {os.getcwd()})")
    return sp


def fixed_upsampling_layers(net_path: str | os.PathLike) -> list[str]:
    """Deconvolution layers whose weights never learn (lr_mult 0): FCN's bilinear upsamplers."""
    net = read_prototxt(net_path, caffe_pb2().NetParameter())
    return [lay.name for lay in net.layer
            if lay.type == "Deconvolution" and lay.param and all(p.lr_mult == 0 for p in lay.param)]


def run_solver(solver_path: str | os.PathLike, *, weights: str | None = None, resume: str | None = None,
               gpu: int | None = None, max_iter: int | None = None, display: int | None = None,
               log=print) -> dict:
    """Run the solver to its max_iter (or `max_iter`), returning {'iter', 'loss', 'seconds'}."""
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
    if weights:
        solver.net.copy_from(weights)
    # Fixed upsamplers are bilinear whatever the weights say (test nets share these blobs).
    surgery.interp(solver.net, fixed_upsampling_layers(sp.net or sp.train_net))
    if resume:
        solver.restore(resume)
    every = display or sp.display or 20
    loss = math.nan
    t0 = time.time()
    start = solver.iter
    bar = tqdm(total=sp.max_iter, initial=start, desc=Path(solver_path).stem, unit="it", leave=False,
               disable=None)  # None: no bar when stdout is not a terminal (logs, CI)
    try:
        while solver.iter < sp.max_iter:
            solver.step(1)
            bar.update(1)
            loss = float(solver.net.blobs["loss"].data) if "loss" in solver.net.blobs else math.nan
            bar.set_postfix(loss=f"{loss:.4g}")
            if not math.isfinite(loss):
                # Stop at once: Caffe's MAX pooling indexes out of bounds when fed NaNs.
                raise UserError(f"{solver_path}: loss became {loss} at iteration {solver.iter}; "
                                "lower base_lr or check the data")
            if solver.iter % every == 0 or solver.iter == sp.max_iter:
                log(f"iter {solver.iter} loss {loss:.6g}")
    except KeyboardInterrupt:
        bar.close()
        log(f"interrupted at iteration {solver.iter}: snapshotting before exit")
        if sp.snapshot_prefix:
            solver.snapshot()
        raise
    bar.close()
    if sp.snapshot_prefix and solver.iter > start:
        solver.snapshot()
    return {"iter": solver.iter, "loss": loss, "seconds": time.time() - t0}


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
    a = p.parse_args(argv)
    r = run_solver(a.solver, weights=a.weights, resume=a.resume, gpu=a.gpu, max_iter=a.max_iter)
    print(f"done: {r['iter']} iterations, final loss {r['loss']:.6g}, {r['seconds']:.1f}s")
    return 0
