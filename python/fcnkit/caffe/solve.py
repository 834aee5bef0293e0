"""`fcnkit solve`: run a solver in real Caffe (`caffe_engine`) or in the torch engine (`torch_engine`), which
reads the same solver and net files; both are driven by the one training loop (`loop.train`).
"""

from __future__ import annotations

import os
from pathlib import Path

from fcnkit.caffe import loop
from fcnkit.caffe.caffe_engine import CaffeEngine, prepare_solver, run_multi_gpu
from fcnkit.caffe.loop import TrainingEngine
from fcnkit.config.stages import ENGINES
from fcnkit.errors import UserError


def run_solver(solver_path: str | os.PathLike, *, engine: str = "caffe", device: str | None = None,
               weights: str | None = None, resume: str | None = None, gpu: int | list[int] | None = None,
               max_iter: int | None = None, display: int | None = None, val_iter: int | None = None,
               log=print) -> dict:
    """Run the solver to its max_iter (or `max_iter`), returning {'iter', 'loss', 'seconds', 'val', 'init'}.

    engine "caffe" runs real Caffe (on GPU `gpu`; a list of several: Caffe's multi-GPU solver), "torch" the torch
    engine on `device` (cpu, cuda, cuda:N; several GPUs or machines: under torchrun, see training.distributed).
    Without --weights/--resume the initial weights follow the paper's chain (`resolve_init`).
    Validation (pixel accuracy, mean IoU on the solver's test net) runs at every snapshot and at the end,
    over `val_iter` batches (default: the solver's test_iter).
    """
    if engine not in ENGINES:
        raise UserError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if isinstance(gpu, list | tuple):  # --gpu 0,1
        if len(gpu) > 1:
            if engine == "torch":
                raise UserError(f"--gpu {','.join(map(str, gpu))} --engine torch: start one rank per GPU instead: "
                                f"torchrun --nproc_per_node {len(gpu)} -m fcnkit solve {solver_path} --engine torch "
                                "--device cuda (CUDA_VISIBLE_DEVICES picks the GPUs)")
            return run_multi_gpu(solver_path, list(gpu), weights=weights, resume=resume, max_iter=max_iter, log=log)
        gpu = gpu[0]
    if engine == "torch":
        from fcnkit.caffe.torch_engine import prepare_torch_solver  # noqa: PLC0415  (torch: only this engine pays)

        solver, sp, init = prepare_torch_solver(solver_path, weights=weights, resume=resume, device=device,
                                                max_iter=max_iter, log=log)
    else:
        solver, sp, init = prepare_solver(solver_path, weights=weights, resume=resume, gpu=gpu, max_iter=max_iter,
                                          log=log)
    try:
        r = train(solver, sp, Path(solver_path).stem, display=display, val_iter=val_iter, log=log)
    finally:
        if isinstance(solver, TrainingEngine):
            solver.close()
    return r | {"init": init, "engine": engine, "main": getattr(solver, "is_main", True)}


def train(solver, sp, name: str, **kwargs) -> dict:
    """`loop.train` over an engine, or over a pycaffe solver (what `prepare_solver` returns)."""
    engine = solver if isinstance(solver, TrainingEngine) else CaffeEngine(solver, sp)
    return loop.train(engine, sp, name, **kwargs)
