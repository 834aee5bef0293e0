#!/usr/bin/env python3
"""Inference close to the hardware: one FCN-8s forward on every engine, side by side, at the same threads.

    .venv/bin/python bench/bench_precision.py [--workdir DIR] [--threads N] [--size 500] [--repeat 3]
                                              [--photos DIR] [--model REF]

Prints, for the full-size FCN-8s (VGG-16, random weights, converted by this project) at SIZE x SIZE:
  * ms per forward (wall and CPU time of the worker process) for pycaffe, OpenCV dnn (OpenCV 4.x),
    PyTorch fp32 (NCHW), PyTorch fp32 channels-last, PyTorch bf16 (autocast, channels-last) and
    onnxruntime, each in its own process with the same thread count, and each one's speed against
    PyTorch fp32;
  * the sgemm bound: the net's counted FLOPs (convolutions and deconvolutions, 2 per multiply-add) over the
    fp32 GFLOP/s a large square matrix product reaches on this machine at the same threads, and how close
    each fp32 engine comes to it;
  * bf16 agreement with fp32 on real photos (--photos, default ../shared/realdata/duts/test/images, the
    first 16, resized to SIZE; $FCNKIT_REALDATA names another realdata folder): the share of pixels whose
argmax is the same.
With --model REF (e.g. the best real-data model `compare --preset real` trained) the same fp32 / bf16
timing and agreement for that model through fcnkit.inference, at each photo's own size.

Floors (issue 22): bf16 >= 1.8x fp32 on a CPU with AMX or AVX-512-BF16 (the script says which the CPU
has); argmax agreement >= 99.5 %; the faster fp32 PyTorch variant within 15 % of the sgemm bound
(i.e. its time <= 1.15x the bound). On random weights the agreement is a statement about rounding only;
the --model run is the one that speaks for a trained net.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import _timed  # noqa: E402  (the bench folder's shared timing helper)

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = next((p for p in (Path(os.environ.get("FCNKIT_REALDATA", ROOT.parent / "shared" / "realdata")),
                            ROOT.parent.parent / "shared" / "realdata")  # a checkout one folder deeper
               if (p / "duts").is_dir()), Path("realdata")) / "duts" / "test" / "images"
VARIANTS = {"caffe": "pycaffe net.forward()", "opencv": "OpenCV dnn", "fp32": "PyTorch fp32 (NCHW)",
            "fp32-cl": "PyTorch fp32 channels-last", "bf16": "PyTorch bf16 autocast, channels-last",
            "ort": "onnxruntime (fp32)"}


def cpu_bf16_support() -> str:
    from fcnkit.inference.backends import cpu_bf16_units  # noqa: PLC0415  (worker processes skip the import)

    have = cpu_bf16_units()
    return ", ".join(have) if have else "neither AMX nor AVX-512-BF16 (bf16 runs emulated: expect no speed-up)"


def photos(folder: Path, size: int, n: int = 16):
    import cv2
    import numpy as np

    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    mean = np.array([104.00699, 116.66877, 122.67892], np.float32)
    return [(cv2.resize(cv2.imread(str(p)), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) - mean
             ).transpose(2, 0, 1)[None].copy() for p in files]


# --------------------------------------------------------------------------------------------- workers
def worker(args) -> dict:
    import numpy as np

    shape = (1, 3, args.size, args.size)
    x = (np.random.default_rng(0).standard_normal(shape) * 60).astype(np.float32)
    kind = args.worker
    if kind == "caffe":
        from fcnkit.caffenet.pycaffe import load_caffe

        caffe = load_caffe()
        net = caffe.Net(args.prototxt, caffe.TEST, weights=args.caffemodel)
        net.blobs["data"].reshape(*shape)
        net.blobs["data"].data[...] = x
        return _timed(net.forward, args.repeat)
    if kind == "opencv":
        import cv2

        cv2.setNumThreads(args.threads)
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            return {"error": f"OpenCV {cv2.__version__} has no Caffe importer (removed in OpenCV 5)"}
        net = cv2.dnn.readNetFromCaffe(args.prototxt, args.caffemodel)
        net.setInput(x)
        return _timed(net.forward, args.repeat)
    if kind == "ort":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        sess = ort.InferenceSession(str(Path(args.out) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        return _timed(lambda: sess.run(None, feed), args.repeat)
    if kind == "gemm":
        import torch

        torch.set_num_threads(args.threads)
        n = 2048
        a, b = torch.randn(n, n), torch.randn(n, n)
        t = _timed(lambda: torch.mm(a, b), max(5, args.repeat))
        return {"gflops": 2 * n ** 3 / statistics.median(t["forward_s"]) / 1e9,
                "gflops_per_cpu_s": 2 * n ** 3 / statistics.median(t["forward_cpu_s"]) / 1e9}
    return worker_torch(args, x)


def worker_torch(args, x) -> dict:
    """fp32 / fp32-cl / bf16 on the converted net: time, FLOPs (fp32) and, for bf16, argmax agreement."""
    import numpy as np
    import torch
    from fcnkit.caffenet.model_folder import load_converted

    torch.set_num_threads(args.threads)
    net = load_converted(args.out, "cpu")
    last = args.worker != "fp32"
    if last:
        net = net.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if args.worker == "bf16" else None

    def run(inp: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(inp)
        t = t.contiguous(memory_format=torch.channels_last) if last else t
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            y = net(t)
        return (y[0] if isinstance(y, tuple | list) else y).float()

    result = _timed(lambda: run(x), args.repeat)
    if args.worker == "fp32":
        result["flops"] = count_flops(net, torch.from_numpy(x))
    if args.worker == "bf16" and args.photos and Path(args.photos).is_dir():
        net_fp32 = load_converted(args.out, "cpu")
        same = total = 0
        for p in photos(Path(args.photos), args.size):
            with torch.inference_mode():
                ref = net_fp32(torch.from_numpy(p))
            ref = ref[0] if isinstance(ref, tuple | list) else ref
            same += int((run(p).argmax(1) == ref.argmax(1)).sum())
            total += ref.shape[-1] * ref.shape[-2]
        result["agreement"] = same / total if total else None
        result["agreement_pixels"] = total
    return result


def count_flops(net, x) -> int:
    """2 x multiply-adds of every convolution, deconvolution and linear layer in one forward of `x`."""
    import torch

    flops = [0]

    def hook(m, inputs, out):
        k = 1
        for s in getattr(m, "kernel_size", ()):
            k *= s
        if isinstance(m, torch.nn.ConvTranspose2d):
            flops[0] += 2 * inputs[0].numel() * (m.out_channels // m.groups) * k
        elif isinstance(m, torch.nn.Conv2d):
            flops[0] += 2 * out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, torch.nn.Linear):
            flops[0] += 2 * out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in net.modules()
          if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d | torch.nn.Linear)]
    with torch.inference_mode():
        net(x)
    for h in hs:
        h.remove()
    return flops[0]


def worker_model(args) -> dict:
    """A registered / trained model through fcnkit.inference: fp32 vs bf16 time and mask agreement."""
    import cv2
    import numpy as np
    import torch
    from fcnkit import inference

    torch.set_num_threads(args.threads)
    images = [cv2.imread(str(p)) for p in sorted(Path(args.photos).glob("*.jpg"))[:16]]
    out = {}
    masks = {}
    for prec in ("fp32", "bf16"):
        p = inference.load(args.model, backend="torch", precision=prec)
        batch = np.stack([p.preprocessing.to_input(p._net_image(images[0]))])
        out[prec] = _timed(lambda p=p, b=batch: p.backend.forward(b), args.repeat)
        masks[prec] = [p.mask(im) for im in images]
    same = sum(int((a == b).sum()) for a, b in zip(masks["fp32"], masks["bf16"], strict=True))
    total = sum(m.size for m in masks["fp32"])
    out["agreement"] = same / total
    return out


def run_worker(kind: str, args, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--prototxt", str(args.prototxt), "--caffemodel",
           str(args.caffemodel), "--out", str(args.out), "--size", str(args.size), "--repeat", str(args.repeat),
           "--threads", str(args.threads), "--photos", str(args.photos or "")]
    if args.model:
        cmd += ["--model", args.model]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="where the FCN-8s files go (reused if present); default: temp")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every engine")
    ap.add_argument("--size", type=int, default=500, help="square input size (default 500)")
    ap.add_argument("--repeat", type=int, default=3, help="timed forward passes per engine (default 3)")
    ap.add_argument("--photos", type=Path, default=PHOTOS if PHOTOS.is_dir() else None,
                    help="real photos for the bf16 agreement (default: DUTS test images, if present)")
    ap.add_argument("--model", help="also time and compare this model (fcnkit.inference reference)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    ap.add_argument("--worker", choices=[*VARIANTS, "gemm", "model"], help=argparse.SUPPRESS)
    ap.add_argument("--prototxt", help=argparse.SUPPRESS)
    ap.add_argument("--caffemodel", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        os.environ.setdefault("GLOG_minloglevel", "2")
        print(json.dumps(worker_model(args) if args.worker == "model" else worker(args)))
        return 0

    env = dict(os.environ, GLOG_minloglevel="2",
               **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_precision_"))
    work.mkdir(parents=True, exist_ok=True)
    args.prototxt, args.caffemodel, args.out = work / "fcn8s.prototxt", work / "fcn8s.caffemodel", work / "out"
    if not (args.out / "model.onnx").is_file():
        print(f"generating and converting a full-size FCN-8s (random weights) in {work} ...", flush=True)
        code = ("from fcnkit.convert.sample_nets import write_fcn_deploy, random_caffemodel; "
                f"p = write_fcn_deploy({str(args.prototxt)!r}, '8s', input_shape=(1, 3, {args.size}, {args.size})); "
                f"random_caffemodel(p, {str(args.caffemodel)!r})")
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        subprocess.run([sys.executable, "-m", "fcnkit.cli.convert", str(args.prototxt), str(args.caffemodel),
                        "-o", str(args.out), "--force", "-q", "--onnx"], check=True, env=env)

    print(f"CPU bf16 support: {cpu_bf16_support()}")
    print(f"\n== full-size FCN-8s {args.size}x{args.size}, {args.threads} thread(s), median of {args.repeat} ==",
          flush=True)
    res = {k: run_worker(k, args, env) for k in (*VARIANTS, "gemm")}
    gemm, gemm_cpu = res["gemm"].get("gflops"), res["gemm"].get("gflops_per_cpu_s")
    flops = res["fp32"].get("flops")
    bound = flops / (gemm * 1e9) if gemm and flops else None
    bound_cpu = flops / (gemm_cpu * 1e9) if gemm_cpu and flops else None
    if bound:
        print(f"   sgemm: {gemm:.0f} GFLOP/s wall, {gemm_cpu:.0f} GFLOP per CPU-second (2048^2 fp32 matmul); net: "
              f"{flops / 1e9:.1f} GFLOP per forward; bound {bound * 1000:.0f} ms wall, {bound_cpu * 1000:.0f} ms CPU")
        print("   (on a shared machine compare CPU times: 'x bound' = CPU ms / the bound's CPU ms)")
    base = statistics.median(res["fp32"]["forward_cpu_s"]) if "forward_cpu_s" in res["fp32"] else None
    print(f"   {'engine':<38} {'wall ms':>8} {'cpu ms':>8} {'vs fp32':>8} {'x bound':>8}   (ratios of CPU time)")
    for k, label in VARIANTS.items():
        r = res[k]
        if "error" in r:
            print(f"   {label:<38} {'-':>8} {'-':>8}   {r['error']}")
            continue
        wall, cpu = statistics.median(r["forward_s"]), statistics.median(r["forward_cpu_s"])
        vs = f"{base / cpu:7.2f}x" if base else "       -"
        xb = f"{cpu / bound_cpu:7.2f}x" if bound_cpu and k != "bf16" else "       -"
        print(f"   {label:<38} {wall * 1000:8.0f} {cpu * 1000:8.0f} {vs} {xb}")
    if res["bf16"].get("agreement") is not None:
        print(f"   bf16 argmax agreement with fp32 on {res['bf16']['agreement_pixels']:,} real-photo pixels: "
              f"{100 * res['bf16']['agreement']:.2f} % (random weights: rounding only)")
    if args.model:
        m = run_worker("model", args, env)
        print(f"\n== {args.model} (fcnkit.inference, its own input size) ==")
        if "error" in m:
            print(f"   {m['error']}")
        else:
            f32, b16 = statistics.median(m["fp32"]["forward_s"]), statistics.median(m["bf16"]["forward_s"])
            print(f"   fp32 {f32 * 1000:.1f} ms, bf16 {b16 * 1000:.1f} ms ({f32 / b16:.2f}x); mask agreement on "
                  f"real photos {100 * m['agreement']:.2f} %")
        res["model"] = m
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
