"""What Caffe would abort (134) or segfault (139) on is one line and exit 2 instead, checked before pycaffe
sees it: the Caffe backend of remove-bg / evaluate (a garbage deploy prototxt, a zip as caffemodel, a 0-byte
caffemodel, the weights of another net, weights whose shapes do not fit), and `solve` on label values the net
has no class for or image/label LMDBs whose keys differ. Real Caffe, real LMDBs, real processes."""

from __future__ import annotations

import shutil
import zipfile

import pytest
from conftest import make_blob_images, one_error_line, run_cli, write_lmdb_pair
from fcnkit.io.lmdb_io import LMDBWriter, encode_datum
from test_faults_convert import photos  # noqa: F401 - the fixture, shared
from test_faults_solve import setup_run, solve

pytestmark = pytest.mark.caffe


def _cases(caffe, threshold_model, tmp_path):
    """(deploy, caffemodel, words the line must hold) for every broken pair."""
    src = threshold_model.parent
    deploy, weights = src / "deploy.prototxt", src / "net.caffemodel"
    garbage = tmp_path / "garbage.prototxt"
    garbage.write_bytes(b"layer { name: \"x\" type: \"Convolution\" convolution_param { num_output: -3 ]]]\n")
    zipped = tmp_path / "weights.caffemodel"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("net.caffemodel", weights.read_bytes())
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    # another net: same input, layers named differently (an FCN-32s caffemodel for an FCN-8s deploy)
    other_deploy = tmp_path / "other.prototxt"
    other_deploy.write_text(deploy.read_text().replace('"score"', '"score_fr"'))
    # weights of the right names but other shapes: Caffe CHECKs "Cannot copy param ... shape mismatch"
    wide = tmp_path / "wide.prototxt"
    wide.write_text(deploy.read_text().replace("num_output: 2", "num_output: 5", 1))  # conv1: 5 filters, not 2
    assert wide.read_text() != deploy.read_text()
    return [(garbage, weights, str(garbage)), (deploy, zipped, str(zipped)), (deploy, empty, "empty"),
            (other_deploy, weights, "no weights for 1 of the 2 learned layers"),
            (wide, weights, "Caffe cannot build")]


def test_caffe_backend_preflight_is_one_line(caffe, threshold_model, tmp_path, photos):  # noqa: F811
    for deploy, weights, words in _cases(caffe, threshold_model, tmp_path):
        model = f"{deploy}:{weights}"
        r = run_cli("remove-bg", photos / "a.png", "-o", tmp_path / "out", "--model", model, "--backend", "caffe")
        assert words in one_error_line(r, "remove-bg"), (deploy.name, weights.name)
        assert not (tmp_path / "out" / "a_mask.png").exists()
        r = run_cli("evaluate", photos, "--model", model, "--backend", "caffe")
        assert words in one_error_line(r, "evaluate"), (deploy.name, weights.name)
    # the real pair still works
    src = threshold_model.parent
    r = run_cli("remove-bg", photos / "a.png", "-o", tmp_path / "out", "--backend", "caffe", "--model",
                f"{src / 'deploy.prototxt'}:{src / 'net.caffemodel'}")
    assert r.returncode == 0, r.stderr


def _relabel(tmp_path, value):
    """Rewrite the run's label LMDB with one pixel of each label set to `value`."""
    images, labels = make_blob_images(8, 24)
    labels = labels.copy()
    labels[:, 0, 0, 0] = value
    write_lmdb_pair(tmp_path / "b", images, labels)


@pytest.mark.parametrize("value", [2, 7, 254])
def test_label_values_outside_the_classes_are_refused(tmp_path, caffe, value):
    setup_run(tmp_path, caffe)
    _relabel(tmp_path, value)
    msg = one_error_line(solve(tmp_path), "solve")
    assert f"label value(s) {value}" in msg and "2 classes" in msg and "ignore_label 255" in msg
    assert not list((tmp_path).rglob("*.caffemodel"))


def test_ignore_label_is_a_valid_label(tmp_path, caffe):
    setup_run(tmp_path, caffe, iters=2)
    _relabel(tmp_path, 255)
    r = solve(tmp_path)
    assert r.returncode == 0, r.stderr


def test_image_and_label_lmdbs_whose_keys_differ(tmp_path, caffe):
    setup_run(tmp_path, caffe)
    images, labels = make_blob_images(8, 24)
    lab = tmp_path / "b" / "label_lmdb"
    shutil.rmtree(lab)
    with LMDBWriter(lab) as w:
        for i, a in enumerate(labels):
            w.put(f"x{i:07d}", encode_datum(a))
    msg = one_error_line(solve(tmp_path), "solve")
    assert "keys differ" in msg and "'00000000'" in msg and "'x0000000'" in msg
