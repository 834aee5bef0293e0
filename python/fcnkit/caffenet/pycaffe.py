"""Import pycaffe once, quietly, with a clear message when `make setup` has not been run."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
from pathlib import Path

from fcnkit.errors import UserError

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
