"""Training under faults, as real processes: SIGTERM ends `fcnkit train` and `fcnkit compare` with 143 and
one line (the checkpoint of the moment saved), never a traceback or 130; a disk that fills up while `train`
writes its checkpoint is one line and exit 2."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from conftest import VENV_BIN, one_error_line, run_cli, write_lmdb_dataset


def _term_after(cmd: list[str], ready, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.slow
def test_compare_on_sigterm_is_143_and_one_line(tmp_path):
    data = write_lmdb_dataset(tmp_path / "d" / "white", 64, 4, size=32)
    out = tmp_path / "cmp"
    r = _term_after([str(VENV_BIN / "fcnkit"), "compare", "--out", str(out), "--models", "tiny/unet", "--datasets",
                     "white", "--data-root", str(data.parent), "--fcn", "skip", "--epochs", "500"],
                    lambda: any(out.rglob("*.json")))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "it/s]" not in ln and "batch/s" not in ln]
    assert r.returncode == 143, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "TrainingInterrupted" not in r.stderr
    assert lines[-1].startswith("compare: interrupted (SIGTERM)"), lines[-3:]


def test_a_full_disk_while_writing_the_checkpoint_is_one_line(tmp_path, tmpfs):
    data = write_lmdb_dataset(tmp_path / "d", 8, 4, size=32)
    small = tmpfs(size="64k")
    r = run_cli("fcnkit-train", "tiny/unet", data, "--out", small / "u.safetensors", "--epochs", "1", "--quiet")
    line = one_error_line(r, "train")
    assert "No space left" in line and "u." in line
    assert not [p for p in small.iterdir() if p.suffix == ".json"]  # the sidecar (written last) never appeared


@pytest.mark.parametrize("sidecar", ["{not json", "[1, 2]"])
def test_compare_reuse_with_a_damaged_sidecar_is_one_line(tmp_path, sidecar):
    root = tmp_path / "d"
    write_lmdb_dataset(root / "white", 8, 4, size=32)
    out = tmp_path / "cmp"
    ckpt = out / "checkpoints" / "white" / "tiny" / "unet.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    ckpt.with_suffix(".json").write_text(sidecar)
    r = run_cli("fcnkit-compare", "--out", out, "--models", "tiny/unet", "--datasets", "white", "--data-root", root,
                "--fcn", "skip", "--reuse")
    assert "unet.json" in one_error_line(r, "compare")
