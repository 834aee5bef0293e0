"""The paper's full-size stage chain on real Caffe (CPU): VGG-16 -> 32s -> 16s -> 8s -> composite -> fine-tune.

Each stage runs 2 iterations of its committed solver on small LMDBs (32x32 images, batch 15), and the
hand-off is checked before training: shared layers equal the source, new skips are zero, deconvolutions
bilinear. VGG-16 is a randomly initialised stand-in with the Model Zoo layer names and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, make_blob_images
from fcnkit.caffe.caffe_engine import prepare_solver
from fcnkit.caffe.solve import train
from fcnkit.caffe.surgery import bilinear_kernel
from fcnkit.config.stages import STAGES
from fcnkit.io.lmdb_io import LMDBWriter, encode_datum
from fcnkit.models.fcn.vgg16 import VGG_DEPLOY, VGG_MODEL
from fcnkit.models.registry import latest_snapshot

pytestmark = [pytest.mark.caffe, pytest.mark.slow]


SKIPS = {"fcn32s": [], "fcn16s": ["score_pool4"], "fcn8s": ["score_pool3"]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, caffe, vgg16_standin):
    root = tmp_path_factory.mktemp("chain")
    for d in ("prototxt", "solvers"):
        (root / d).symlink_to(ROOT / d)
    for data, seed in (("white", 0), ("composite", 1)):
        for split in ("train", "val"):
            images, labels = make_blob_images(15, 32, seed)
            for kind, arrays in (("image", images), ("label", labels)):
                with LMDBWriter(root / "data" / data / f"{split}_{kind}_lmdb") as w:
                    for i, a in enumerate(arrays):
                        w.put(f"{i:08d}", encode_datum(a))
    (root / VGG_MODEL.parent).mkdir(parents=True)
    (root / VGG_DEPLOY).symlink_to(vgg16_standin[0])
    (root / VGG_MODEL).symlink_to(vgg16_standin[1])
    return root


def assert_bilinear(net, name):
    w = net.params[name][0].data
    k = bilinear_kernel(w.shape[-1])
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            np.testing.assert_array_equal(w[i, j], k if i == j else 0)


def test_stage_chain_hand_off_and_two_iterations(caffe, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    source = caffe.Net(str(VGG_DEPLOY), str(VGG_MODEL), caffe.TEST)
    logs = []
    for st in STAGES:
        solver, sp, init = prepare_solver(f"solvers/{st.name}.prototxt", max_iter=2, log=logs.append)
        net = solver.net
        assert init == ("vgg16" if st.name == "fcn32s" else "snapshot"), st.name
        # shared layers equal the source (fc6/fc7 reshaped from VGG's InnerProduct)
        shared = [k for k in source.params if k in net.params]
        assert len(shared) >= 15, (st.name, shared)
        for k in shared:
            for a, b in zip(source.params[k], net.params[k], strict=True):
                np.testing.assert_array_equal(a.data.ravel(), b.data.ravel(), err_msg=f"{st.name}:{k}")
        for k in SKIPS.get(st.name, []) + (["score_fr"] if st.name == "fcn32s" else []):
            assert not net.params[k][0].data.any(), f"{st.name}: new layer {k} must start at zero"
        for k in [n for n, lay in zip(net._layer_names, net.layers, strict=True) if lay.type == "Deconvolution"]:
            assert_bilinear(net, k)
        r = train(solver, sp, st.name, val_iter=1, log=logs.append)
        # validation scored the trained weights, not the val net's own initial ones
        np.testing.assert_array_equal(solver.test_nets[0].params["score_fr"][0].data, net.params["score_fr"][0].data)
        assert r["iter"] == 2 and np.isfinite(r["loss"]) and 0 <= r["val"]["pixel_acc"] <= 1
        snap = latest_snapshot(workdir / sp.snapshot_prefix)
        assert snap is not None and snap.name == f"{st.name}_iter_2.caffemodel"
        del solver, net
        source = caffe.Net(f"prototxt/{st.net_dir}/deploy.prototxt", str(snap), caffe.TEST)
    assert any("reshaped" in line for line in logs)
