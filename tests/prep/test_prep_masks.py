"""`prep masks` and the image reader, on real files: every encoding and every bad input the issue lists."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fcnkit.cli.prep import main
from fcnkit.io.images import ImageReadError, mask_to_label, read_image, read_mask, read_rgb
from fcnkit.prep.masks import MaskOptions, compute_mask, fill_holes, keep_components, white_rule
from PIL import Image
from prep_util import (
    iou,
    save_jpeg,
    sneaker,
    white_sneaker,
    write_bad_inputs,
    write_bomb_png,
    write_encodings,
)


def _rows(out):
    return {
        r["source"].split("/")[-1]: r
        for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())
    }


# ------------------------------------------------------------------------------------------- the rule


def test_white_rule_is_per_channel_distance_from_white():
    px = np.array([[[255, 255, 255], [236, 240, 250], [235, 255, 255], [255, 200, 255], [0, 0, 0]]], np.uint8)
    fg = white_rule(px, tolerance=20)
    # background iff every channel >= 235: 236/240/250 is background, a single channel at 234 is not
    assert fg.ravel().tolist() == [0, 0, 0, 255, 255]
    assert white_rule(np.array([[[234, 255, 255]]], np.uint8), 20).item() == 255
    assert white_rule(px, tolerance=60).ravel().tolist() == [0, 0, 0, 0, 255]


def test_fill_holes_keeps_white_panels_of_a_white_sneaker():
    rgb, truth = white_sneaker()
    raw = white_rule(rgb, 20) > 0
    filled = fill_holes(white_rule(rgb, 20)) > 0
    assert iou(raw, truth) < 0.8, "the render should really have white panels the raw rule misses"
    assert iou(filled, truth) > 0.93
    res = compute_mask(rgb, None)
    assert res.code is None and iou(res.mask > 0, truth) > 0.93
    no_fill = compute_mask(rgb, None, MaskOptions(fill_holes=False))
    assert iou(no_fill.mask > 0, truth) < iou(res.mask > 0, truth)


def test_specks_dropped_and_largest_components_kept():
    fg = np.zeros((100, 100), np.uint8)
    fg[10:40, 10:40] = 255  # shoe 1
    fg[60:90, 50:95] = 255  # shoe 2
    fg[5, 90] = 255  # dust
    fg[50:53, 5:8] = 255  # JPEG speck
    out = keep_components(fg, min_area=10, keep=2)
    assert out[5, 90] == 0 and out[51, 6] == 0 and out[20, 20] == 255 and out[70, 70] == 255
    assert np.count_nonzero(keep_components(fg, min_area=0, keep=1)) == 30 * 45


def test_drawn_sneakers_rule_agrees_with_renderer():
    ious = [iou(compute_mask(*sneaker(i)[:1], None).mask > 0, sneaker(i)[1]) for i in range(12)]
    assert min(ious) > 0.9 and np.mean(ious) > 0.95


def test_options_are_validated():
    with pytest.raises(Exception, match="tolerance"):
        MaskOptions(tolerance=300)
    with pytest.raises(Exception, match="max-fg"):
        MaskOptions(max_fg=2)


# ---------------------------------------------------------------------------------------- the reader


def test_every_encoding_reads_upright_and_masks_like_the_render(tmp_path):
    files = write_encodings(tmp_path)
    base = sneaker(2)[0].astype(int)
    for name, truth in files.items():
        img = read_image(tmp_path / name)
        assert img.rgb.shape == truth.shape + (3,) and img.rgb.dtype == np.uint8, name
        res = compute_mask(img.rgb, img.alpha)
        assert res.code is None, (name, res.reason)
        assert iou(res.mask > 0, truth) > 0.9, name
        if name not in ("gray16.png", "gray8.jpg", "cutout_rgba.png", "palette.gif"):
            assert np.abs(img.rgb.astype(int) - base).mean() < 4, name  # colours right (CMYK not inverted)
    assert read_image(tmp_path / "cmyk.jpg").mode == "CMYK"
    g16 = read_image(tmp_path / "gray16.png")
    assert g16.mode.startswith("I") and g16.rgb.max() == 255 and g16.rgb.min() < 100  # scaled, not clipped
    cut = read_image(tmp_path / "cutout_rgba.png")
    assert cut.alpha is not None and compute_mask(cut.rgb, cut.alpha).method == "alpha"
    assert iou(compute_mask(cut.rgb, cut.alpha).mask > 0, files["cutout_rgba.png"]) > 0.99
    flat = read_rgb(tmp_path / "cutout_rgba.png")
    assert (flat[~files["cutout_rgba.png"]] == 255).all()  # transparent -> white, not the black behind it


def test_exif_orientation_is_applied(tmp_path):
    write_encodings(tmp_path)
    stored = Image.open(tmp_path / "exif_rotated.jpg")
    assert stored.size[0] == stored.size[1]  # square render: compare content, not shape
    rgb = read_image(tmp_path / "exif_rotated.jpg").rgb
    base = sneaker(2)[0].astype(int)
    assert np.abs(rgb.astype(int) - base).mean() < 4
    assert np.abs(np.asarray(stored).astype(int) - base).mean() > 20  # the stored pixels really are rotated


@pytest.mark.parametrize(
    "name,code",
    [
        ("zero.jpg", "empty-file"),
        ("notes.jpg", "not-image"),
        ("truncated.jpg", "truncated"),
        ("corrupt.png", "corrupt"),
    ],
)
def test_bad_files_raise_a_reason(tmp_path, name, code):
    write_bad_inputs(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / name)
    assert e.value.code == code and e.value.reason


def test_decompression_bomb_refused_from_the_header(tmp_path):
    bomb = write_bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    t0 = time.perf_counter()
    with pytest.raises(ImageReadError) as e:
        read_image(bomb)
    assert e.value.code == "too-large" and time.perf_counter() - t0 < 0.5
    # a limit below Pillow's own: our check, from the header
    save_jpeg(tmp_path / "big.jpg", np.full((400, 500, 3), 128, np.uint8))
    with pytest.raises(ImageReadError, match="over the 0.1 MP limit"):
        read_image(tmp_path / "big.jpg", max_pixels=100_000)
    assert read_image(tmp_path / "big.jpg", max_pixels=200_000).rgb.shape == (400, 500, 3)


def test_mask_reader_and_label_formats(tmp_path):
    ids = np.zeros((20, 30), np.uint8)
    ids[5:10, 5:10] = 1
    ids[0, :] = 255
    pal = Image.fromarray(ids, "P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 759 + [224, 224, 192])
    pal.save(tmp_path / "voc.png")
    m = read_mask(tmp_path / "voc.png")
    assert np.array_equal(m, ids)  # palette indices, not colours
    assert np.array_equal(mask_to_label(m), ids)  # auto: class ids with 255 = ignore kept
    binary = np.where(ids == 1, 255, 0).astype(np.uint8)
    assert np.array_equal(mask_to_label(binary), (ids == 1).astype(np.uint8))
    with pytest.raises(ValueError, match="outside 0/1/255"):
        mask_to_label(np.full((2, 2), 7, np.uint8), "ids")


# -------------------------------------------------------------------------------------------- the step


def test_masks_step_skips_bad_inputs_with_reasons_and_continues(tmp_path, capsys):
    src = tmp_path / "photos"
    expected = write_bad_inputs(src)
    for i in range(3):
        save_jpeg(src / f"shoe{i}.jpg", sneaker(10 + i)[0])
    encodings = write_encodings(src / "formats")
    (src / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored, not reported
    out = tmp_path / "masks"
    assert main(["masks", str(src), str(out), "--workers", "2", "--quiet"]) == 0
    msg = capsys.readouterr().out
    assert f"{3 + len(encodings)} masks written" in msg and f"{len(expected)} skipped" in msg
    rows = _rows(out)
    assert ".DS_Store" not in rows
    for name, code in expected.items():
        assert rows[name]["status"] == "skipped" and rows[name]["code"] == code, (name, rows[name])
        assert rows[name]["reason"] and rows[name]["mask"] is None
    for name in [f"shoe{i}.jpg" for i in range(3)] + list(encodings):
        r = rows[name]
        assert r["status"] == "ok", (name, r.get("reason"))
        m = read_mask(out / r["mask"])
        assert set(np.unique(m)) <= {0, 255} and 0.02 < r["fg_fraction"] < 0.9
        img = (out / r["image"]).resolve()
        assert img.is_file() and img.name == name and src.resolve() in img.parents
    assert rows["cutout_rgba.png"]["method"] == "alpha"
    assert (out / "masks" / "formats" / "cmyk.png").is_file()  # sub-folders mirrored
    png = Image.open(out / "preview.png")
    assert png.format == "PNG" and png.size[0] > 300


def test_masks_strict_and_nothing_usable_write_nothing(tmp_path, capsys):
    src = tmp_path / "photos"
    write_bad_inputs(src)
    out = tmp_path / "out"
    assert main(["masks", str(src), str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("prep: error: ") and "no usable photo" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
    save_jpeg(src / "shoe.jpg", sneaker(3)[0])
    assert main(["masks", str(src), str(out), "--strict", "--quiet"]) == 2
    assert "--strict" in capsys.readouterr().err and not out.exists()
    assert main(["masks", str(src), str(out), "--quiet"]) == 0 and (out / "masks" / "shoe.png").is_file()


def test_masks_refuses_to_clobber_a_foreign_folder(tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    save_jpeg(src / "shoe.jpg", sneaker(4)[0])
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    assert main(["masks", str(src), str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err and (out / "thesis.tex").exists()
    assert main(["masks", str(tmp_path / "nope"), str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["masks", str(src), str(src / "inside")]) == 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_jpeg_path_matches_pillow_for_every_exif_orientation(tmp_path, orientation):
    from fcnkit.io import images as imageio

    rgb = np.zeros((48, 80, 3), np.uint8)
    rgb[:, :, 0] = np.linspace(0, 255, 80)[None, :]  # red ramp left -> right
    rgb[:, :, 1] = np.linspace(0, 255, 48)[:, None]  # green ramp top -> bottom
    rgb[4:12, 4:20, 2] = 255  # a blue block near the top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif, quality=98)
    fast = read_image(tmp_path / "o.jpg")
    with Image.open(tmp_path / "o.jpg") as im:
        assert imageio._fast_jpeg(tmp_path / "o.jpg", im) is not None  # the OpenCV path really is taken
        slow, _ = imageio._convert(imageio._decode(im))
    assert fast.rgb.shape == slow.shape == ((48, 80, 3) if orientation <= 4 else (80, 48, 3))
    assert np.abs(fast.rgb.astype(int) - slow.astype(int)).max() <= 6
    gray = tmp_path / "g.jpg"
    Image.fromarray(rgb[..., 1]).save(gray, exif=exif)
    g = read_image(gray).rgb
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()


def test_interrupted_masks_step_leaves_no_output_folder(tmp_path, monkeypatch):
    import fcnkit.prep.preview as preview
    from fcnkit.prep.masks import run_masks

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        save_jpeg(src / f"s{i}.jpg", sneaker(30 + i)[0])

    def ctrl_c(*args, **kwargs):  # the last thing before the folder is renamed into place
        raise KeyboardInterrupt

    monkeypatch.setattr(preview, "preview_pairs", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_masks(src, tmp_path / "out", workers=1, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no out/, no hidden .out.tmp-*
