"""Caffe -> PyTorch converter (caffe2torch): protobuf-only reading, per-layer registry, code generation,
and a per-blob parity check against real Caffe (`verify`, needs pycaffe).

Entry points: `fcnkit.convert.convert.convert(...)` and the `convert` CLI (`fcnkit.cli.convert:main`).
"""
