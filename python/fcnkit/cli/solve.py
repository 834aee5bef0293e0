"""`solve SOLVER.prototxt`: run a real Caffe solver (see fcnkit.caffe.solve)."""

from __future__ import annotations

import argparse
import signal
import sys

from fcnkit.errors import cli_entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="solve", description="Run a Caffe solver prototxt with real Caffe.")
    p.add_argument("solver", help="solver prototxt, e.g. solvers/fcn8s.prototxt")
    p.add_argument("--weights", help="initial weights (.caffemodel), copied by layer name")
    p.add_argument("--resume", help="continue from a .solverstate")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--gpu", type=int, metavar="N", help="run on GPU N")
    dev.add_argument("--cpu", action="store_true", help="run on the CPU (default)")
    p.add_argument("--max-iter", type=int, help="stop after this many iterations (smoke runs)")
    p.add_argument("--val-iter", type=int, help="validation batches per check (default: solver test_iter)")
    return p


@cli_entry("solve")
def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    from fcnkit.caffe.solve import run_solver  # noqa: PLC0415  (imports pycaffe)

    try:
        r = run_solver(a.solver, weights=a.weights, resume=a.resume, gpu=a.gpu, max_iter=a.max_iter,
                       val_iter=a.val_iter)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (docker stop): the solver snapshotted first
        sig = getattr(exc, "signum", signal.SIGINT)
        print(f"solve: interrupted ({'SIGTERM' if sig == signal.SIGTERM else 'Ctrl-C'}); resume with "
              "--resume <snapshot_prefix>_iter_N.solverstate", file=sys.stderr)
        return 128 + int(sig)
    print(f"done: {r['iter']} iterations, final loss {r['loss']:.6g}, {r['seconds']:.1f}s")
    return 0
