"""`solve` under bad input and faults: everything Caffe would abort on is one line and exit 2 instead;
SIGTERM snapshots like Ctrl-C; a snapshot cut short is never resumed from. Real Caffe, real LMDBs, real
signals. (Before these checks each case below ended in a Caffe abort: exit 134 and a glog stack trace.)"""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest
from conftest import VENV_BIN, make_blob_images, one_error_line, run_cli, tiny_seg_net, write_lmdb_pair
from fcnkit.io.caffe_schema import proto_is_complete

pytestmark = pytest.mark.caffe

SOLVER = 'net: "net.prototxt"\nbase_lr: {lr}\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: {it}\ndisplay: 1\n' \
         'snapshot_prefix: "snaps/run"\n'


def setup_run(root, caffe, *, n_image=8, n_label=8, lr="1e-5", iters=4, net_edit=None, size=24):
    """A tiny segmentation net on its own LMDB pair under `root`, and its solver (s.prototxt)."""
    images, labels = make_blob_images(max(n_image, n_label), size)
    img_lmdb, _ = write_lmdb_pair(root / "a", images[:n_image], labels[:n_image])
    _, lab_lmdb = write_lmdb_pair(root / "b", images[:n_label], labels[:n_label])
    proto = str(tiny_seg_net(caffe, img_lmdb, lab_lmdb))
    if net_edit:
        proto = net_edit(proto)
    (root / "net.prototxt").write_text(proto)
    (root / "s.prototxt").write_text(SOLVER.format(lr=lr, it=iters))
    return root / "s.prototxt"


def solve(root, *args, timeout=300):
    return run_cli("solve", "s.prototxt", *args, cwd=root, timeout=timeout)


@pytest.mark.parametrize(("case", "expect"), [
    (dict(n_image=0, n_label=0), "the LMDB is empty"),
    (dict(n_image=8, n_label=6), "read LMDBs of different lengths"),
    (dict(lr="-0.01"), "base_lr -0.01 must be a positive number"),
    (dict(net_edit=lambda p: p.replace('type: "ReLU"', 'type: "ReLUX"')), "type 'ReLUX', which this Caffe does"),
    (dict(net_edit=lambda p: p.replace('bottom: "pool1"', 'bottom: "pool9"')), "bottom 'pool9', which no earlier"),
    (dict(net_edit=lambda p: p.replace("kernel_size: 3", "kernel_size: 0")), "kernel_size must be positive"),
])
def test_bad_nets_and_data_are_one_line_not_an_abort(tmp_path, caffe, case, expect):
    setup_run(tmp_path, caffe, **case)
    assert expect in one_error_line(solve(tmp_path), "solve")
    assert not (tmp_path / "snaps").exists() or not list((tmp_path / "snaps").glob("*.caffemodel"))


def test_truncated_lmdb_is_named_instead_of_a_sigbus(tmp_path, caffe):
    setup_run(tmp_path, caffe, size=64)
    data = tmp_path / "a" / "image_lmdb" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    msg = one_error_line(solve(tmp_path), "solve")
    assert str(data) in msg and "truncated" in msg and "prep lmdb" in msg


def test_gpu_on_a_cpu_build_and_unwritable_snapshots(tmp_path, caffe, tmpfs):
    setup_run(tmp_path, caffe)
    assert "CPU-only build" in one_error_line(solve(tmp_path, "--gpu", 0), "solve")
    ro = tmpfs(readonly=True)
    (tmp_path / "s.prototxt").write_text(SOLVER.format(lr="1e-5", it=2).replace("snaps/run", f"{ro}/run"))
    assert "is not writable" in one_error_line(solve(tmp_path), "solve")


def test_huge_learning_rate_stops_cleanly_before_caffe_corrupts_memory(tmp_path, caffe):
    setup_run(tmp_path, caffe, lr="1e+30", iters=50)
    r = solve(tmp_path)
    msg = one_error_line(r, "solve")
    assert "lower base_lr" in msg and ("weights became NaN/inf" in msg or "loss became" in msg)
    assert "double free" not in r.stderr and "Aborted" not in r.stderr


def test_nan_in_the_starting_weights_is_named_as_such(tmp_path, caffe):
    setup_run(tmp_path, caffe)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.params["conv1"][0].data[0, 0, 0, 0] = np.nan
    net.save(str(tmp_path / "nan.caffemodel"))
    msg = one_error_line(solve(tmp_path, "--weights", "nan.caffemodel"), "solve")
    assert "conv1 (1 values)" in msg and "not the cause" in msg  # not "lower base_lr"


def test_resume_refuses_truncated_and_foreign_solverstates(tmp_path, caffe):
    setup_run(tmp_path, caffe, iters=2)
    assert solve(tmp_path).returncode == 0
    state = tmp_path / "snaps" / "run_iter_2.solverstate"
    assert proto_is_complete(state)
    # a state cut short (what SIGKILL during Caffe's write leaves)
    cut = tmp_path / "snaps" / "cut.solverstate"
    cut.write_bytes(state.read_bytes()[:-7])
    assert "truncated or corrupt" in one_error_line(solve(tmp_path, "--resume", cut), "solve")
    # the state of another net (more filters: other history sizes)
    other = tmp_path / "other"
    other.mkdir()
    setup_run(other, caffe, iters=2, net_edit=lambda p: p.replace("num_output: 8", "num_output: 5"))
    assert solve(other).returncode == 0
    msg = one_error_line(solve(other, "--resume", "../snaps/run_iter_2.solverstate"), "solve")
    assert "history blob" in msg or "has shape" in msg or "weights" in msg


def test_sigterm_snapshots_then_exits_and_the_run_resumes(tmp_path, caffe):
    setup_run(tmp_path, caffe, iters=1_000_000)
    proc = subprocess.Popen([str(VENV_BIN / "solve"), "s.prototxt"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("iter 3 "):
            break
    proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "snapshotting before exit" in out and "interrupted (SIGTERM)" in err and "Traceback" not in err
    snaps = sorted((tmp_path / "snaps").glob("run_iter_*.caffemodel"))
    assert len(snaps) == 1 and proto_is_complete(snaps[0]) and proto_is_complete(snaps[0].with_suffix(".solverstate"))
    n = int(snaps[0].stem.split("_")[-1])
    r = solve(tmp_path, "--resume", snaps[0].with_suffix(".solverstate").relative_to(tmp_path), "--max-iter", n + 2)
    assert r.returncode == 0 and f"done: {n + 2} iterations" in r.stdout, r.stderr
