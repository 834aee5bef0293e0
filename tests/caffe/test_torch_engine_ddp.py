"""`solve --engine torch` under torchrun (gloo on the CPU): Caffe's multi-GPU semantics, proved in real processes.

N ranks x batch B must train as one process with batch N x B: each rank reads its own records of the LMDB
(record i to rank i mod N), the gradients are averaged, rank 0 alone snapshots. Compared at 1e-5 relative
(the torch engine's parity tolerance), per parameter blob and per momentum history blob.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_blob_images, one_error_line, rel, run_cli, start_ranks, torchrun, write_lmdb_pair
from fcnkit.caffe.caffe_engine import CAFFE_LOSS, GLOG_FAILURE
from fcnkit.caffenet.pycaffe import build_info
from fcnkit.io.caffe_schema import read_caffemodel, read_solverstate

TOL = 1e-5
B = 2
ITERS = 6
SNAP = 3
# The paper's SGD solver (momentum 0.99, weight decay 5e-4, fixed rate), at a rate for this tiny net.
PAPER_SGD = 'type: "SGD"\nbase_lr: 1e-3\nlr_policy: "fixed"\nmomentum: 0.99\nweight_decay: 0.0005\n'

NET = """name: "tiny"
layer {{ name: "data" type: "Data" top: "data"
  data_param {{ source: "{root}/{prefix}image_lmdb" batch_size: {batch} backend: LMDB }}
  transform_param {{ scale: 0.00390625 mean_value: 60 }} }}
layer {{ name: "label" type: "Data" top: "label" data_param {{ source: "{root}/{prefix}label_lmdb" batch_size: {batch}
  backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 6 kernel_size: 3 pad: 1 weight_filler {{ type: "xavier" }}
  bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "score" type: "Convolution" bottom: "conv1" top: "score"
  convolution_param {{ num_output: 2 kernel_size: 1 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param {{ ignore_label: 255 normalization: {norm} }} }}
"""


def workspace(root: Path, *, batch: int, norm: str = "BATCH_SIZE", iter_size: int = 1, max_iter: int = ITERS,
              records: int = 2 * B * SNAP, test: str = "") -> Path:
    """root/{image,label}_lmdb (`records` 16x16 images), train.prototxt with `batch`, solver.prototxt
    (snapshots every SNAP iterations to root/snaps/run, fillers seeded)."""
    root.mkdir(parents=True, exist_ok=True)
    images, labels = make_blob_images(records, 16, seed=3)
    labels[:, :, :2] = 255  # ignored pixels: a per-batch normaliser must not count them
    write_lmdb_pair(root, images, labels)
    (root / "train.prototxt").write_text(NET.format(root=root, prefix="", batch=batch, norm=norm))
    if test:  # a test net on a val pair of its own
        write_lmdb_pair(root, images[:4], labels[:4], prefix="val_")
        (root / "test.prototxt").write_text(NET.format(root=root, prefix="val_", batch=2, norm=norm))
        test += f'test_net: "{root}/test.prototxt"\n'

    (root / "snaps").mkdir()
    (root / "solver.prototxt").write_text(
        f'net: "{root}/train.prototxt"\n{PAPER_SGD}iter_size: {iter_size}\nmax_iter: {max_iter}\ndisplay: 1\n'
        f'snapshot: {SNAP}\nsnapshot_prefix: "{root}/snaps/run"\nrandom_seed: 7\n{test}')
    return root


def snapshot(root: Path, it: int):
    prefix = root / "snaps" / f"run_iter_{it}"
    return read_caffemodel(f"{prefix}.caffemodel"), read_solverstate(f"{prefix}.solverstate")


def worst(a: Path, b: Path, it: int = ITERS) -> float:
    """The largest relative difference between two runs' snapshots at `it`: weights and momentum."""
    (ma, sa), (mb, sb) = snapshot(a, it), snapshot(b, it)
    assert sa.iter == sb.iter == it
    assert set(ma.layers) == set(mb.layers)
    errs = [rel(x.data, y.data) for name in mb.layers
            for x, y in zip(ma.layers[name].blobs, mb.layers[name].blobs, strict=True)]
    errs += [rel(x.data, y.data) for x, y in zip(sa.history, sb.history, strict=True)]
    assert len(sa.history) == len(sb.history) > 0
    return max(errs)


def solve(root: Path, *extra) -> subprocess.CompletedProcess:
    r = run_cli("solve", root / "solver.prototxt", "--engine", "torch", *extra, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(tmp_path):
    """torchrun --nproc_per_node 2 with batch B == one process with batch 2B, after 6 iterations of the
    paper's SGD solver (loss normalised per batch); then a 1-process snapshot resumed on 2 ranks (a change
    of rank count) lands on the same weights too."""
    test = f"test_iter: 2\ntest_interval: {SNAP}\n"  # the train net in TEST phase: rank 0 alone tests
    one = workspace(tmp_path / "one", batch=2 * B, test=test)
    two = workspace(tmp_path / "two", batch=B, test=test)
    solve(one)
    r = torchrun(2, "solve", two / "solver.prototxt", "--engine", "torch", cwd=two)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 ranks x batch 2 (torchrun)" in r.stdout
    for line in (f"iter {ITERS} loss", f"val iter {SNAP}: loss", f"val iter {SNAP}: pixel_acc", "done: "):
        assert r.stdout.count(line) == 1, (line, r.stdout)  # rank 0 alone logs, tests and validates
    err = worst(two, one)
    print(f"\n2 ranks x {B} vs 1 x {2 * B}: worst relative difference {err:.2e} (weights and momentum)")
    assert err <= TOL
    # rank 0 alone wrote snapshots: exactly the two the schedule asks for
    assert sorted(p.name for p in (two / "snaps").iterdir()) == sorted(
        f"run_iter_{i}.{ext}" for i in (SNAP, ITERS) for ext in ("caffemodel", "solverstate"))

    # --resume across a change of rank count: iteration SNAP of the 1-process run, continued on 2 ranks
    # (the LMDB holds SNAP batches of 2B, so the data stream restarts where the uninterrupted run's is).
    resumed = workspace(tmp_path / "resumed", batch=B)
    r = torchrun(2, "solve", resumed / "solver.prototxt", "--engine", "torch", "--resume",
                 one / "snaps" / f"run_iter_{SNAP}.solverstate", cwd=resumed)
    assert r.returncode == 0, r.stdout + r.stderr
    err = worst(resumed, one)
    print(f"1 rank -> resumed on 2 ranks: worst relative difference {err:.2e}")
    assert err <= TOL


def test_iter_size_and_sum_losses_follow_caffes_averaging(tmp_path):
    """Caffe averages the ranks' gradients, as iter_size averages its passes: with a summed loss
    (normalize: false, the FCN nets') N ranks x B equal one process of batch B with iter_size N; and
    iter_size keeps working on every rank (2 ranks x B x iter_size 2 == 1 x B x iter_size 4)."""
    one = workspace(tmp_path / "one", batch=B, norm="NONE", iter_size=4, records=4 * B * SNAP)
    two = workspace(tmp_path / "two", batch=B, norm="NONE", iter_size=2, records=4 * B * SNAP)
    solve(one)
    procs = start_ranks(2, "solve", two / "solver.prototxt", "--engine", "torch", cwd=two)
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    err = worst(two, one)
    print(f"\n2 ranks x {B} x iter_size 2 vs 1 x {B} x iter_size 4, summed loss: {err:.2e}")
    assert err <= TOL


def test_a_killed_rank_stops_the_job_with_one_line_and_the_last_snapshot_resumes(tmp_path):
    """SIGKILL one rank mid-run: the other exits non-zero with one `solve: error:` line naming the lost
    rank contact and the snapshot to resume from (no hang, no traceback); that snapshot resumes, on one
    process with batch 2B."""
    root = workspace(tmp_path / "run", batch=B, max_iter=100000)
    procs = start_ranks(2, "solve", root / "solver.prototxt", "--engine", "torch", cwd=root, timeout_s=30)
    first = root / "snaps" / f"run_iter_{SNAP}.solverstate"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert first.exists(), procs[0].communicate(timeout=5)
    procs[1].kill()
    out, err = procs[0].communicate(timeout=90)
    procs[1].communicate(timeout=10)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert procs[0].returncode not in (0, None), err
    assert len(lines) == 1 and lines[0].startswith("solve: error: rank 0 of 2: lost contact"), err
    assert "Traceback" not in err
    last = lines[0].rsplit("--resume ", 1)[1].strip()
    assert Path(last).is_file(), last
    it = int(Path(last).stem.rsplit("_", 1)[1])
    one = workspace(tmp_path / "one", batch=2 * B, max_iter=it + SNAP)
    r = solve(one, "--resume", last)
    assert f"resumed {last} at iteration {it}" in r.stdout
    assert np.isfinite(float(r.stdout.split("final loss ")[1].split(",")[0]))


@pytest.mark.parametrize(("args", "needle"), [
    (["--gpu", "0,1"], "--gpu 0,1: this Caffe is a CPU-only build"),
    (["--gpu", "0,1", "--engine", "torch"], "torchrun --nproc_per_node 2 -m fcnkit solve"),
])
def test_several_gpus_are_caffes_multi_gpu_solver_or_torchrun(tmp_path, caffe, args, needle):
    """`solve --gpu 0,1` is Caffe's own multi-GPU solver, which this CPU build of Caffe lacks: one line, exit 2,
    naming the CUDA container and torchrun; the torch engine takes several GPUs as torchrun ranks."""
    if (build_info() or {}).get("gpu"):
        pytest.skip("a CUDA build of Caffe: --gpu 0,1 runs")
    root = workspace(tmp_path, batch=B)
    r = run_cli("solve", root / "solver.prototxt", *args, cwd=root)
    assert needle in one_error_line(r, "solve")
    assert not any((root / "snaps").iterdir())


def test_caffes_multi_gpu_log_lines_are_read_for_the_loss():
    """What `solve --gpu 0,1` reads from `caffe train`: rc3's and 1.0's iteration lines, glog's failures."""
    rc3 = "I1203 08:00:01.5 4242 solver.cpp:228] Iteration 40, loss = 0.6931"
    v1 = "I1203 08:00:01.5 4242 solver.cpp:218] Iteration 60 (3.1 iter/s, 6.4s/20 iters), loss = 1.5e-05"
    assert [CAFFE_LOSS.search(x).groups() for x in (rc3, v1)] == [("40", "0.6931"), ("60", "1.5e-05")]
    assert GLOG_FAILURE.match("F1203 08:00:01.5 4242 parallel.cpp:50] Check failed: error == cudaSuccess")
    assert not GLOG_FAILURE.match(rc3)


@pytest.mark.parametrize(("env", "args", "needle"), [
    ({"WORLD_SIZE": "2", "RANK": "0"}, [], "could not join the process group"),
    # given one GPU of its own: where PyTorch has CUDA, the rank says to pass plain cuda; without CUDA the
    # device check answers first
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, ["--device", "cuda:1"],
     "pass --device cuda" if torch.cuda.is_available() else "this PyTorch has no usable CUDA device"),
])
def test_a_rank_that_cannot_start_says_why_in_one_line(tmp_path, env, args, needle):
    """A rank started without torchrun's rendezvous variables, or given one GPU of its own: one line, exit 2."""
    root = workspace(tmp_path, batch=B)
    clean = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    r = run_cli("solve", root / "solver.prototxt", "--engine", "torch", *args, cwd=root, env={**clean, **env})
    assert needle in one_error_line(r, "solve")
