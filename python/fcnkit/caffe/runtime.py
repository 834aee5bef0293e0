"""Import pycaffe once, quietly, with a clear message when `make setup` has not been run."""

from __future__ import annotations

import os

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
            import caffe  # deferred: slow, and optional for some tools
        except ImportError as exc:
            raise UserError(f"pycaffe is not importable ({exc}); run `make setup` and use .venv/bin/python") from exc
        _caffe = caffe
    if gpu is None:
        _caffe.set_mode_cpu()
    else:
        _caffe.set_device(gpu)
        _caffe.set_mode_gpu()
    return _caffe


def caffe_pb2():
    """Caffe's protobuf schema module (from the pycaffe build)."""
    load_caffe()
    from caffe.proto import caffe_pb2 as pb

    return pb
