"""Helpers for the apps tests: real photos at odd sizes, and a real `fcnkit serve` process on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, VENV_BIN
from PIL import Image

SERVER_LIMITS = {"max_bytes": 400_000, "max_pixels": 2_000_000}
ARTIFACTS = Path(os.environ.get("FCNKIT_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))


def real_photo(width: int, height: int) -> np.ndarray:
    """A real photograph (scikit-image's coffee cup) resized to width x height, BGR uint8."""
    import skimage.data

    rgb = skimage.data.coffee()
    return cv2.resize(rgb[..., ::-1], (width, height), interpolation=cv2.INTER_AREA)


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


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def rss_kib(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the server process, KiB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) for k in ("VmRSS", "VmHWM")}


def start_server(model: Path, *args: str, timeout: float = 180) -> Server:
    """`fcnkit serve --port 0 ...` as a real process; returns once it prints the address it listens on."""
    cmd = [str(VENV_BIN / "fcnkit"), "serve", "--model", str(model), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    srv = Server("", proc)
    found = threading.Event()

    def pump():
        for line in proc.stdout:
            srv.log.append(line.rstrip("\n"))
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                srv.url = m.group(1)
                found.set()
        found.set()

    srv.reader = threading.Thread(target=pump, daemon=True)
    srv.reader.start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.2):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("fcnkit serve did not start in time:\n" + "\n".join(srv.log))
    if not srv.url:
        pytest.fail(f"fcnkit serve exited with {proc.wait()}:\n" + "\n".join(srv.log))
    return srv


def stop_server(srv: Server, sig=signal.SIGTERM, timeout: float = 60) -> int:
    if srv.proc.poll() is None:
        srv.proc.send_signal(sig)
    try:
        rc = srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        raise
    srv.reader.join(10)  # every line it printed is in srv.log
    return rc
