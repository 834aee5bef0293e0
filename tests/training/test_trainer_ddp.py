"""`fcnkit train` under torchrun (gloo on the CPU), in real processes: 2 ranks x batch B train as one process
with batch 2B (the seeded order split rank by rank, gradients averaged), rank 0 alone checkpoints, and a
checkpoint resumes with another number of ranks. A family without BatchNorm (whose batch statistics are
each rank's own, as in Caffe and DDP), no ignored pixels (the loss is a mean over labelled pixels)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
from conftest import VENV_BIN, rel, start_ranks, torchrun, write_lmdb_dataset
from fcnkit import models
from fcnkit.data.splits import load_split
from fcnkit.training.distributed import Dist
from fcnkit.training.tasks import ImageTask
from safetensors.numpy import load_file

MODEL = "tiny/extractnet-simple"
B = 4
TOL = 1e-5


def train(nproc: int, data: Path, out: Path, batch: int, *extra) -> subprocess.CompletedProcess:
    args = ["train", MODEL, data, "--out", out, "--batch-size", batch, "--seed", 3, "--quiet", *extra]
    if nproc == 1:
        r = subprocess.run([str(VENV_BIN / "fcnkit"), *map(str, args)], capture_output=True, text=True, timeout=300,
                           env={"OMP_NUM_THREADS": "1", "PATH": str(VENV_BIN)})
    else:
        r = torchrun(nproc, *args, cwd=out.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def worst(a: Path, b: Path) -> float:
    wa, wb = load_file(a), load_file(b)
    assert set(wa) == set(wb) and wa
    return max(rel(wa[k], wb[k]) for k in wb)


def test_two_ranks_train_as_one_process_with_twice_the_batch_and_resume_on_one(tmp_path):
    data = write_lmdb_dataset(tmp_path / "d", n_train=16, n_val=4, size=32)
    one, two, mixed = (tmp_path / n / "m.safetensors" for n in ("one", "two", "mixed"))
    for p in (one, two, mixed):
        p.parent.mkdir()
    train(1, data, one, 2 * B, "--epochs", 2)
    r = train(2, data, two, B, "--epochs", 2)
    assert f"batch {B} x 2 ranks" in r.stdout and r.stdout.count("epoch 2/2 loss") == 1  # rank 0 logs
    err = worst(two, one)
    print(f"\n{MODEL}: 2 ranks x {B} vs 1 x {2 * B}, 2 epochs of Adam: worst relative difference {err:.2e}")
    assert err <= TOL
    side_one, side_two = (json.loads(p.with_suffix(".json").read_text()) for p in (one, two))
    assert side_two["ranks"] == 2 and side_one["ranks"] == 1
    assert [h["iter"] for h in side_two["history"]] == [h["iter"] for h in side_one["history"]] == [2, 4]
    loss_one, loss_two = side_one["history"][-1]["loss"], side_two["history"][-1]["loss"]
    assert abs(loss_two - loss_one) <= TOL * loss_one  # rank 0 logs the mean over the ranks
    # a change of rank count: epoch 1 on 2 ranks, epoch 2 resumed in one process with batch 2B
    train(2, data, mixed, B, "--epochs", 1)
    train(1, data, mixed, 2 * B, "--epochs", 2, "--resume")
    err = worst(mixed, one)
    print(f"2 ranks then resumed on 1: {err:.2e}")
    assert err <= TOL


def test_each_rank_takes_every_nth_image_of_the_one_process_batch_with_its_augmentation(tmp_path):
    """The split itself (no process group needed): with flip/zoom/rotation on, rank r of 2 gets rows r, r+2, ...
    of what one process with batch 2B gets, augmented identically; an odd-sized set is padded so that both
    ranks have a batch at every step."""
    pre = models.get(MODEL).preprocessing
    split = load_split(write_lmdb_dataset(tmp_path / "d", n_train=13, n_val=2, size=32), "train", pre)
    aug = {"flip": True, "zoom": 0.2, "rotate_deg": 10}
    one = ImageTask(split, pre, 2 * B, aug)
    ranks = [ImageTask(split, pre, B, aug, shard=Dist(rank=r, world=2)) for r in (0, 1)]
    assert one.steps() == ranks[0].steps() == 2
    whole = list(one.batches(np.random.default_rng(5)))
    parts = [list(t.batches(np.random.default_rng(5))) for t in ranks]
    for k in range(one.steps()):
        n = len(whole[k][0])
        for r in (0, 1):
            x, y = parts[r][k]
            assert len(x) == (B if k == 0 else 3)  # 13 images: 8, then 5 padded to 6 = 3 per rank
            np.testing.assert_array_equal(x[: len(whole[k][0][r::2])], whole[k][0][r::2])
            np.testing.assert_array_equal(y[: len(whole[k][1][r::2])], whole[k][1][r::2])
        assert n == (2 * B if k == 0 else 5)


def test_a_killed_rank_stops_training_with_one_line_and_the_checkpoint_resumes(tmp_path):
    """SIGKILL rank 1 after the first checkpoint: rank 0 exits 2 with one `train: error:` line (no hang, no
    traceback) naming the checkpoint, which then resumes in one process."""
    data = write_lmdb_dataset(tmp_path / "d", n_train=16, n_val=4, size=32)
    out = tmp_path / "m.safetensors"
    procs = start_ranks(2, "fcnkit", "train", MODEL, data, "--out", out, "--batch-size", B, "--epochs", 10000,
                        "--quiet", cwd=tmp_path, timeout_s=30)
    deadline = time.monotonic() + 120
    while not out.with_suffix(".json").is_file() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert out.with_suffix(".json").is_file(), procs[0].communicate(timeout=5)
    procs[1].kill()
    _, err = procs[0].communicate(timeout=90)
    procs[1].communicate(timeout=10)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert procs[0].returncode == 2, err
    assert len(lines) == 1 and lines[0].startswith("train: error: rank 0 of 2: lost contact"), err
    assert f"checkpoint {out}" in lines[0]
    done = json.loads(out.with_suffix(".json").read_text())["epoch"]
    r = train(1, data, out, 2 * B, "--epochs", done + 1, "--resume")
    assert json.loads(out.with_suffix(".json").read_text())["epoch"] == done + 1, r.stdout
