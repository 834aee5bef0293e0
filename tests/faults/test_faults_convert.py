"""The converter and converted models under faults: NaN weights, hostile model folders (code in model.py,
crafted safetensors headers, broken conversion.json), full and read-only disks, SIGKILL mid-conversion,
verify sizes Caffe cannot hold. Real files, real mounts, real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import VENV_BIN, one_error_line, run_cli

pytestmark = pytest.mark.caffe


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    (d / "masks").mkdir(parents=True)
    img = np.full((30, 40, 3), 20, np.uint8)
    cv2.circle(img, (20, 15), 9, (240, 240, 240), -1)
    cv2.imwrite(str(d / "a.png"), img)
    cv2.imwrite(str(d / "masks" / "a.png"), (img[..., 0] > 128).astype(np.uint8) * 255)
    return d


@pytest.fixture
def model_copy(threshold_model, tmp_path):
    """A private copy of a converted folder (with its Caffe source beside it) that a test may damage."""
    root = tmp_path / "m"
    shutil.copytree(threshold_model.parent, root, ignore=shutil.ignore_patterns("*.tmp-*"))
    return root / "torch"


def evaluate(model, photos, *extra, cwd=None):
    return run_cli("evaluate", photos, "--model", model, *extra, cwd=cwd)


def test_nan_weights_warn_fail_verify_and_are_refused_by_inference(caffe, threshold_model, tmp_path, photos):
    src = threshold_model.parent
    net = caffe.Net(str(src / "deploy.prototxt"), str(src / "net.caffemodel"), caffe.TEST)
    net.params["conv1"][0].data[1, 0, 1, 1] = np.nan
    net.save(str(tmp_path / "nan.caffemodel"))
    r = run_cli("convert", src / "deploy.prototxt", tmp_path / "nan.caffemodel", "-o", tmp_path / "out",
                "--verify", "--sizes", "24x24")
    assert "non-finite weights (NaN/inf)" in r.stdout and "layer 'conv1' 1 values" in r.stdout
    assert r.returncode == 1 and "verify: FAIL" in r.stdout and "non-finite values" in r.stdout
    assert "converted 0" not in r.stdout.split("non-finite values")[1].splitlines()[0]  # NaN on both sides
    msg = one_error_line(evaluate(tmp_path / "out", photos, "--backend", "torch"), "evaluate")
    assert "non-finite weights" in msg and "conv1.weight" in msg
    msg = one_error_line(evaluate(tmp_path / "out", photos, "--backend", "caffe"), "evaluate")
    assert "NaN/inf output values" in msg


def test_model_folder_is_data_code_in_model_py_never_runs(model_copy, tmp_path, photos):
    marker = tmp_path / "PWNED"
    with open(model_copy / "model.py", "a") as fh:
        fh.write(f"\nopen({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n")
    r = evaluate(model_copy, photos, "--backend", "torch")
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    assert "1 images" in r.stdout


def craft(path, header: dict, data: bytes = b"\0" * 16):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize(("name", "header"), [
    ("overlap", {"conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "conv1.bias": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}),
    ("out of range", {"conv1.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4096]}}),
    ("negative shape", {"conv1.weight": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}),
    ("unknown dtype", {"conv1.weight": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}),
])
def test_crafted_safetensors_headers_are_refused(model_copy, photos, name, header):
    craft(model_copy / "weights.safetensors", header)
    msg = one_error_line(evaluate(model_copy, photos, "--backend", "torch"), "evaluate")
    assert "weights.safetensors" in msg and "not a valid safetensors file" in msg
    # model.py's own reader (for people using the folder standalone) refuses it too, with a reason
    r = subprocess.run([sys.executable, "-c", "import model; model.read_safetensors('weights.safetensors')"],
                       cwd=model_copy, capture_output=True, text=True)
    assert r.returncode != 0 and "ValueError: weights.safetensors: " in r.stderr


@pytest.mark.parametrize("damage", ["missing", "not json", "foreign class"])
def test_broken_conversion_json_is_one_line(model_copy, photos, damage):
    info_path = model_copy / "conversion.json"
    if damage == "missing":
        info_path.unlink()
    elif damage == "not json":
        info_path.write_text("{ not json")
    else:
        info = json.loads(info_path.read_text())
        next(e for e in info["layers"] if e["kind"] == "module")["module_spec"]["cls"] = "os.system"
        info_path.write_text(json.dumps(info))
    msg = one_error_line(evaluate(model_copy, photos, "--backend", "torch"), "evaluate")
    assert str(model_copy) in msg


def test_moved_model_folder_still_finds_its_caffe_source(model_copy, tmp_path, photos):
    moved = tmp_path / "elsewhere" / "project"
    shutil.move(model_copy.parent, moved)  # the folder and the files it was converted from, together
    r = evaluate(moved / "torch", photos, "--backend", "both", cwd=tmp_path)  # another working directory
    assert r.returncode == 0, r.stderr
    assert "caffe vs torch: 0 of" in r.stdout


def test_full_disk_and_read_only_output(threshold_model, tmpfs):
    src = threshold_model.parent
    full = tmpfs(size="256k")
    st = os.statvfs(full)
    (full / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 8192))  # 8 KiB left: model.py fills it
    r = run_cli("convert", src / "deploy.prototxt", src / "net.caffemodel", "-o", full / "out")
    assert "No space left on device" in one_error_line(r, "convert")
    assert [p.name for p in full.iterdir()] == ["filler"]  # no output, no temp folder
    ro = tmpfs(readonly=True, populate=lambda d: (d / "out").mkdir())
    r = run_cli("convert", src / "deploy.prototxt", src / "net.caffemodel", "-o", ro / "out", "--force")
    assert "cannot write into" in one_error_line(r, "convert")


def test_sigkill_mid_conversion_leaves_no_output_and_the_next_run_cleans_up(caffe, tmp_path):
    from fcnkit.convert.sample_nets import random_caffemodel, write_fcn_deploy

    deploy = write_fcn_deploy(tmp_path / "d.prototxt", "8s", width=0.25, input_shape=(1, 3, 64, 64))
    model = random_caffemodel(deploy, tmp_path / "m.caffemodel")
    out = tmp_path / "out"
    proc = subprocess.Popen([str(VENV_BIN / "convert"), str(deploy), str(model), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and list(tmp_path.glob(".out.tmp-*"))
    r = run_cli("convert", deploy, model, "-o", out)
    assert r.returncode == 0, r.stderr
    assert (out / "conversion.json").is_file() and not list(tmp_path.glob(".out.tmp-*"))
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask  # as mkdir would, not mkdtemp's 0700
    assert ((out / "weights.safetensors").stat().st_mode & 0o777) == 0o666 & ~umask


def test_verify_at_a_size_caffe_cannot_hold_is_one_line(threshold_model, tmp_path):
    src = threshold_model.parent
    r = run_cli("convert", src / "deploy.prototxt", src / "net.caffemodel", "-o", tmp_path / "v",
                "--verify", "--sizes", "60000x60000")
    assert "more than Caffe's limit of 2^31 - 1" in one_error_line(r, "convert")
    assert not (tmp_path / "v").exists()
