"""Run under one pycaffe build (PYTHONPATH picks it): the tiny FCN-8s forward and one SGD step, CPU mode.

    python pycaffe_probe.py DEPLOY.prototxt WORKDIR

Writes WORKDIR/numbers.npz (forward outputs, every blob's sum, the loss and every parameter after the step)
and prints one JSON line: where `caffe` was imported from and which shared libraries the process mapped.
Weights, input and labels come from fixed seeds, so two builds given the same net must agree. Needs only
numpy, protobuf and the pycaffe under test (not fcnkit), so that any build can run it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def mapped_libraries() -> list[str]:
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if ".so" in line and line.split()[-1].startswith("/")})


def seeded_params(net, seed: int) -> None:
    """He-scaled normal weights, small biases: activations stay finite through the whole net."""
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for i, blob in enumerate(blobs):
            shape = blob.data.shape
            std = np.sqrt(2.0 / max(1, int(np.prod(shape[1:])))) if i == 0 else 0.01
            blob.data[...] = rng.normal(0.0, std, shape)


def train_net(deploy_text: str, caffe_pb2, text_format, label_shape):
    """The deploy net plus a label input and an unnormalised SoftmaxWithLoss on its output (FCN's loss)."""
    net = caffe_pb2.NetParameter()
    text_format.Merge(deploy_text, net)
    output = net.layer[-1].top[0]
    label = net.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add(dim=list(label_shape))
    loss = net.layer.add(name="loss", type="SoftmaxWithLoss", bottom=[output, "label"], top=["loss"])
    loss.loss_param.ignore_label = 255
    loss.loss_param.normalize = False
    return net


def main(deploy: str, workdir: str) -> int:
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    caffe.set_mode_cpu()
    out = Path(workdir)
    numbers: dict[str, np.ndarray] = {}

    net = caffe.Net(deploy, caffe.TEST)
    seeded_params(net, seed=1)
    data = net.blobs["data"].data
    data[...] = np.random.default_rng(2).uniform(-120.0, 120.0, data.shape)
    result = net.forward()
    for name, value in result.items():
        numbers[f"forward/{name}"] = value.copy()
    for name, blob in net.blobs.items():
        numbers[f"blob_sum/{name}"] = np.array(blob.data.sum(dtype=np.float64))

    output = list(result)[0]
    n, _, h, w = net.blobs[output].data.shape
    solver_param = caffe_pb2.SolverParameter(
        net_param=train_net(Path(deploy).read_text(), caffe_pb2, text_format, (n, 1, h, w)),
        base_lr=1e-6, lr_policy="fixed", momentum=0.9, weight_decay=5e-4, max_iter=10, display=0,
        random_seed=3, snapshot_prefix=str(out / "snap"), solver_mode=caffe_pb2.SolverParameter.CPU)
    (out / "solver.prototxt").write_text(text_format.MessageToString(solver_param))
    solver = caffe.SGDSolver(str(out / "solver.prototxt"))
    seeded_params(solver.net, seed=1)
    rng = np.random.default_rng(4)
    solver.net.blobs["data"].data[...] = rng.uniform(-120.0, 120.0, solver.net.blobs["data"].data.shape)
    labels = rng.integers(0, 2, (n, 1, h, w)).astype(np.float32)
    labels[rng.random(labels.shape) < 0.1] = 255  # some ignored pixels, as in real masks
    solver.net.blobs["label"].data[...] = labels
    solver.step(1)
    numbers["step/loss"] = np.array(solver.net.blobs["loss"].data)
    for name, blobs in solver.net.params.items():
        for i, blob in enumerate(blobs):
            numbers[f"step/param/{name}/{i}"] = blob.data.copy()

    np.savez(out / "numbers.npz", **numbers)
    print(json.dumps({"caffe": caffe.__file__, "libraries": mapped_libraries(), "iter": solver.iter}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
