#!/usr/bin/env python3
"""Benchmark the Caffe -> PyTorch converter on a full-size FCN-8s (VGG-16, random weights, ~0.5 GB), or on
the model zoo (--zoo).

    .venv/bin/python bench/bench_convert.py [--workdir DIR] [--threads N] [--size 500] [--repeat 3]
    .venv/bin/python bench/bench_convert.py --zoo [NAME ...] [--workdir DIR] [--threads N] [--repeat 3]

Reports
  * conversion: wall time and peak RSS of a `convert` run, against the caffemodel size
    (targets: < 15 s, peak RSS < 3x the caffemodel);
  * inference at SIZE x SIZE, same thread count for both: pycaffe `net.forward()` vs the converted
    module under `torch.inference_mode()` (eager, channels-last, TorchScript-frozen), and the ratio
    (target: PyTorch >= 1.5x faster);
  * per-layer-type time for both (Caffe: `net.forward(start=l, end=l)` per layer; PyTorch: forward hooks).

--zoo: every net of fcnkit.convert.model_zoo at its published width and input size (random weights), one row each:
conversion seconds (`convert` process wall time including imports, and inside convert()), peak RSS against
the caffemodel size (the whole process -- for a 5 MB SqueezeNet the interpreter with torch alone is ~70x the
file -- and "added": the peak above that of converting a one-layer net, i.e. what the model itself costs),
parity (max rel diff of the net outputs against Caffe on one random input -- a detection net on its raw heads
-- for the converted net and for OpenCV dnn), and ms per forward for pycaffe, OpenCV dnn (cv2.dnn.readNetFromCaffe,
which needs OpenCV < 5), PyTorch eager and onnxruntime (model.onnx) at the same thread count: wall time and CPU
time (on a shared machine the CPU time is the figure to compare). Where OpenCV and Caffe disagree the row says
so; the converted net follows Caffe. Floors: conversion < 15 s,
added RSS < 3x the caffemodel, PyTorch eager at least as fast as pycaffe (CPU time).

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
    from fcnkit.caffenet.pycaffe import load_caffe
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


def _feed(prototxt: str, seed: int = 0) -> dict:
    """Random inputs (image-like values) for every Input layer of a deploy prototxt; a 2-D input (an LSTM's
    `cont`) is the indicator of one sequence."""
    import numpy as np
    from fcnkit.io import caffe_schema as schema

    net = schema.load_prototxt(prototxt)
    rng = np.random.default_rng(seed)
    feed = {}
    for layer in net.layer:
        if layer.type == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape, strict=False):
                feed[top] = (rng.standard_normal(tuple(shape.dim)) * 60).astype(np.float32)
                if len(shape.dim) == 2:  # a recurrent net's sequence indicator `cont` (T, N): 0 at t = 0, then 1
                    feed[top] = np.ones(tuple(shape.dim), np.float32)
                    feed[top][0] = 0
    return feed


def _timed(fn, repeat: int) -> dict[str, list[float]]:
    """Wall and CPU (this process, all threads) seconds per call. On a shared machine the CPU time is the
    steadier figure: with one thread it is the time the forward pass itself took."""
    fn()  # warm-up (allocations)
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"forward_s": wall, "forward_cpu_s": cpu}


def worker_zoo(args) -> dict:
    """ms per forward of one zoo net: pycaffe, PyTorch eager, onnxruntime (args.worker = zoo-<backend>)."""
    feed = _feed(args.prototxt)
    backend = args.worker.split("-", 1)[1]
    if backend == "caffe":
        from fcnkit.caffenet.pycaffe import load_caffe

        caffe = load_caffe()
        net = caffe.Net(args.caffe_prototxt or args.prototxt, args.caffemodel, caffe.TEST)
        for name, arr in feed.items():
            net.blobs[name].data[...] = arr
        return _timed(net.forward, args.repeat)
    if backend == "torch":
        import torch
        from fcnkit.convert.convert import load_generated

        torch.set_num_threads(args.threads)
        info = json.loads((Path(args.out) / "conversion.json").read_text())
        net = load_generated(Path(args.out) / "model.py").load_model()
        xs = [torch.from_numpy(feed[i["blob"]]) for i in info["inputs"]]

        def run():
            with torch.inference_mode():
                net(*xs)
        return _timed(run, args.repeat)
    if backend == "opencv":
        import cv2

        cv2.setNumThreads(args.threads)
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            return {"error": f"OpenCV {cv2.__version__} has no Caffe importer (removed in OpenCV 5)"}
        try:
            net = cv2.dnn.readNetFromCaffe(args.caffe_prototxt or args.prototxt, args.caffemodel)
            for name, arr in feed.items():
                net.setInput(arr, name)
            net.forward()
        except cv2.error as exc:
            return {"error": str(exc).strip().splitlines()[-1][:120]}
        return _timed(net.forward, args.repeat)
    if backend == "parity":  # outputs of PyTorch and OpenCV against Caffe's, on one random input
        import torch
        from fcnkit.caffenet.model_folder import load_generated, read_info
        from fcnkit.caffenet.pycaffe import load_caffe
        from fcnkit.convert.verify import backends_report

        torch.set_num_threads(args.threads)
        caffe = load_caffe()
        out = Path(args.out)
        info = read_info(out)
        net_c = caffe.Net(args.caffe_prototxt or args.prototxt, args.caffemodel, caffe.TEST)
        net_t = load_generated(out / "model.py").load_model()
        rep = backends_report(args.caffe_prototxt or args.prototxt, args.caffemodel, out, info, feed, net_c, net_t,
                              1e-4, False)
        return {"worst": rep["worst"], "opencv_disagrees": rep["opencv_disagrees"]}
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(Path(args.out) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    inputs = {i.name: feed[i.name] for i in sess.get_inputs()}
    return _timed(lambda: sess.run(None, inputs), args.repeat)


def zoo_bench(args, threads_env: dict) -> int:
    from fcnkit.convert import model_zoo

    names = args.zoo or list(model_zoo.ZOO)
    unknown = sorted(set(names) - set(model_zoo.ZOO))
    if unknown:
        sys.exit(f"bench: unknown zoo nets {unknown}; choose from {sorted(model_zoo.ZOO)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_zoo_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GLOG_minloglevel="2", **threads_env)
    # The converter's fixed cost (Python, torch, the TorchScript/export checks): converting a one-layer net.
    tiny = work / "tiny"
    tiny.mkdir(exist_ok=True)
    code = ("import caffe; from fcnkit.convert.sample_nets import random_caffemodel; n = caffe.NetSpec(); "
            "n.data = caffe.layers.Input(shape=dict(dim=[1, 3, 8, 8])); "
            "n.conv = caffe.layers.Convolution(n.data, num_output=2, kernel_size=3); "
            f"open({str(tiny / 'tiny.prototxt')!r}, 'w').write(str(n.to_proto())); "
            f"random_caffemodel({str(tiny / 'tiny.prototxt')!r}, {str(tiny / 'tiny.caffemodel')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    _, base_rss, r = run_measured([sys.executable, "-m", "fcnkit.cli.convert", str(tiny / "tiny.prototxt"),
                                   str(tiny / "tiny.caffemodel"), "-o", str(tiny / "out"), "--force", "-q"], env=env)
    if r.returncode != 0:
        sys.exit(f"bench: baseline conversion failed: {r.stderr.strip()}")
    rows = []
    for name in names:
        d = work / name
        _, meta = model_zoo.ZOO[name]
        size = meta.size
        proto, model = d / f"{name}_{size[0]}x{size[1]}.prototxt", d / f"{name}.caffemodel"
        if not model.exists():
            print(f"generating full-size {name} ({size[1]}x{size[0]}) with random weights ...", flush=True)
            code = f"from fcnkit.convert import model_zoo; model_zoo.write({name!r}, {str(d)!r}, sizes=[{size!r}])"
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
        out = d / "out"
        wall, rss, r = run_measured([sys.executable, "-m", "fcnkit.cli.convert", str(proto), str(model), "-o",
                                     str(out), "--force", "-q"], env=env)
        if r.returncode != 0:
            sys.exit(f"bench: convert {name} failed: {r.stderr.strip()}")
        inside = json.loads((out / "conversion.json").read_text())["seconds"]
        onnx_wall, _, r = run_measured([sys.executable, "-m", "fcnkit.cli.convert", str(proto), str(model), "-o",
                                        str(out), "--force", "-q", "--onnx"], env=env)
        if r.returncode != 0:
            sys.exit(f"bench: convert --onnx {name} failed: {r.stderr.strip()}")
        onnx_info = json.loads((out / "conversion.json").read_text())["onnx"]
        twin = d / f"{name}_{size[0]}x{size[1]}_caffe.prototxt"  # a fork net (C3D): what Caffe/OpenCV run
        args.prototxt, args.caffemodel, args.out = str(proto), str(model), str(out)
        args.caffe_prototxt = str(twin if twin.exists() else proto)
        ms, notes = {}, []
        for backend in ("caffe", "opencv", "torch", "ort"):
            if backend == "ort" and not onnx_info.get("exported"):
                continue
            res = worker_cmd(f"zoo-{backend}", args, threads_env)
            if "error" in res:
                notes.append(f"{backend}: {res['error']}")
                continue
            ms[backend] = statistics.median(res["forward_s"]) * 1000
            ms[f"{backend}_cpu"] = statistics.median(res["forward_cpu_s"]) * 1000
        parity = worker_cmd("zoo-parity", args, threads_env)
        rows.append({"net": name, "input": f"{size[1]}x{size[0]}", "caffemodel_bytes": model.stat().st_size,
                     "convert_s": wall, "convert_inside_s": inside, "convert_onnx_s": onnx_wall,
                     "peak_rss_bytes": rss,
                     "baseline_rss_bytes": base_rss, "ms": ms, "onnx_dynamic": onnx_info.get("dynamic"),
                     "onnx_left_out": sorted(onnx_info.get("left_out", {})), "parity": parity["worst"],
                     "opencv_disagrees": parity["opencv_disagrees"], "notes": notes})
        _print_zoo_row(rows[-1], header=len(rows) == 1, threads=args.threads)
    fails = _zoo_floors(rows)
    print(f"\nmachine load average (1, 5, 15 min) at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    print("floors: " + ("all met" if not fails else "NOT MET: " + "; ".join(fails)))
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "repeat": args.repeat, "rows": rows}, indent=1))
    return 0


def _print_zoo_row(row: dict, header: bool, threads: int) -> None:
    if header:
        print(f"\n== model zoo, full width, random weights; {threads} thread(s); ms per forward: median wall "
              "(median CPU time) ==")
        print(f"   {'net':<14} {'input':>8} {'model MiB':>9} {'convert s':>9} {'inside s':>8} {'+onnx s':>7} "
              f"{'RSS/model':>9} {'added/model':>11} {'parity':>8} {'OpenCV':>8} {'pycaffe':>15} {'OpenCV':>15} "
              f"{'torch':>15} {'ort':>15} {'caffe/torch':>11}")
    mb = row["caffemodel_bytes"]
    ms = row["ms"]

    def cell(backend: str) -> str:
        if backend not in ms:
            return f"{'-':>15}"
        return f"{ms[backend]:7.1f} ({ms[backend + '_cpu']:5.0f})"

    speed = ms["caffe_cpu"] / ms["torch_cpu"]
    added = max(row["peak_rss_bytes"] - row["baseline_rss_bytes"], 0) / mb
    print(f"   {row['net']:<14} {row['input']:>8} {mb / 2**20:9.1f} {row['convert_s']:9.2f} "
          f"{row['convert_inside_s']:8.2f} {row['convert_onnx_s']:7.1f} {row['peak_rss_bytes'] / mb:9.2f} "
          f"{added:11.2f} {row['parity']['torch']:8.1e} {row['parity']['opencv']:8.1e} {cell('caffe')} "
          f"{cell('opencv')} {cell('torch')} {cell('ort')} {speed:10.2f}x", flush=True)
    notes = list(row["notes"])
    if row["opencv_disagrees"]:
        notes.append(f"OpenCV differs from Caffe on {row['opencv_disagrees']}; the converted net follows Caffe")
    if row["onnx_left_out"]:
        notes.append(f"onnxruntime runs without {', '.join(row['onnx_left_out'])} (left out of model.onnx)")
    if row["onnx_dynamic"]:
        notes.append(f"model.onnx dynamic axes: {row['onnx_dynamic']}")
    print(f"   {'':<14} ({'; '.join(notes)})")


def _zoo_floors(rows: list[dict]) -> list[str]:
    fails = []
    for row in rows:
        added = max(row["peak_rss_bytes"] - row["baseline_rss_bytes"], 0) / row["caffemodel_bytes"]
        if row["convert_s"] >= 15:
            fails.append(f"{row['net']}: conversion {row['convert_s']:.1f} s >= 15 s")
        if added >= 3:
            fails.append(f"{row['net']}: conversion RSS {added:.2f}x the caffemodel >= 3x")
        if row["ms"]["torch_cpu"] > row["ms"]["caffe_cpu"]:
            fails.append(f"{row['net']}: PyTorch eager {row['ms']['torch_cpu']:.0f} ms CPU slower than pycaffe "
                         f"{row['ms']['caffe_cpu']:.0f} ms")
    return fails


# ------------------------------------------------------------------------------------------ driver
def run_measured(cmd: list[str], env=None) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return (wall seconds, peak RSS bytes of that child, completed process)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # files: a pipe can fill up
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        rc = os.waitstatus_to_exitcode(status)
        return wall, usage.ru_maxrss * 1024, subprocess.CompletedProcess(cmd, rc, out.read(), err.read())


def worker_cmd(kind: str, args, extra_env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--prototxt", str(args.prototxt),
           "--caffemodel", str(args.caffemodel), "--out", str(args.out), "--size", str(args.size),
           "--repeat", str(args.repeat), "--threads", str(args.threads)]
    if getattr(args, "caffe_prototxt", None):
        cmd += ["--caffe-prototxt", str(args.caffe_prototxt)]
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
    ap.add_argument("--zoo", nargs="*", metavar="NAME",
                    help="benchmark the model zoo (all nets, or the named ones) instead of FCN-8s")
    ap.add_argument("--worker", choices=["caffe", "torch", "zoo-caffe", "zoo-torch", "zoo-ort", "zoo-opencv",
                                         "zoo-parity"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--prototxt", help=argparse.SUPPRESS)
    ap.add_argument("--caffemodel", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--caffe-prototxt", help=argparse.SUPPRESS)  # what Caffe and OpenCV run (a fork net's twin)
    args = ap.parse_args()

    if args.worker:
        os.environ.setdefault("GLOG_minloglevel", "2")
        if args.worker.startswith("zoo-"):
            result = worker_zoo(args)
        else:
            result = worker_caffe(args) if args.worker == "caffe" else worker_torch(args)
        print(json.dumps(result))
        return 0
    threads_env = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    if args.zoo is not None:
        return zoo_bench(args, threads_env)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    work.mkdir(parents=True, exist_ok=True)
    args.prototxt, args.caffemodel = work / "fcn8s.prototxt", work / "fcn8s.caffemodel"
    args.out = work / "out"
    if not args.caffemodel.exists():
        print(f"generating full-size FCN-8s with random weights in {work} ...", flush=True)
        code = ("from fcnkit.convert.sample_nets import write_fcn_deploy, random_caffemodel; "
                f"p = write_fcn_deploy({str(args.prototxt)!r}, '8s', input_shape=(1, 3, 500, 500)); "
                f"random_caffemodel(p, {str(args.caffemodel)!r})")
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, GLOG_minloglevel="2"))
    model_bytes = args.caffemodel.stat().st_size

    wall, rss, r = run_measured([sys.executable, "-m", "fcnkit.cli.convert", str(args.prototxt),
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
