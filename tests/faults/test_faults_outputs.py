"""remove-bg never destroys data it did not make: an output never replaces an input of the same run, and an
existing file the run did not write is left alone (one line, the image skipped) unless --overwrite. Real
files, the real console script, the threshold model (real Caffe weights converted)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from conftest import one_error_line, run_cli


def _disc(path, bright=240):
    img = np.full((30, 40, 3), 20, np.uint8)
    cv2.circle(img, (20, 15), 9, (bright, bright, bright), -1)
    cv2.imwrite(str(path), img)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_input_is_never_overwritten_even_with_overwrite(threshold_model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _disc(src / "a.png")
    victim = _disc(src / "a_mask.png", bright=120)  # an input that is also a's output name
    before = _digest(victim)
    for extra in ((), ("--overwrite",)):
        r = run_cli("remove-bg", src, "-o", src, "--output", "mask", "--model", threshold_model, *extra)
        assert r.returncode == 1, r.stderr  # an image was not processed: say so in the status
        assert "is an input of this run" in r.stderr and "a.png" in r.stderr
        assert _digest(victim) == before
    # the other input was processed (its output did not collide)
    assert (src / "a_mask_mask.png").is_file()


def test_existing_outputs_need_overwrite(threshold_model, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    _disc(src / "a.png")
    _disc(src / "b.png")
    mine = out / "a_mask.png"
    mine.write_bytes(b"not written by remove-bg")
    r = run_cli("remove-bg", src, "-o", out, "--output", "mask", "--model", threshold_model)
    assert r.returncode == 0, r.stderr
    skipped = [ln for ln in r.stderr.splitlines() if "skipping" in ln]
    assert len(skipped) == 1 and "--overwrite" in skipped[0] and str(mine) in skipped[0], r.stderr
    assert mine.read_bytes() == b"not written by remove-bg"
    assert (out / "b_mask.png").is_file()
    r = run_cli("remove-bg", src, "-o", out, "--output", "mask", "--model", threshold_model, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(mine), cv2.IMREAD_UNCHANGED).shape == (30, 40)
    # --json-out naming an input is refused before any work
    r = run_cli("remove-bg", src, "-o", out, "--model", threshold_model, "--json-out", src / "a.png")
    assert "--json-out" in one_error_line(r, "remove-bg")
    assert cv2.imread(str(src / "a.png")) is not None
