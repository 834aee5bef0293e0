"""Import pycaffe once, quietly, with a clear message when `make setup` has not been run; and check a deploy
prototxt + caffemodel pair before pycaffe sees it (`check_net_files`), since Caffe aborts the whole process
on a failed CHECK.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import filter_net, load_prototxt, read_caffemodel, upgrade_net

_caffe = None


def load_caffe(gpu: int | None = None):
    """Return the `caffe` module, in CPU mode unless a GPU id is given.

    glog is kept to warnings and above unless GLOG_minloglevel is already set, because Caffe logs
    every layer of every net it builds at INFO level.
    """
    global _caffe
    if _caffe is None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        try:
            import caffe  # noqa: PLC0415  (pycaffe: slow, built by make setup, optional for some tools)
        except ImportError as exc:
            raise UserError(f"pycaffe is not importable ({exc}); run `make setup` and use .venv/bin/python") from exc
        _caffe = caffe
    if gpu is None:
        _caffe.set_mode_cpu()
    else:
        require_gpu(gpu, f"GPU {gpu}")  # set_device would abort the process
        _caffe.set_device(gpu)
        _caffe.set_mode_gpu()
    return _caffe


def require_gpu(gpu: int, label: str) -> None:
    """Refuse GPU `gpu` in one line (UserError starting with `label`) where Caffe would abort the process: a
    CPU-only build, or a GPU build on a machine (or in a container) where the driver sees no such GPU."""
    info = build_info()
    if info is not None and not info.get("gpu"):
        raise UserError(f"{label}: this Caffe is a CPU-only build ({info.get('key')}); run on the CPU, or in the "
                        "CUDA container (Dockerfile.caffe)")
    count, why = cuda_device_count()
    if not 0 <= gpu < count:
        seen = why or f"the NVIDIA driver sees {count} GPU(s), numbered 0 to {count - 1}"
        raise UserError(f"{label}: {seen}; run the container with `docker run --gpus all`, pick a listed GPU, or "
                        "run on the CPU (--cpu)")


def cuda_device_count() -> tuple[int, str]:
    """(GPUs the NVIDIA driver sees, why none where it sees none), asked through the driver API itself, so
    that no driver or no GPU is an answer rather than a CUDA_CHECK that aborts the process."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver is visible (libcuda.so.1 not found)"
    rc = driver.cuInit(0)
    if rc != 0:
        return 0, f"the NVIDIA driver reports no usable GPU (cuInit error {rc})"
    n = ctypes.c_int(0)
    rc = driver.cuDeviceGetCount(ctypes.byref(n))
    if rc != 0:
        return 0, f"the NVIDIA driver could not count its GPUs (cuDeviceGetCount error {rc})"
    return n.value, ""


def build_info() -> dict | None:
    """BUILD_INFO.json of the Caffe build pycaffe comes from (tools/build_caffe.py writes it), if any.

    Found without importing pycaffe or starting Caffe: a GPU build's Caffe, started on a machine without a
    driver, logs two errors (no cuBLAS handle, no cuRAND generator) that a one-line refusal must not carry."""
    spec = importlib.util.find_spec("caffe")
    if spec is None or not spec.origin:
        load_caffe()  # raises the usual "run make setup" error
        return None
    path = Path(spec.origin).resolve().parents[2] / "BUILD_INFO.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# Layer types whose parameters a caffemodel carries; a deploy layer of these types that the caffemodel lacks
# keeps its filler's random values in Caffe (silently).
LEARNED = {"Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "PReLU", "Embed", "Bias", "Scale", "LSTM",
           "RNN", "BatchReNorm", "Normalize"}
_GLOG_FATAL = re.compile(r"^F\d{4} [\d:.]+\s+\d+ (\S+)\] (.*)$")


def abort_reason(stderr: str, returncode: int) -> str:
    """What a Caffe process that failed said: its glog FATAL (CHECK) line, else its last line and status."""
    lines = stderr.strip().splitlines()
    fatal = [m for m in map(_GLOG_FATAL.match, lines) if m]
    if fatal:
        where, msg = fatal[-1].groups()
        return f"{where}: {msg}"
    last = next((ln for ln in reversed(lines) if ln.strip() and not ln.startswith(("***", "    @"))), "")
    why = f"exit status {returncode}" if returncode > 0 else f"signal {-returncode}"
    return f"{why}: {last or 'no message'}"


def unfilled_layers(deploy: str | os.PathLike, caffemodel: str | os.PathLike) -> tuple[list[str], int]:
    """(learned layers of the deploy net's TEST phase that the caffemodel has no blobs for, learned layers in
    all), both files read with the project's schema; UserError for a file that does not parse."""
    raw = load_prototxt(deploy, "deploy prototxt")
    net, _ = upgrade_net(raw, str(deploy))
    net = filter_net(net, "TEST")
    model = read_caffemodel(caffemodel)
    learned = [layer for layer in net.layer if layer.type in LEARNED
               and not (layer.type in ("Scale", "Bias") and len(layer.bottom) > 1)]  # 2 bottoms: no parameters
    missing = [layer.name for layer in learned
               if layer.name not in model.layers or not model.layers[layer.name].blobs]
    return missing, len(learned)


def check_net_files(deploy: str | os.PathLike, caffemodel: str | os.PathLike) -> None:
    """Everything pycaffe would CHECK (and abort on) when building `caffe.Net(deploy, TEST, weights=caffemodel)`:
    both files parse with the project's schema, the caffemodel has weights for every learned layer (else
    Caffe would run those layers on random filler values), and Caffe itself builds the net and copies the
    weights in a throw-away child process. UserError naming the file and the fix otherwise."""
    missing, n = unfilled_layers(deploy, caffemodel)
    if missing:
        some = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise UserError(f"{caffemodel}: no weights for {len(missing)} of the {n} learned layers of {deploy} ({some}); "
                        "Caffe would leave them at random initial values: pass the caffemodel trained with this "
                        "deploy net")
    code = ("import sys; from fcnkit.caffenet.pycaffe import load_caffe; c = load_caffe(); "
            "c.Net(sys.argv[1], c.TEST, weights=sys.argv[2])")
    env = dict(os.environ, GLOG_minloglevel="2", GLOG_logtostderr="1")
    r = subprocess.run([sys.executable, "-c", code, str(deploy), str(caffemodel)], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise UserError(f"Caffe cannot build {deploy} with {caffemodel} ({abort_reason(r.stderr, r.returncode)}); "
                        "fix the prototxt, or pass the caffemodel trained with it")
