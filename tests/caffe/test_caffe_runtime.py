"""Real Caffe answers: the binary, pycaffe, an LMDB-fed net with Python/Deconvolution/Crop layers, SGD."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import VENV_BIN, tiny_seg_net

pytestmark = pytest.mark.caffe


def test_caffe_binary_reports_version():
    r = subprocess.run([str(VENV_BIN / "caffe"), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "caffe version 1.0.0" in (r.stdout + r.stderr)


def test_pycaffe_imports_without_any_path_variables():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    code = "import caffe; caffe.set_mode_cpu(); print(caffe.__file__)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "fcnkit" in r.stdout  # the cached build, not some other caffe on the machine


@pytest.fixture
def net_file(tmp_path, caffe, blob_lmdbs):
    image_lmdb, label_lmdb, _, _ = blob_lmdbs
    path = tmp_path / "train.prototxt"
    path.write_text(str(tiny_seg_net(caffe, image_lmdb, label_lmdb)))
    return path


def test_lmdb_python_deconv_crop_forward_backward(caffe, net_file, blob_lmdbs):
    _, _, images, labels = blob_lmdbs
    net = caffe.Net(str(net_file), caffe.TRAIN)
    net.forward()
    # The Data layers read exactly the bytes written, in key order, image and label in step.
    np.testing.assert_allclose(net.blobs["data"].data, images[:4] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:4])
    # Deconvolution doubled 12x12 back to 26x26, Crop cut it to the input's 24x24.
    assert net.blobs["up"].data.shape == (4, 2, 26, 26)
    assert net.blobs["upc"].data.shape == (4, 2, 24, 24)
    # One bilinear kernel per channel (group 2): outer product of [1, 3, 3, 1] / 4.
    w = net.params["up"][0].data
    assert w.shape == (2, 1, 4, 4)
    k1 = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(w[0, 0], np.outer(k1, k1))
    np.testing.assert_allclose(w[1, 0], np.outer(k1, k1))
    # The Python layer computed real pixel accuracy.
    pred = net.blobs["upc"].data.argmax(1)
    assert net.blobs["acc"].data[0] == pytest.approx((pred == labels[:4, 0]).mean())
    # Unnormalised loss: summed over pixels, divided by batch, so it is large (~ 24*24*ln2).
    assert 100 < float(net.blobs["loss"].data) < 2000
    net.backward()
    g = net.params["conv1"][0].diff
    assert np.isfinite(g).all() and np.abs(g).max() > 0
    assert not net.params["up"][0].diff.any()  # lr_mult 0: Caffe does not even compute this gradient


def test_sgd_solver_steps_lower_the_loss(caffe, net_file, tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{net_file}"\nbase_lr: 1e-4\nlr_policy: "fixed"\nmomentum: 0.9\n'
                      'weight_decay: 0.0005\nmax_iter: 60\ndisplay: 0\nsnapshot: 0\n'
                      f'snapshot_prefix: "{tmp_path}/tiny"\nrandom_seed: 1\n')
    s = caffe.SGDSolver(str(solver))
    deconv_before = s.net.params["up"][0].data.copy()
    s.step(1)
    first = float(s.net.blobs["loss"].data)
    losses = []
    for _ in range(40):
        s.step(1)
        losses.append(float(s.net.blobs["loss"].data))
    assert s.iter == 41
    assert np.mean(losses[-4:]) < 0.7 * first, (first, losses)
    np.testing.assert_array_equal(s.net.params["up"][0].data, deconv_before)  # lr_mult 0 respected
