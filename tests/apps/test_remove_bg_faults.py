"""remove-bg under faults, with real file systems and real signals: a read-only output folder, a full disk,
SIGKILL / SIGTERM in the middle of a write, Ctrl-C. Each asserts the exit status, one line on stderr with no
traceback, no partial file under a final name, and that a later run succeeds."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import VENV_BIN, sigint_default
from PIL import Image

TMP_PATTERN = ".*.tmp-*"  # fcnkit.io.atomic's temporary names


@contextlib.contextmanager
def tmpfs(where: Path, options: str):
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Photos of random noise (incompressible: their PNG cut-outs are large and slow to write), half bright."""
    d = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(0)
    for i in range(5):
        img = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
        Image.fromarray(img).save(d / f"n{i}.png", compress_level=0)
    return d


def run(*args, **kw):
    return subprocess.run([str(VENV_BIN / "remove-bg"), *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def start(*args):
    return subprocess.Popen([str(VENV_BIN / "remove-bg"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def assert_complete(out: Path) -> list[Path]:
    """Every file under a final name decodes to the end; returns them."""
    finals = [p for p in out.rglob("*.png") if not p.name.startswith(".")]
    for p in finals:
        with Image.open(p) as im:
            im.load()  # raises on a truncated file
    return finals


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_read_only_output_folder(threshold_model, noisy, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        r = run(noisy / "n0.png", "-o", ro, "--model", threshold_model)
        assert r.returncode == 2 and "cannot write" in one_line(r.stderr) and str(ro) in r.stderr
        r = run(noisy / "n0.png", "-o", ro / "sub", "--model", threshold_model)  # cannot even be created
        assert r.returncode == 2 and "cannot write" in one_line(r.stderr)
        r = run(noisy / "n0.png", "--json-out", ro / "meta.json", "--model", threshold_model)  # before the work
        assert r.returncode == 2 and "--json-out" in one_line(r.stderr) and "image(s)" not in r.stdout
        assert list(ro.iterdir()) == []


@pytest.mark.slow
def test_full_disk(threshold_model, noisy, tmp_path):
    with tmpfs(tmp_path / "small", "size=3m") as small:
        r = run(noisy, "-o", small, "--model", threshold_model)
        assert r.returncode == 2, r.stdout + r.stderr
        line = one_line(r.stderr)
        assert "cannot write" in line and "No space left" in line
        assert_complete(small)
        assert not list(small.glob(TMP_PATTERN))  # the failed write's temp file is gone too
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        r = run(noisy, "-o", small, "--model", threshold_model, "--skip-existing")
        assert r.returncode == 0, r.stderr
        assert len(assert_complete(small)) == 10


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_mid_write_leaves_no_truncated_file(threshold_model, noisy, tmp_path, sig):
    out = tmp_path / "out"
    proc = start(noisy, "-o", out, "--model", threshold_model)
    caught_mid_write = False
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and list(out.glob(TMP_PATTERN)):
            caught_mid_write = True  # a file is being written right now
            break
        time.sleep(0.0005)
    proc.send_signal(sig)
    proc.wait(60)
    assert caught_mid_write, "the run ended before a write could be interrupted"
    finals = assert_complete(out)
    assert len(finals) < 10
    r = run(noisy, "-o", out, "--model", threshold_model, "--skip-existing")
    assert r.returncode == 0, r.stderr
    assert len(assert_complete(out)) == 10
    assert not list(out.glob(TMP_PATTERN))  # the killed run's temp file is cleaned up


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(threshold_model, noisy, tmp_path):
    out = tmp_path / "out"
    proc = start(noisy, "-o", out, "--model", threshold_model)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("*_cutout.png")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in one_line(err)
    assert_complete(out)
    assert not list(out.glob(TMP_PATTERN))
