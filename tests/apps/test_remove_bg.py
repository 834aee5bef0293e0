"""remove-bg end to end, both backends, on sample images of several formats and sizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def model(threshold_model):
    return threshold_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A bright disc on a dark field as PNG (odd size), JPEG, an RGBA PNG, and an unreadable file."""
    d = tmp_path_factory.mktemp("photos")
    img = np.full((61, 90, 3), 20, np.uint8)
    cv2.circle(img, (45, 30), 18, (240, 240, 240), -1)
    cv2.imwrite(str(d / "disc.png"), img)
    big = cv2.resize(img, (300, 203), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(d / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    rgba = np.dstack([img[..., ::-1], np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, :10, 3] = 0  # a transparent strip stays transparent in the cut-out
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    (d / "broken.jpg").write_bytes(b"not an image at all")
    return d


@pytest.mark.parametrize("backend", ["torch", "caffe"])
def test_remove_bg_end_to_end(backend, model, photos, tmp_path, capsys):
    from fcnkit.cli.remove_bg import main

    out = tmp_path / "out"
    rc = main([str(photos), "-o", str(out), "--model", str(model), "--backend", backend, "--max-side", "256"])
    io = capsys.readouterr()
    assert rc == 1  # the broken file is reported, the batch goes on
    assert "skipping" in io.err and "broken.jpg" in io.err
    assert f"3 image(s) -> {out} ({backend}" in io.out
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


def test_missing_model_is_one_line_error(photos, tmp_path, capsys):
    from fcnkit.cli.remove_bg import main

    assert main([str(photos / "disc.png"), "-o", str(tmp_path), "--model", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
