"""Data preparation, evaluation and plots under faults: an empty split, truncated and empty LMDBs, outputs
that cannot be written (checked before the work), full and read-only disks, SIGTERM. Real LMDBs, real
mounts, real processes; each promise: exit 2 with one line, or exit 143 after cleaning up, and nothing
half-written under a final name."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import VENV_BIN, make_blob_images, one_error_line, run_cli, write_lmdb_pair
from fcnkit.prep.sample import render_sneaker
from PIL import Image


@pytest.fixture
def pairs(tmp_path):
    """`prep masks` output from real drawn sneakers on white: 6 image/mask pairs."""
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(6):
        Image.fromarray(render_sneaker(7, i, 96)[0]).save(src / f"s{i}.png")
    out = tmp_path / "pairs"
    r = run_cli("prep", "masks", src, out, "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    return out


def lmdb_set(root, n=6, size=24):
    images, labels = make_blob_images(n, size)
    for split in ("train", "val"):
        write_lmdb_pair(root, images, labels, prefix=f"{split}_")
    return root


def test_evaluate_refuses_empty_and_truncated_lmdbs(tmp_path, threshold_model):
    empty = tmp_path / "empty"
    write_lmdb_pair(empty, np.zeros((0, 3, 8, 8), np.uint8), np.zeros((0, 1, 8, 8), np.uint8), prefix="val_")
    msg = one_error_line(run_cli("evaluate", empty, "--model", threshold_model), "evaluate")
    assert "holds no records" in msg  # no NaN table with exit 0
    cut = lmdb_set(tmp_path / "cut", size=64)
    data = cut / "val_image_lmdb" / "data.mdb"
    os.truncate(data, data.stat().st_size // 3)
    msg = one_error_line(run_cli("evaluate", cut, "--model", threshold_model), "evaluate")
    assert "truncated" in msg and str(data) in msg  # not a SIGBUS


def test_outputs_are_checked_before_the_work(tmp_path, tmpfs):
    data = lmdb_set(tmp_path / "d")
    ro = tmpfs(readonly=True)
    # the model does not exist either: the unwritable --json must be found first, before anything runs
    msg = one_error_line(run_cli("evaluate", data, "--model", tmp_path / "no-model", "--json", ro / "r.json"),
                         "evaluate")
    assert "--json" in msg and "Read-only file system" in msg
    (tmp_path / "file").write_text("x")
    msg = one_error_line(run_cli("evaluate", data, "--backend", "none", "--baseline", "--report",
                                 tmp_path / "file"), "evaluate")
    assert "--report" in msg and "not a folder" in msg
    log = tmp_path / "s.log"
    log.write_text("iter 1 loss 2.0 lr 0.1\niter 2 loss 1.0 lr 0.1\n")
    msg = one_error_line(run_cli("plot-training", log, "-o", tmp_path / "file" / "curves"), "plot_training")
    assert "-o" in msg


def test_evaluate_on_cuda_without_cuda_is_one_line(tmp_path, threshold_model):
    data = lmdb_set(tmp_path / "d")
    msg = one_error_line(run_cli("evaluate", data, "--model", threshold_model, "--backend", "torch",
                                 "--device", "cuda"), "evaluate")
    assert "--device" in msg and "'cuda'" in msg and "no usable CUDA" in msg


def test_prep_lmdb_never_writes_an_empty_split(tmp_path, pairs):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(next((pairs / "masks").glob("*.png")))  # wrong size
    r = run_cli("prep", "lmdb", pairs, "--out", tmp_path / "lmdb", "--val-fraction", "0.17", "--quiet",
                "--seed", "0")
    # whichever pair was lost, a success means both splits have records; otherwise one line, nothing written
    if r.returncode == 0:
        ok = run_cli("prep", "lmdb", "--verify", "--out", tmp_path / "lmdb", "--quiet")
        assert ok.returncode == 0 and "val 0" not in ok.stdout
    else:
        assert "split would be empty" in one_error_line(r, "prep")
        assert not (tmp_path / "lmdb" / "val_image_lmdb").exists()


def test_full_and_read_only_disks_for_prep(tmp_path, pairs, tmpfs):
    full = tmpfs(size="64k")
    msg = one_error_line(run_cli("prep", "lmdb", pairs, "--out", full / "lmdb", "--size", "96", "--quiet"),
                         "prep")
    assert "No space left on device" in msg or "the disk may be full" in msg  # LMDB reports ENOSPC as EIO
    assert not (full / "lmdb" / "train_image_lmdb").exists()
    assert not [p for p in (full / "lmdb").iterdir() if p.name.startswith(".lmdb-tmp-")]
    ro = tmpfs(readonly=True)
    msg = one_error_line(run_cli("prep", "masks", tmp_path / "photos", ro / "m", "--quiet"), "prep")
    assert "Read-only file system" in msg


def test_sigterm_during_prep_leaves_nothing_and_exits_143(tmp_path, pairs):
    from fcnkit.prep import common

    one = common.pairs_from_manifest(pairs)[0]
    many = tmp_path / "many"
    many.mkdir()
    common.write_manifest(many, [{"image": one.image, "mask": one.mask, "status": "ok", "name": f"{i}"}
                                 for i in range(3000)])
    out = tmp_path / "out"
    proc = subprocess.Popen([str(VENV_BIN / "prep"), "lmdb", str(many), "--out", str(out), "--workers", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out.exists() and any(p.name.startswith(".lmdb-tmp-") for p in out.iterdir())):
        assert proc.poll() is None and time.time() < deadline, "finished before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert list(out.iterdir()) == []
