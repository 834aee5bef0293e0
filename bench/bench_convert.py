#!/usr/bin/env python3
"""Benchmark the Caffe -> PyTorch converter on a full-size FCN-8s (VGG-16, random weights, ~0.5 GB).

    .venv/bin/python bench/bench_convert.py [--workdir DIR] [--threads N] [--size 500] [--repeat 3]

Reports
  * conversion: wall time and peak RSS of a `convert` run, against the caffemodel size
    (targets: < 15 s, peak RSS < 3x the caffemodel);
  * inference at SIZE x SIZE, same thread count for both: pycaffe `net.forward()` vs the converted
    module under `torch.inference_mode()` (eager, channels-last, TorchScript-frozen), and the ratio
    (target: PyTorch >= 1.5x faster);
  * per-layer-type time for both (Caffe: `net.forward(start=l, end=l)` per layer; PyTorch: forward hooks).

Each measurement runs in its own subprocess (clean RSS, thread settings applied before import).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------- workers
def worker_caffe(args) -> dict:
    import numpy as np
    from fcnkit.caffe.runtime import load_caffe
    from fcnkit.convert.verify import caffe_net

    caffe = load_caffe()
    net = caffe_net(caffe, args.prototxt, args.caffemodel, quiet=True)
    shape = (1, 3, args.size, args.size)
    net.blobs["data"].reshape(*shape)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    net.forward()  # warm-up (allocations)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        net.forward()
        times.append(time.perf_counter() - t)
    per_type: dict[str, float] = defaultdict(float)
    layers = list(zip(net._layer_names, (layer.type for layer in net.layers), strict=True))
    for _ in range(args.repeat):
        for name, ltype in layers:
            t = time.perf_counter()
            net.forward(start=name, end=name)
            per_type[ltype] += (time.perf_counter() - t) / args.repeat
    return {"forward_s": times, "per_type_s": dict(per_type)}


def worker_torch(args) -> dict:
    import warnings

    import torch
    from fcnkit.convert.convert import load_generated

    torch.set_num_threads(args.threads)
    info = json.loads((Path(args.out) / "conversion.json").read_text())
    module = load_generated(Path(args.out) / "model.py")
    x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))

    def timed(net, inp) -> list[float]:
        with torch.inference_mode():
            net(inp)  # warm-up
            out = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                net(inp)
                out.append(time.perf_counter() - t)
        return out

    type_of = {layer["module"]: layer["type"] for layer in info["layers"] if layer["kind"] == "module"}

    def per_type(net, inp) -> dict[str, float]:
        """Time per Caffe layer type through forward hooks (a separate pass: hooks cost a little)."""
        totals: dict[str, float] = defaultdict(float)
        starts: dict[str, float] = {}

        def start(name):
            return lambda m, a: starts.__setitem__(name, time.perf_counter())

        def stop(name):
            def hook(m, a, o):
                totals[type_of[name]] += (time.perf_counter() - starts[name]) / args.repeat
            return hook

        hooks = []
        for name, mod in net.named_children():
            hooks.append(mod.register_forward_pre_hook(start(name)))
            hooks.append(mod.register_forward_hook(stop(name)))
        with torch.inference_mode():
            for _ in range(args.repeat):
                net(inp)
        for h in hooks:
            h.remove()
        return dict(totals)

    result = {}
    net = module.load_model()
    result["eager_s"] = timed(net, x)
    result["per_type_s"] = per_type(net, x)
    del net
    net_cl = module.load_model(channels_last=True)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    result["channels_last_s"] = timed(net_cl, x_cl)
    result["per_type_channels_last_s"] = per_type(net_cl, x_cl)
    del net_cl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.script(module.load_model()))
    result["script_frozen_s"] = timed(frozen, x)
    return result


# ------------------------------------------------------------------------------------------ driver
def run_measured(cmd: list[str], env=None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return (wall seconds, peak RSS bytes of that child, completed process)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    rc = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, subprocess.CompletedProcess(cmd, rc, out, err)


def worker_cmd(kind: str, args, extra_env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--prototxt", str(args.prototxt),
           "--caffemodel", str(args.caffemodel), "--out", str(args.out), "--size", str(args.size),
           "--repeat", str(args.repeat), "--threads", str(args.threads)]
    env = dict(os.environ, **(extra_env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: {kind} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path,
                    help="where the FCN-8s files go (reused if present); default: a temp dir")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    ap.add_argument("--size", type=int, default=500, help="square input size for inference (default 500)")
    ap.add_argument("--repeat", type=int, default=3, help="timed forward passes per variant (default 3)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    ap.add_argument("--worker", choices=["caffe", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--prototxt", help=argparse.SUPPRESS)
    ap.add_argument("--caffemodel", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        os.environ.setdefault("GLOG_minloglevel", "2")
        result = worker_caffe(args) if args.worker == "caffe" else worker_torch(args)
        print(json.dumps(result))
        return 0

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    work.mkdir(parents=True, exist_ok=True)
    args.prototxt, args.caffemodel = work / "fcn8s.prototxt", work / "fcn8s.caffemodel"
    args.out = work / "out"
    if not args.caffemodel.exists():
        print(f"generating full-size FCN-8s with random weights in {work} ...", flush=True)
        code = ("from fcnkit.convert.samples import write_fcn_deploy, random_caffemodel; "
                f"p = write_fcn_deploy({str(args.prototxt)!r}, '8s', input_shape=(1, 3, 500, 500)); "
                f"random_caffemodel(p, {str(args.caffemodel)!r})")
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, GLOG_minloglevel="2"))
    model_bytes = args.caffemodel.stat().st_size

    threads_env = {k: str(args.threads)
                   for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    wall, rss, r = run_measured([sys.executable, "-m", "fcnkit.convert.cli", str(args.prototxt),
                                 str(args.caffemodel), "-o", str(args.out), "--force", "-q"],
                                env=dict(os.environ, **threads_env))
    if r.returncode != 0:
        sys.exit(f"bench: convert failed: {r.stderr.strip()}")
    internal = json.loads((args.out / "conversion.json").read_text())["seconds"]

    print(f"\n== conversion (full-size FCN-8s, caffemodel {model_bytes / 2**20:.1f} MiB) ==")
    print(f"   wall {wall:.2f} s (process incl. imports), {internal:.2f} s inside convert(); target < 15 s")
    print(f"   peak RSS {rss / 2**20:.0f} MiB = {rss / model_bytes:.2f}x the caffemodel; target < 3x")

    print(f"\n== inference {args.size}x{args.size}, {args.threads} thread(s), median of {args.repeat} ==",
          flush=True)
    caffe = worker_cmd("caffe", args, threads_env)
    torch_r = worker_cmd("torch", args, threads_env)
    c = statistics.median(caffe["forward_s"])
    rows = [("pycaffe net.forward()", c)]
    variants = (("eager_s", "PyTorch eager, inference_mode"), ("channels_last_s", "PyTorch channels-last"),
                ("script_frozen_s", "PyTorch jit.script + freeze"))
    for key, label in variants:
        rows.append((label, statistics.median(torch_r[key])))
    for label, t in rows:
        ratio = "" if label.startswith("pycaffe") else f"   {c / t:.2f}x faster than Caffe"
        print(f"   {label:<32} {t * 1000:8.0f} ms{ratio}")
    best = min(rows[1:], key=lambda r: r[1])
    print(f"   speed-up (best PyTorch variant: {best[0]}): {c / best[1]:.2f}x; target >= 1.5x")

    print("\n== per layer type (ms per forward; Caffe's auto-inserted Split layers included) ==")
    pt, pc, pl = caffe["per_type_s"], torch_r["per_type_s"], torch_r["per_type_channels_last_s"]
    types = sorted(set(pt) | set(pc), key=lambda t: -pt.get(t, 0.0))
    print(f"   {'type':<15} {'Caffe':>9} {'PyTorch':>9} {'ratio':>6} {'PyTorch CL':>11} {'ratio':>6}")
    for t in types:
        a, b, c2 = pt.get(t, 0.0) * 1000, pc.get(t, 0.0) * 1000, pl.get(t, 0.0) * 1000
        r1 = f"{a / b:6.2f}" if b > 0 else "     -"
        r2 = f"{a / c2:6.2f}" if c2 > 0 else "     -"
        print(f"   {t:<15} {a:9.1f} {b:9.1f} {r1} {c2:11.1f} {r2}")
    print("   (PyTorch columns: forward hooks around each module, eager and channels-last)")

    if args.json:
        args.json.write_text(json.dumps({"caffemodel_bytes": model_bytes, "convert_wall_s": wall,
                                         "convert_internal_s": internal, "convert_peak_rss_bytes": rss,
                                         "threads": args.threads, "size": args.size, "caffe": caffe,
                                         "torch": torch_r}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
