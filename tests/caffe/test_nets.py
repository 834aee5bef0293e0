"""The FCN nets and solvers: generated from code, the reference architecture, any input size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from fcnkit.caffe.generate import all_files
from fcnkit.config.stages import PAPER_VARIANT, TINY_VARIANT
from fcnkit.io.caffe_schema import load_prototxt
from fcnkit.models.fcn import nets


def test_committed_prototxts_equal_the_generator_output():
    r = subprocess.run([sys.executable, "-m", "fcnkit", "generate", "--check"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    files = all_files()
    assert len(files) == 34
    for rel, text in files.items():
        assert (ROOT / rel).read_text() == text, rel


@pytest.mark.parametrize(("stride", "offsets"), [(32, {"score": [19]}),
                                                 (16, {"score_pool4c": [5], "score": [27]}),
                                                 (8, {"score_pool4c": [5], "score_pool3c": [9], "score": [31]})])
def test_crop_offsets_are_the_reference_ones(caffe, stride, offsets):
    net = load_prototxt(ROOT / f"prototxt/fcn{stride}s/deploy.prototxt")
    assert nets.crop_offsets(net) == offsets


def layers_by_name(caffe, rel):
    net = load_prototxt(ROOT / rel)
    return {lay.name: lay for lay in net.layer}


def test_reference_architecture_details(caffe):
    lay = layers_by_name(caffe, "prototxt/fcn8s/train.prototxt")
    assert lay["conv1_1"].convolution_param.pad == [100]
    assert lay["fc6"].convolution_param.kernel_size == [7] and lay["fc6"].convolution_param.num_output == 4096
    assert lay["fc7"].convolution_param.kernel_size == [1] and lay["fc7"].convolution_param.num_output == 4096
    assert lay["drop6"].dropout_param.dropout_ratio == pytest.approx(0.5)
    for name, k in (("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16)):
        cp = lay[name].convolution_param
        assert (cp.kernel_size[0], cp.stride[0], cp.bias_term) == (k, k // 2, False)
        assert [p.lr_mult for p in lay[name].param] == [0]
    for name in ("conv3_2", "fc7", "score_fr", "score_pool4", "score_pool3"):
        assert [(p.lr_mult, p.decay_mult) for p in lay[name].param] == [(1, 1), (2, 0)]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert lay[name].convolution_param.num_output == 2
        assert lay[name].convolution_param.weight_filler.type == "constant"
    loss = lay["loss"].loss_param
    assert (loss.normalize, loss.ignore_label) == (False, 255)
    assert lay["data"].data_param.batch_size == 15
    assert list(lay["data"].transform_param.mean_value) == pytest.approx([104.00699, 116.66877, 122.67892])
    assert not lay["label"].HasField("transform_param")  # mean subtraction on the image only
    tiny = layers_by_name(caffe, "prototxt/tiny/fcn8s/train.prototxt")
    assert tiny["conv1_1"].convolution_param.num_output == 4 and tiny["fc6"].convolution_param.num_output == 256


@pytest.mark.parametrize("size", [(224, 224), (375, 500), (97, 131), (33, 517), (1, 1), (517, 33)])
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_tiny_deploy_output_matches_any_input_size(caffe, stride, size):
    net = caffe.Net(str(ROOT / f"prototxt/tiny/fcn{stride}s/deploy.prototxt"), caffe.TEST)
    net.blobs["data"].reshape(1, 3, *size)
    net.reshape()
    net.forward()
    assert net.blobs["score"].data.shape == (1, 2, *size)


@pytest.mark.parametrize("stride", [32, 8])
def test_full_size_deploy_output_matches_input(caffe, stride):
    net = caffe.Net(str(ROOT / f"prototxt/fcn{stride}s/deploy.prototxt"), caffe.TEST)
    net.blobs["data"].reshape(1, 3, 97, 131)
    net.reshape()
    net.forward()
    assert net.blobs["score"].data.shape == (1, 2, 97, 131)


def test_solvers_carry_the_papers_numbers():
    expect = {"fcn32s": (1e-8, 50000, "step"), "fcn16s": (1e-10, 20000, "fixed"), "fcn8s": (1e-10, 20000, "fixed"),
              "fcn8s_composite": (1e-10, 10000, "fixed"), "fcn8s_finetune": (1e-10, 20000, "fixed")}
    for name, (lr, iters, policy) in expect.items():
        s = load_prototxt(ROOT / f"solvers/{name}.prototxt", "solver", "SolverParameter")
        # float fields are float32 in caffe.proto: compare to 1e-6 relative
        assert s.base_lr == pytest.approx(lr, rel=1e-6) and s.momentum == pytest.approx(0.99, rel=1e-6)
        assert (s.max_iter, s.lr_policy) == (iters, policy)
        assert s.snapshot_prefix == f"weights/snapshots/{name}"
    s32 = load_prototxt(ROOT / "solvers/fcn32s.prototxt", "solver", "SolverParameter")
    assert (s32.stepsize, s32.gamma) == (20000, pytest.approx(0.01))  # 1e-8 -> 1e-10 after 20 000
    assert "composite" in load_prototxt(ROOT / "solvers/fcn8s_finetune.prototxt", "solver", "SolverParameter").net
    assert PAPER_VARIANT.width == 1 and TINY_VARIANT.width == 1 / 16


def test_paired_mirror_keeps_image_and_label_aligned(caffe, blob_lmdbs, tmp_path):
    image_lmdb, label_lmdb, images, labels = blob_lmdbs
    spec = nets.DataSpec(str(image_lmdb).removesuffix("/image_lmdb") + "/x", batch_size=8, mirror=True)
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data_raw = L.Data(source=str(image_lmdb), backend=P.Data.LMDB, batch_size=8)
    n.label_raw = L.Data(source=str(label_lmdb), backend=P.Data.LMDB, batch_size=8)
    n.data, n.label = L.Python(n.data_raw, n.label_raw, module="fcnkit.caffe.pylayers", layer="PairedMirror",
                               ntop=2, param_str="7")
    path = tmp_path / "mirror.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TRAIN)
    flipped = 0
    for _ in range(4):
        net.forward()
        for i in range(8):
            img, lab = net.blobs["data"].data[i], net.blobs["label"].data[i]
            if np.array_equal(img, images[i]):
                np.testing.assert_array_equal(lab, labels[i])
            else:
                np.testing.assert_array_equal(img, images[i][..., ::-1])
                np.testing.assert_array_equal(lab, labels[i][..., ::-1])
                flipped += 1
    assert 4 < flipped < 28  # both outcomes happen
    assert spec.mirror
