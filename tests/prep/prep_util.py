"""Real files for the prep tests: sneaker photos in many encodings, and the bad inputs users really have."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fcnkit.prep.composite import builtin_backgrounds
from fcnkit.prep.sample import render_sneaker
from PIL import Image


def sneaker(i: int = 0, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A drawn sneaker on white (RGB uint8) and its renderer silhouette (bool)."""
    return render_sneaker(7, i, size)


def white_sneaker(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A render whose upper is (near) white: the white-on-white case the hole filling is for."""
    for i in range(200):
        rgb, truth = sneaker(i, size)
        if np.mean(rgb[truth].min(axis=1) >= 235) > 0.3:  # 30 % of the shoe within the rule's white
            return rgb, truth
    raise AssertionError("no white sneaker among 200 renders")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / max(1, np.count_nonzero(a | b))


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 95) -> Path:
    Image.fromarray(rgb).save(path, quality=quality)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side pixels (400 MP at 20000) that is only ~50 KB on disk."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    )
    return path


def write_bad_inputs(folder: Path) -> dict[str, str]:
    """One file per bad-input kind the issue lists -> {file name: expected manifest code}."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb, _ = sneaker(1)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a shopping list, not a photo\n")
    save_jpeg(folder / "full.jpg", rgb)
    data = (folder / "full.jpg").read_bytes()
    (folder / "full.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(rgb).save(folder / "good_then_corrupt.png")
    b = bytearray((folder / "good_then_corrupt.png").read_bytes())
    i = b.find(b"IDAT")
    b[i + 40 : i + 60] = bytes(20)  # garbage in the compressed stream
    (folder / "good_then_corrupt.png").unlink()
    (folder / "corrupt.png").write_bytes(bytes(b))
    write_bomb_png(folder / "bomb.png")
    save_jpeg(folder / "all_white.jpg", np.full((120, 160, 3), 255, np.uint8))
    photo = cv2.cvtColor(
        cv2.imread(str(next(p for p in builtin_backgrounds() if p.name == "chelsea.png"))), cv2.COLOR_BGR2RGB
    )
    save_jpeg(folder / "cat_no_white.jpg", photo)
    return {
        "zero.jpg": "empty-file",
        "notes.jpg": "not-image",
        "truncated.jpg": "truncated",
        "corrupt.png": "corrupt",
        "bomb.png": "too-large",
        "all_white.jpg": "all-white",
        "cat_no_white.jpg": "no-white-background",
    }


def write_encodings(folder: Path, size: int = 160) -> dict[str, np.ndarray]:
    """The same kind of sneaker photo in the encodings the issue lists -> {file name: renderer truth}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    rgb, truth = sneaker(2, size)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    out["cmyk.jpg"] = truth
    cv2.imwrite(str(folder / "rgb16.png"), (rgb.astype(np.uint16) * 257)[..., ::-1])
    out["rgb16.png"] = truth
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    out["gray16.png"] = truth
    Image.fromarray(gray).save(folder / "gray8.jpg", quality=95)
    out["gray8.jpg"] = truth
    rgba = np.dstack([np.where(truth[..., None], rgb, 0).astype(np.uint8), truth.astype(np.uint8) * 255])
    Image.fromarray(rgba, "RGBA").save(folder / "cutout_rgba.png")  # transparent, black behind the alpha
    out["cutout_rgba.png"] = truth
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)  # sideways pixels ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and "rotate 90 CW to display", as a phone writes it
    stored.save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    out["exif_rotated.jpg"] = truth
    Image.fromarray(rgb).save(folder / "lossless.webp", lossless=True)
    out["lossless.webp"] = truth
    Image.fromarray(rgb).save(folder / "plain.bmp")
    out["plain.bmp"] = truth
    Image.fromarray(rgb).quantize(64).save(folder / "palette.gif")
    out["palette.gif"] = truth
    return out


def write_voc_tar(path, evil=False):
    """A miniature VOCtrainval archive: real JPEGs, the Segmentation lists, the VOCdevkit/VOC2012 layout."""
    src = path.parent / "voc_src"
    jpg = src / "VOCdevkit" / "VOC2012" / "JPEGImages"
    seg = src / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    jpg.mkdir(parents=True)
    seg.mkdir(parents=True)
    for i in range(3):
        save_jpeg(jpg / f"2007_00000{i}.jpg", sneaker(i, 64)[0])
    (seg / "trainval.txt").write_text("2007_000000\n2007_000001\n2007_000002\n")
    (seg / "train.txt").write_text("2007_000000\n2007_000001\n")
    (seg / "val.txt").write_text("2007_000002\n")
    with tarfile.open(path, "w") as tf:
        tf.add(src / "VOCdevkit", arcname="VOCdevkit")
        if evil:
            data = b"owned"
            info = tarfile.TarInfo("../../escaped.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def realdata(sub: str = "") -> Path:
    """A folder of the real-photo datasets (`../shared/realdata`, or $FCNKIT_REALDATA): the test is skipped where
    it is absent (a user's machine), and fails instead under CI=true, where the data must be present."""
    root = Path(__file__).resolve().parents[2]
    candidates = [Path(os.environ["FCNKIT_REALDATA"])] if os.environ.get("FCNKIT_REALDATA") else [
        root.parent / "shared" / "realdata", root.parent.parent / "shared" / "realdata"]
    for c in candidates:
        if (c / sub).exists():
            return c / sub
    msg = f"real data {sub or 'folder'} not found (looked in {', '.join(map(str, candidates))})"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)
