"""Helpers for the apps tests: real photos at odd sizes, and a real `fcnkit serve` process on 127.0.0.1."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, VENV_BIN
from fcnkit.apps.serve.client import ServerProcess
from PIL import Image

SERVER_LIMITS = {"max_bytes": 400_000, "max_pixels": 2_000_000}
ARTIFACTS = Path(os.environ.get("FCNKIT_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))


def real_photo(width: int, height: int, name: str = "coffee") -> np.ndarray:
    """A real photograph that scikit-image ships (coffee cup, coins, ...) resized to width x height, BGR uint8."""
    import skimage.data

    pixels = getattr(skimage.data, name)()
    bgr = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if pixels.ndim == 2 else pixels[..., ::-1]
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)


def disc(width: int = 90, height: int = 61) -> np.ndarray:
    """A bright disc on a dark field (what the threshold model segments), BGR uint8."""
    img = np.full((height, width, 3), 20, np.uint8)
    cv2.circle(img, (width // 2, height // 2), min(width, height) * 3 // 10, (240, 240, 240), -1)
    return img


def exif_rotated_jpeg(path: Path, upright_bgr: np.ndarray) -> Path:
    """A JPEG whose pixels are stored rotated, with EXIF orientation 6 ("rotate 90 CW to view"): a viewer
    shows `upright_bgr`."""
    stored = cv2.rotate(upright_bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored[..., ::-1]).save(path, quality=95, exif=exif.tobytes())
    return path


def rgba_png(path: Path, bgr: np.ndarray) -> tuple[Path, np.ndarray]:
    """An RGBA PNG of `bgr` with a transparent left quarter and a half-transparent bottom strip; returns the alpha."""
    h, w = bgr.shape[:2]
    alpha = np.full((h, w), 255, np.uint8)
    alpha[:, : w // 4] = 0
    alpha[-h // 5:, :] = 128
    Image.fromarray(np.dstack([bgr[..., ::-1], alpha]), "RGBA").save(path)
    return path, alpha


def decode(data: bytes, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert img is not None, "the answer is not a decodable image"
    return img


def at_once(n: int, send, timeout: float = 900) -> list:
    """`send()` from n threads released together; the replies in order (an OSError stands in for a reply
    that never came: a reset connection is a failure too)."""
    go = threading.Barrier(n)
    replies: list = [None] * n

    def client(i):
        go.wait()
        try:
            replies[i] = send()
        except OSError as exc:
            replies[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return replies


def start_server(model: Path, *args: str, timeout: float = 180) -> ServerProcess:
    """`fcnkit serve --model MODEL --port 0 ...` as a real process (the console script `make setup` installs)."""
    srv = ServerProcess(["--model", str(model), *args], command=[str(VENV_BIN / "fcnkit"), "serve"])
    try:
        return srv.start(timeout)
    except RuntimeError as exc:
        pytest.fail(str(exc))
