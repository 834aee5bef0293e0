"""Training-log parsing on real `caffe train` output and on our `solve` format, plus the PNG."""

from __future__ import annotations

import csv
import os
import subprocess

import pytest
from conftest import VENV_BIN
from fcnkit.cli.plot_training import main
from fcnkit.evaluation.curves import parse_log

NET = """
layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } transform_param { scale: 0.0039215686 }
        data_param { source: "train_image_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "label" type: "Data" top: "label" include { phase: TRAIN }
        data_param { source: "train_label_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" include { phase: TEST } transform_param { scale: 0.0039215686 }
        data_param { source: "val_image_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "label" type: "Data" top: "label" include { phase: TEST }
        data_param { source: "val_label_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 } }
layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy"
        include { phase: TEST } accuracy_param { ignore_label: 255 } }
"""
SOLVER = ('net: "net.prototxt"\ntest_iter: 2\ntest_interval: 3\nbase_lr: 0.01\nlr_policy: "step"\ngamma: 0.1\n'
          'stepsize: 4\nmomentum: 0.9\nmax_iter: 6\ndisplay: 2\nsolver_mode: CPU\n')


@pytest.fixture(scope="module")
def caffe_log(tmp_path_factory, blob_lmdbs):
    """Real glog text from the real `caffe train` binary (train and test read separate LMDB copies:
    Caffe's DataReader aborts when two nets share one source)."""
    import shutil

    d = tmp_path_factory.mktemp("caffe_train")
    for split in ("train", "val"):
        shutil.copytree(blob_lmdbs[0], d / f"{split}_image_lmdb")
        shutil.copytree(blob_lmdbs[1], d / f"{split}_label_lmdb")
    (d / "net.prototxt").write_text(NET)
    (d / "solver.prototxt").write_text(SOLVER)
    env = {**os.environ, "GLOG_logtostderr": "1", "GLOG_minloglevel": "0"}
    r = subprocess.run([str(VENV_BIN / "caffe"), "train", "--solver=solver.prototxt"], cwd=d, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    (d / "caffe.log").write_text(r.stderr)
    return d / "caffe.log"


def test_parse_real_caffe_glog(caffe_log):
    rows = {r["iter"]: r for r in parse_log(caffe_log.read_text())}
    assert [i for i in rows if "loss" in rows[i]] == [0, 2, 4, 6]  # display 2, plus the final loss
    assert rows[0]["lr"] == 0.01 and rows[4]["lr"] == pytest.approx(0.001)  # step at 4
    assert sorted(i for i in rows if "val_accuracy" in rows[i]) == [0, 3, 6]  # test_interval 3 and the end
    assert all(0 <= rows[i]["val_accuracy"] <= 1 for i in (0, 3, 6))
    assert all(rows[i]["loss"] > 0 for i in (0, 2, 4, 6))


def test_parse_our_solve_format():
    text = ("init: weights from x\niter 20 loss 5000 lr 1e-08\niter 40 loss 3623.41 lr 0.001\n"
            "val iter 40: pixel_acc 0.8672 mean_iou 0.6429 lr 0.001\ndone: 40 iterations\n")
    assert parse_log(text) == [{"iter": 20, "loss": 5000.0, "lr": 1e-8},
                               {"iter": 40, "loss": 3623.41, "lr": 0.001, "val_pixel_acc": 0.8672,
                                "val_mean_iou": 0.6429}]


def test_cli_writes_csv_and_png_for_several_stages(caffe_log, tmp_path):
    ours = tmp_path / "fcn32s.log"
    ours.write_text("iter 20 loss 5000 lr 1e-08\niter 40 loss 3000 lr 1e-10\n"
                    "val iter 40: pixel_acc 0.8 mean_iou 0.6 lr 1e-10\n")
    rc = main([str(ours), f"fcn16s={caffe_log}", "-o", str(tmp_path / "curves")])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert [r["stage"] for r in rows][:2] == ["fcn32s", "fcn32s"] and rows[-1]["stage"] == "fcn16s"
    assert rows[-1]["global_iter"] == "46"  # second stage starts where the first ended (40 + 6)
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "curves.png").shape[:2] == (900, 900)


def test_empty_log_is_a_user_error(tmp_path, capsys):
    (tmp_path / "x.log").write_text("nothing here\n")
    assert main([str(tmp_path / "x.log")]) == 2
    assert "no training lines" in capsys.readouterr().err
