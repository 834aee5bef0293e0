#!/usr/bin/env python3
"""Seconds per training iteration, real Caffe vs `solve --engine torch`, on the same solver and nets.

    .venv/bin/python bench/bench_solve.py [--nets full,tiny] [--rounds 2] [--iters 2] [--threads N]
                                          [--device cpu|cuda] [--workdir DIR]

Nets (random initial weights, synthetic LMDBs, dropout as in the paper):
  full  the paper's FCN-8s (VGG-16, 134 M parameters), batch 15 at 224x224, SGD momentum 0.99 at 1e-10;
  tiny  the demo's tiny FCN-8s, batch 10 at 112x112 (the demo's data size), Adam 1e-3.

Each measurement runs in its own subprocess (thread settings applied before import, memory released
after): a warm-up iteration, then `--iters` timed iterations (one `solver.step(1)` / `engine.step()`
each, data loading included). The engines alternate, round after round, so both see the same load on a
shared machine; the figure per engine is the median over all its timed iterations. Reported: s/iteration
per engine, the ratio (Caffe / torch; floor for the full-size net on CPU: 3x), peak RSS, the work per
iteration (FLOPs counted by torch.utils.flop_counter) against this CPU's measured sgemm rate, i.e. how close
each engine is to the machine's ceiling and the largest ratio that ceiling allows, and the projected
wall time of the paper's whole schedule (the iterations of every stage in config.stages, FCN-32s 50 000 +
16s 20 000 + 8s 20 000 + composite 10 000 + fine-tune 20 000, all at the FCN-8s rate, validation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = 3.0
NETS = {
    "full": dict(prototxt="prototxt/fcn8s/train.prototxt", size=224, batch=15,
                 solver='type: "SGD"\nbase_lr: 1e-10\nlr_policy: "fixed"\nmomentum: 0.99\nweight_decay: 0.0005\n'),
    "tiny": dict(prototxt="prototxt/tiny/fcn8s/train.prototxt", size=112, batch=10,
                 solver='type: "Adam"\nbase_lr: 0.001\nlr_policy: "fixed"\nmomentum: 0.9\nmomentum2: 0.999\n'
                        'weight_decay: 0.0005\n'),
}


def make_workspace(root: Path, name: str) -> Path:
    """root/name: a paired LMDB of synthetic sneaker-like blobs, the net reading it, and a solver."""
    import numpy as np
    from fcnkit.io.caffe_schema import pb
    from fcnkit.io.lmdb_io import LMDBWriter, encode_datum
    from google.protobuf import text_format

    cfg = NETS[name]
    ws = root / name
    ws.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n, s = 2 * cfg["batch"], cfg["size"]
    yy, xx = np.mgrid[:s, :s]
    for kind in ("image", "label"):
        rng = np.random.default_rng(0)
        with LMDBWriter(ws / f"{kind}_lmdb") as w:
            for i in range(n):
                inside = ((yy - s * rng.uniform(0.3, 0.7)) ** 2 + (xx - s * rng.uniform(0.3, 0.7)) ** 2) < (s / 4) ** 2
                img = rng.integers(200, 255, (3, s, s), dtype=np.uint8)
                img[:, inside] = rng.integers(0, 120, (3, 1), dtype=np.uint8)
                w.put(f"{i:08d}", encode_datum(img if kind == "image" else inside[None].astype(np.uint8)))
    net = pb().NetParameter()
    text_format.Parse((ROOT / cfg["prototxt"]).read_text(), net)
    for lay in net.layer:
        if lay.type == "Data":
            lay.data_param.source = str(ws / ("image_lmdb" if lay.top[0] == "data" else "label_lmdb"))
            lay.data_param.batch_size = cfg["batch"]
    (ws / "train.prototxt").write_text(text_format.MessageToString(net))
    (ws / "solver.prototxt").write_text(f'net: "train.prototxt"\n{cfg["solver"]}max_iter: 1000000\ndisplay: 0\n'
                                        "random_seed: 0\n")
    return ws


def child(args) -> dict:
    """One engine, one net: warm-up, then timed iterations. Runs in the workspace directory."""
    os.chdir(args.child_dir)
    quiet = lambda *a: None  # noqa: E731
    if args.child == "caffe":
        from fcnkit.caffe.caffe_engine import prepare_solver

        solver, _, _ = prepare_solver("solver.prototxt", log=quiet)
        step = lambda: solver.step(1)  # noqa: E731
        version = "Caffe 1.0 (CPU, OpenBLAS)"
    else:
        import torch
        from fcnkit.caffe.torch_engine import prepare_torch_solver

        torch.set_num_threads(args.threads)
        engine, _, _ = prepare_torch_solver("solver.prototxt", device=args.device, log=quiet)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

        def step():
            engine.step()
            sync()
        version = f"torch {torch.__version__} ({args.device})"
    flops = None
    for i in range(args.warmup):
        if i == 0 and args.child == "torch":  # the net's work, counted once: convolutions and matmuls, fwd + bwd
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                step()
            flops = counter.get_total_flops()
        else:
            step()
    times = []
    for _ in range(args.iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    out = {"times": times, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "version": version, "flops": flops}
    if args.device == "cpu":  # measured in every child, after its iterations; the best one is reported
        out["sgemm_gflops"] = sgemm_peak()
    return out


def sgemm_peak(n: int = 4096, reps: int = 5) -> float:
    """This machine's single-precision matrix-multiply rate (GFLOP/s) at the child's threads, the best of
    `reps` products (a shared machine's dips are not the ceiling): the rate either engine's convolutions
    (GEMM-shaped work in both) can approach."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def run_child(engine: str, ws: Path, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads), GLOG_minloglevel="2")
    cmd = [sys.executable, __file__, "--child", engine, "--child-dir", str(ws), "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"bench_solve: {engine} on {ws.name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def hours(seconds: float) -> str:
    h = seconds / 3600
    return f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} days"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="full,tiny")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="cpu", help="torch engine device (Caffe here is the CPU build)")
    p.add_argument("--workdir")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    from fcnkit.config.stages import STAGES

    paper_iterations = sum(st.max_iter for st in STAGES)
    nets = [n for n in args.nets.split(",") if n]
    tmp = tempfile.TemporaryDirectory(prefix="bench_solve-") if not args.workdir else None
    root = Path(args.workdir or tmp.name)
    print(f"bench_solve: {args.threads} threads, torch on {args.device}, {args.rounds} rounds x {args.iters} timed "
          f"iterations per engine (after {args.warmup} warm-up), engines alternating; workdir {root}")
    results: dict = {}
    for name in nets:
        ws = make_workspace(root, name)
        cfg = NETS[name]
        for rnd in range(args.rounds):
            for engine in ("caffe", "torch"):
                r = run_child(engine, ws, args)
                slot = results.setdefault(name, {}).setdefault(engine, {"times": [], "rss": 0.0})
                slot["times"] += r["times"]
                slot["rss"] = max(slot["rss"], r["peak_rss_gb"])
                slot["version"] = r["version"]
                if r.get("flops"):
                    results[name]["flops"] = r["flops"]
                if r.get("sgemm_gflops"):
                    results[name]["sgemm_gflops"] = max(results[name].get("sgemm_gflops", 0), r["sgemm_gflops"])
                print(f"  {name} round {rnd + 1} {engine:5s}: " + ", ".join(f"{t:.2f}" for t in r["times"])
                      + f" s/it (peak RSS {r['peak_rss_gb']:.1f} GB)", flush=True)
        c = statistics.median(results[name]["caffe"]["times"])
        t = statistics.median(results[name]["torch"]["times"])
        results[name].update(caffe_s=c, torch_s=t, ratio=c / t)
        print(f"{name}: FCN-8s batch {cfg['batch']} at {cfg['size']}x{cfg['size']}: Caffe {c:.2f} s/it, torch "
              f"{t:.2f} s/it, torch {c / t:.2f}x faster")
        if results[name].get("flops") and results[name].get("sgemm_gflops"):
            f, peak = results[name]["flops"] / 1e9, results[name]["sgemm_gflops"]
            print(f"  work: {f / 1e3:.2f} TFLOP per iteration (convolutions + matmuls, forward + backward); this "
                  f"CPU's sgemm peak {peak:.0f} GFLOP/s at {args.threads} threads: Caffe reaches {f / c:.0f} "
                  f"GFLOP/s ({100 * f / c / peak:.0f} %), torch {f / t:.0f} ({100 * f / t / peak:.0f} %); even at "
                  f"100 % torch could be at most {c / (f / peak):.2f}x faster than Caffe here")
    print()
    k = f"{paper_iterations // 1000}k it"
    print(f"{'net':<6} {'Caffe s/it':>11} {'torch s/it':>11} {'ratio':>6}  {'Caffe, ' + k:>15} {'torch, ' + k:>15}")
    for name in nets:
        r = results[name]
        print(f"{name:<6} {r['caffe_s']:>11.2f} {r['torch_s']:>11.2f} {r['ratio']:>5.2f}x  "
              f"{hours(r['caffe_s'] * paper_iterations):>15} {hours(r['torch_s'] * paper_iterations):>15}")
    ok = True
    if "full" in results and args.device == "cpu":
        ok = results["full"]["ratio"] >= FLOOR
        print(f"\nfloor (full-size FCN-8s on CPU, torch >= {FLOOR:g}x Caffe): {'PASS' if ok else 'FAIL'} "
              f"({results['full']['ratio']:.2f}x)")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
