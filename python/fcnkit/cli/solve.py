"""`solve SOLVER.prototxt [--engine caffe|torch]`: run a solver (see fcnkit.caffe.solve)."""

from __future__ import annotations

import argparse
import signal
import sys

from fcnkit.caffe.solve import run_solver
from fcnkit.cli import Parser
from fcnkit.cli.args import count, device
from fcnkit.config.stages import ENGINES
from fcnkit.errors import UserError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="solve", description="Run a Caffe solver prototxt, in real Caffe (default) or "
                                "in PyTorch with Caffe's exact update rule (--engine torch).")
    p.add_argument("solver", help="solver prototxt, e.g. solvers/fcn8s.prototxt")
    p.add_argument("--engine", choices=ENGINES, default=ENGINES[0],
                   help="caffe: real Caffe (default); torch: the same solver and nets in PyTorch")
    p.add_argument("--weights", help="initial weights (.caffemodel), copied by layer name")
    p.add_argument("--resume", help="continue from a .solverstate (written by either engine)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpu", type=gpu_list, metavar="N[,M...]",
                     help="run on GPU N (torch engine: cuda:N); several (0,1): Caffe's multi-GPU solver (the CUDA "
                     "build); the torch engine takes several GPUs under torchrun")
    dev.add_argument("--cpu", action="store_true", help="run on the CPU (default)")
    dev.add_argument("--device", type=device, help="torch engine: cpu (default), cuda or cuda:N")
    p.add_argument("--max-iter", type=count(1), help="stop after this many iterations (smoke runs)")
    p.add_argument("--val-iter", type=count(0), help="validation batches per check (default: solver test_iter)")
    return p


def gpu_list(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give GPU ids, e.g. 0 or 0,1") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct GPU ids >= 0, e.g. 0,1")
    return ids


@cli_entry("solve")
def main(argv=None) -> int:
    a = build_parser().parse_args(argv)

    device, gpu = a.device, a.gpu
    if a.engine == "caffe" and device is not None:
        raise UserError(f"--device {device} is for --engine torch; real Caffe takes --gpu N or --cpu")
    if a.engine == "torch" and gpu is not None and len(gpu) == 1:
        device, gpu = f"cuda:{gpu[0]}", None
    try:
        r = run_solver(a.solver, engine=a.engine, device=device, weights=a.weights, resume=a.resume, gpu=gpu,
                       max_iter=a.max_iter, val_iter=a.val_iter)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (docker stop): the solver snapshotted first
        sig = getattr(exc, "signum", signal.SIGINT)
        print(f"solve: interrupted ({'SIGTERM' if sig == signal.SIGTERM else 'Ctrl-C'}); resume with "
              "--resume <snapshot_prefix>_iter_N.solverstate", file=sys.stderr)
        return 128 + int(sig)
    if not r.get("main", True):  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(f"done: {r['iter']} iterations, final loss {r['loss']:.6g}, {r['seconds']:.1f}s ({r['engine']} engine)")
    return 0
