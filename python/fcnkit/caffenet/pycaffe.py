"""Import pycaffe once, quietly, with a clear message when `make setup` has not been run."""

from __future__ import annotations

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
        info = build_info()
        if info is not None and not info.get("gpu"):  # set_device would abort the process
            raise UserError(f"GPU {gpu}: this Caffe is a CPU-only build ({info.get('key')}); run on the CPU, or in "
                            "the CUDA container (Dockerfile.caffe)")
        _caffe.set_device(gpu)
        _caffe.set_mode_gpu()
    return _caffe


def build_info() -> dict | None:
    """BUILD_INFO.json of the Caffe build pycaffe comes from (tools/build_caffe.py writes it), if any."""
    caffe = load_caffe()
    path = Path(caffe.__file__).resolve().parents[2] / "BUILD_INFO.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
