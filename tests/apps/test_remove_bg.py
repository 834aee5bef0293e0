"""remove-bg end to end: both backends, formats, colours, crop, metadata, stdin/stdout, recursive folders,
--skip-existing, batching, EXIF, and the default model found from outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from conftest import VENV_BIN
from PIL import Image
from serve_helpers import decode, disc, exif_rotated_jpeg, real_photo


@pytest.fixture(scope="module")
def model(threshold_model):
    return threshold_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A bright disc on a dark field as PNG (odd size), JPEG, an RGBA PNG, and an unreadable file."""
    d = tmp_path_factory.mktemp("photos")
    img = disc(90, 61)
    cv2.imwrite(str(d / "disc.png"), img)
    big = cv2.resize(img, (300, 203), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(d / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    rgba = np.dstack([img[..., ::-1], np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, :10, 3] = 0  # a transparent strip stays transparent in the cut-out
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    (d / "broken.jpg").write_bytes(b"not an image at all")
    return d


def run(*args, **kw):
    return subprocess.run([str(VENV_BIN / "remove-bg"), *map(str, args)], capture_output=True, timeout=300, **kw)


@pytest.mark.parametrize("backend", ["torch", "caffe"])
def test_remove_bg_end_to_end(backend, model, photos, tmp_path, capsys):
    from fcnkit.cli.remove_bg import main

    out = tmp_path / "out"
    rc = main([str(photos), "-o", str(out), "--model", str(model), "--backend", backend, "--max-side", "256"])
    io = capsys.readouterr()
    assert rc == 1  # the broken file is reported, the batch goes on
    assert "skipping" in io.err and "broken.jpg" in io.err
    assert f"3 image(s) -> {out} ({model}, {backend}" in io.out and "1 unreadable" in io.out
    for stem, shape in (("disc", (61, 90)), ("big", (203, 300)), ("alpha", (61, 90))):
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        cut = np.asarray(Image.open(out / f"{stem}_cutout.png"))
        assert mask.shape == shape and cut.shape == (*shape, 4)  # original resolution (big.jpg was resized)
        assert set(np.unique(mask)) <= {0, 255}
        cy, cx = shape[0] // 2, shape[1] // 2
        assert mask[cy, cx] == 255 and mask[2, 15] == 0 and mask[-2, -2] == 0
        assert cut[cy, cx, 3] == 255 and cut[-2, -2, 3] == 0
        assert (cut[..., 3] == mask).all() or stem == "alpha"
        assert cut[cy, cx, :3].min() > 200  # original colours kept
    alpha_cut = np.asarray(Image.open(out / "alpha_cutout.png"))
    assert not alpha_cut[:, :10, 3].any()
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}_{k}.png" for s in ("disc", "big", "alpha")
                                                           for k in ("mask", "cutout"))  # no temp leftovers


def test_backends_give_identical_masks(model, photos, tmp_path):
    from fcnkit.cli.remove_bg import main

    for b in ("torch", "caffe"):
        main([str(photos / "disc.png"), "-o", str(tmp_path / b), "--model", str(model), "--backend", b])
    a = cv2.imread(str(tmp_path / "torch" / "disc_mask.png"), 0)
    b = cv2.imread(str(tmp_path / "caffe" / "disc_mask.png"), 0)
    assert np.array_equal(a, b)
    truth = np.zeros((61, 90), np.uint8)
    cv2.circle(truth, (45, 30), 18, 255, -1)
    assert (a == truth).mean() > 0.97


def test_formats_colour_crop_and_json(model, photos, tmp_path, capsys):
    from fcnkit.cli.remove_bg import main

    out = tmp_path / "o"
    assert main([str(photos / "disc.png"), "-o", str(out), "--model", str(model), "--output", "cutout",
                 "--format", "webp", "--bgcolor", "0,255,0", "--crop", "--margin", "4", "--json"]) == 0
    io = capsys.readouterr()
    [line] = io.out.splitlines()  # stdout: the metadata only; the summary went to stderr
    meta = json.loads(line)
    assert "remove-bg: 1 image(s)" in io.err
    assert (meta["width"], meta["height"]) == (90, 61) and meta["cutout"] == str(out / "disc_cutout.webp")
    b = meta["bbox"]
    assert abs(b["x"] + b["width"] / 2 - 45) <= 1 and abs(b["y"] + b["height"] / 2 - 30) <= 1
    assert meta["foreground"] == pytest.approx(np.pi * 18 ** 2 / (90 * 61), rel=0.1)
    assert not meta["review"] and meta["uncertain"] < 0.05
    assert list(out.iterdir()) == [out / "disc_cutout.webp"]
    cut = decode((out / "disc_cutout.webp").read_bytes())
    assert cut.shape == (b["height"] + 8, b["width"] + 8, 3)  # opaque colour: no alpha channel
    assert abs(int(cut[1, 1, 1]) - 255) < 8 and cut[1, 1, 0] < 8  # green background (BGR)
    # metadata only, into a file; flags for an empty and a whole-frame mask
    (tmp_path / "dark.png").write_bytes(cv2.imencode(".png", np.full((20, 30, 3), 5, np.uint8))[1].tobytes())
    (tmp_path / "light.png").write_bytes(cv2.imencode(".png", np.full((20, 30, 3), 250, np.uint8))[1].tobytes())
    report = tmp_path / "meta.json"
    assert main([str(tmp_path / "dark.png"), str(tmp_path / "light.png"), "--model", str(model),
                 "--json-out", str(report)]) == 0
    dark, light = json.loads(report.read_text())
    assert dark["empty"] and dark["review"] and dark["bbox"] is None
    assert light["whole_frame"] and light["review"] and "mask" not in light
    assert "2 to review" in capsys.readouterr().out


@pytest.mark.slow
def test_stdin_to_stdout(model, tmp_path):
    photo = real_photo(333, 517)
    data = cv2.imencode(".png", photo)[1].tobytes()
    r = run("-", "-o", "-", "--model", model, "--output", "mask", input=data)
    assert r.returncode == 0, r.stderr.decode()
    mask = decode(r.stdout)
    assert mask.shape == (517, 333)
    from fcnkit import inference

    assert ((mask > 0) == inference.load(str(model)).mask(photo).astype(bool)).mean() > 0.999
    r = run("-", "-o", "-", "--model", model, "--format", "jpeg", input=data)  # default output: the cut-out
    assert r.returncode == 0 and decode(r.stdout).shape == (517, 333, 3)
    r = run("-", "-o", tmp_path / "files", "--model", model, input=data)  # stdin into a folder
    assert r.returncode == 0 and (tmp_path / "files" / "stdin_cutout.png").is_file()


def test_exif_orientation_is_applied(model, tmp_path):
    upright = np.full((60, 100, 3), 20, np.uint8)
    cv2.circle(upright, (25, 30), 15, (240, 240, 240), -1)
    src = exif_rotated_jpeg(tmp_path / "rot.jpg", upright)
    r = run(src, "-o", tmp_path / "out", "--model", model, "--output", "mask")
    assert r.returncode == 0, r.stderr.decode()
    mask = cv2.imread(str(tmp_path / "out" / "rot_mask.png"), 0)
    assert mask.shape == (60, 100) and mask[30, 25] == 255 and mask[30, 75] == 0


@pytest.mark.slow
def test_recursive_skip_existing_and_batching(model, photos, tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(photos / "disc.png", tree / "top.png")
    shutil.copy(photos / "disc.png", tree / "a" / "one.png")
    shutil.copy(photos / "big.jpg", tree / "a" / "b" / "two.jpg")
    shutil.copy(photos / "big.jpg", tree / "a" / "b" / "two.png")  # same stem: made unique, not overwritten
    out = tmp_path / "out"
    r = run(tree, "-o", out, "--model", model)
    assert r.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["top_cutout.png", "top_mask.png"]
    r = run(tree, "-o", out, "-r", "--skip-existing", "--model", model, "--batch-size", "3", "--output", "mask")
    assert r.returncode == 0, r.stderr.decode()
    said = r.stdout.decode()
    assert "3 image(s)" in said and "1 already done, skipped" in said  # top_mask.png exists: top is done
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_mask.png"))
    assert made == ["a/b/two_2_mask.png", "a/b/two_mask.png", "a/one_mask.png", "top_mask.png"]
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    r = run(tree, "-o", out, "-r", "--skip-existing", "--model", model, "--output", "mask")
    assert r.returncode == 0 and "4 already done, skipped" in r.stdout.decode()
    assert stamp == {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}  # nothing rewritten
    one = cv2.imread(str(out / "a" / "b" / "two_mask.png"), 0)
    r = run(tree / "a" / "b" / "two.jpg", "-o", tmp_path / "single", "--model", model, "--output", "mask")
    assert np.array_equal(one, cv2.imread(str(tmp_path / "single" / "two_mask.png"), 0))  # batch == one by one


@pytest.mark.parametrize("args, words", [
    (["--max-side", "-1"], "--max-side"),
    (["--batch-size", "0"], "--batch-size"),
    (["--bgcolor", "300,0,0"], "--bgcolor"),
    (["-o", "-", "--output", "both"], "one picture"),
])
def test_bad_arguments_are_exit_2(model, photos, args, words):
    r = run(photos / "disc.png", "--model", model, *(["-o", "x"] if "-o" not in args else []), *args)
    assert r.returncode == 2 and words in r.stderr.decode() and b"Traceback" not in r.stderr


def test_output_that_is_a_file_is_one_line(model, photos, tmp_path):
    target = tmp_path / "taken"
    target.write_text("a file")
    r = run(photos / "disc.png", "-o", target, "--model", model)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and "is a file" in r.stderr.decode()


def test_missing_model_is_one_line_error(photos, tmp_path, capsys):
    from fcnkit.cli.remove_bg import main

    assert main([str(photos / "disc.png"), "-o", str(tmp_path), "--model", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_default_model_is_found_from_the_project_root_not_the_cwd(model, photos, tmp_path):
    """Run elsewhere with no --model: the default (the demo's converted net) is resolved against the project
    root, here a stand-in root named by FCNKIT_ROOT, so it works from any directory."""
    root = tmp_path / "project"
    shutil.copytree(model, root / "runs" / "demo" / "torch" / "fcn8s_finetune")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "FCNKIT_ROOT": str(root)}
    r = run(photos / "disc.png", "-o", "out", cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert "no --model given" in r.stdout.decode() and (elsewhere / "out" / "disc_mask.png").is_file()
    shutil.rmtree(root / "runs")
    r = run(photos / "disc.png", "-o", "out2", cwd=elsewhere, env=env)
    assert r.returncode == 2 and "make demo" in r.stderr.decode() and r.stderr.decode().count("\n") == 1
