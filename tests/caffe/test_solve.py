"""The `solve` driver: validates before Caffe can abort, runs real Caffe, snapshots."""

from __future__ import annotations

import os
import signal
import subprocess

import conftest
import pytest
from conftest import VENV_BIN, sigint_default, tiny_seg_net

pytestmark = pytest.mark.caffe


def run_solve(*args, cwd):
    return subprocess.run([str(VENV_BIN / "solve"), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def one_error_line(r) -> str:
    return conftest.one_error_line(r, "solve")


def test_missing_solver_file(tmp_path):
    assert "nope.prototxt: no such file" in one_error_line(run_solve("nope.prototxt", cwd=tmp_path))


def test_unparsable_solver_names_line_and_column(tmp_path):
    (tmp_path / "s.prototxt").write_text('net: "x.prototxt"\nbase_lr: 1e-8\nmomentum 0.99\n')
    msg = one_error_line(run_solve("s.prototxt", cwd=tmp_path))
    assert "s.prototxt:3:" in msg


def test_missing_net_file(tmp_path):
    (tmp_path / "s.prototxt").write_text('net: "missing_net.prototxt"\nbase_lr: 1e-8\nlr_policy: "fixed"\n')
    assert "missing_net.prototxt does not exist" in one_error_line(run_solve("s.prototxt", cwd=tmp_path))


def test_missing_lr_policy_is_caught_before_caffe_aborts(tmp_path):
    (tmp_path / "s.prototxt").write_text('net: "x.prototxt"\nbase_lr: 1e-8\n')
    assert "lr_policy '' is not one Caffe knows" in one_error_line(run_solve("s.prototxt", cwd=tmp_path))


def test_missing_weights(tmp_path, caffe, blob_lmdbs):
    (tmp_path / "net.prototxt").write_text(str(tiny_seg_net(caffe, *blob_lmdbs[:2])))
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 1e-8\nlr_policy: "fixed"\nmax_iter: 2\n')
    msg = one_error_line(run_solve("s.prototxt", "--weights", "w.caffemodel", cwd=tmp_path))
    assert "--weights w.caffemodel: no such file" in msg


def test_weights_of_another_shape_are_refused_before_caffe_aborts(tmp_path, caffe, blob_lmdbs):
    proto = str(tiny_seg_net(caffe, *blob_lmdbs[:2]))
    (tmp_path / "other.prototxt").write_text(proto)
    caffe.Net(str(tmp_path / "other.prototxt"), caffe.TEST).save(str(tmp_path / "other.caffemodel"))
    assert "num_output: 8" in proto
    (tmp_path / "net.prototxt").write_text(proto.replace("num_output: 8", "num_output: 6"))
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 1e-8\nlr_policy: "fixed"\nmax_iter: 2\n')
    msg = one_error_line(run_solve("s.prototxt", "--weights", "other.caffemodel", cwd=tmp_path))
    assert "layer conv1 blob 0 has shape (8, 3, 3, 3), the net wants (6, 3, 3, 3)" in msg


def test_real_run_caps_iterations_and_snapshots(tmp_path, caffe, blob_lmdbs):
    (tmp_path / "net.prototxt").write_text(str(tiny_seg_net(caffe, *blob_lmdbs[:2])))
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 1e-5\nlr_policy: "fixed"\n'
                                         'momentum: 0.9\nmax_iter: 1000\ndisplay: 1\n'
                                         'snapshot_prefix: "snaps/tiny"\n')
    r = run_solve("s.prototxt", "--max-iter", 3, "--cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "iter 3 loss" in r.stdout and "done: 3 iterations" in r.stdout
    assert (tmp_path / "snaps" / "tiny_iter_3.caffemodel").stat().st_size > 0
    assert (tmp_path / "snaps" / "tiny_iter_3.solverstate").exists()
    # resume continues from iteration 3 to 5
    r = run_solve("s.prototxt", "--max-iter", 5, "--resume", "snaps/tiny_iter_3.solverstate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "done: 5 iterations" in r.stdout


def test_ctrl_c_snapshots_before_exiting(tmp_path, caffe, blob_lmdbs):
    (tmp_path / "net.prototxt").write_text(str(tiny_seg_net(caffe, *blob_lmdbs[:2])))
    (tmp_path / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 1e-5\nlr_policy: "fixed"\n'
                                         'max_iter: 1000000\ndisplay: 1\n'
                                         'snapshot_prefix: "snaps/run"\n')
    proc = subprocess.Popen([str(VENV_BIN / "solve"), "s.prototxt"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    for line in proc.stdout:
        if line.startswith("iter 3 "):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "snapshotting before exit" in out and "interrupted" in err
    snaps = list((tmp_path / "snaps").glob("run_iter_*.caffemodel"))
    assert len(snaps) == 1 and int(snaps[0].stem.split("_")[-1]) >= 3
    assert snaps[0].with_suffix(".solverstate").exists()


def test_deferred_signals_holds_ctrl_c_and_keeps_an_inherited_ignore():
    """Inside the block Ctrl-C is held and raised at its end; a process started with SIGINT ignored
    (`nohup`, a script's `cmd &`) keeps ignoring it, as Python and other Unix programs do."""
    from fcnkit.caffe.loop import deferred_signals

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive run
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                reached = True  # the block was not cut short
        assert reached and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
