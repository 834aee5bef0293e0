"""`python -m fcnkit.caffe.probe SOLVER [--weights W] [--resume S] [--vgg DEPLOY MODEL] [--gpu N]`.

The child process of `solve`'s last pre-flight check (see preflight.probe): it makes exactly the Caffe
calls `solve` is about to make. If Caffe aborts here, only this child dies and `solve` reports Caffe's
message in one line; problems found in Python are printed as one `probe-error:` line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from fcnkit.caffe.loop import check_weights_fit
from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.errors import UserError


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("solver")
    p.add_argument("--weights")
    p.add_argument("--resume")
    p.add_argument("--vgg", nargs=2)
    p.add_argument("--gpu", type=int)
    a = p.parse_args(argv)

    try:
        caffe = load_caffe(a.gpu)
        solver = caffe.get_solver(a.solver)
        if a.vgg:
            caffe.Net(a.vgg[0], a.vgg[1], caffe.TEST)
        if a.weights:
            check_weights_fit(solver.net, a.weights)
            solver.net.copy_from(a.weights)
        if a.resume:
            solver.restore(a.resume)
    except UserError as exc:
        print(f"probe-error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
