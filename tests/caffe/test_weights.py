"""weights/fetch_vgg16.py against a local HTTP server: download, structural check, pinning, failures."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.fixture
def server(http_dir, vgg16_standin):
    www, url = http_dir
    (www / "deploy.prototxt").symlink_to(vgg16_standin[0])
    (www / "good.caffemodel").symlink_to(vgg16_standin[1])
    (www / "truncated.caffemodel").write_bytes(vgg16_standin[1].read_bytes()[:5_000_000])
    (www / "deploy_as_model.caffemodel").symlink_to(vgg16_standin[0])
    return url


def fetch(dest, base, model, *extra):
    return subprocess.run([sys.executable, str(ROOT / "weights" / "fetch_vgg16.py"), "--dest", str(dest),
                           "--model-url", f"{base}/{model}", "--deploy-url", f"{base}/deploy.prototxt", "--quiet",
                           *extra],
                          capture_output=True, text=True, timeout=300)


def test_download_checks_layers_and_pins_the_checksum(tmp_path, server):
    dest = tmp_path / "vgg16"
    r = fetch(dest, server, "good.caffemodel")
    assert r.returncode == 0, r.stderr
    assert "layers and shapes checked" in r.stdout
    digest = (dest / "SHA256SUMS").read_text().split()[0]
    assert len(digest) == 64
    # a second run verifies against the pinned digest without downloading
    r = fetch(dest, server, "missing.caffemodel")
    assert r.returncode == 0 and "verified" in r.stdout


@pytest.mark.parametrize(("model", "why"), [("truncated.caffemodel", "not a readable caffemodel"),
                                            ("deploy_as_model.caffemodel", "not a readable caffemodel"),
                                            ("missing.caffemodel", "HTTP 404")])
def test_bad_downloads_stop_with_one_line_and_leave_no_model(tmp_path, server, model, why):
    dest = tmp_path / "vgg16"
    r = fetch(dest, server, model)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and why in r.stderr
    assert not (dest / "VGG_ILSVRC_16_layers.caffemodel").exists()


def test_wrong_pinned_checksum_is_refused(tmp_path, server):
    dest = tmp_path / "vgg16"
    r = fetch(dest, server, "good.caffemodel", "--sha256", "0" * 64)
    assert r.returncode == 2 and "checksum mismatch" in r.stderr
    assert not (dest / "VGG_ILSVRC_16_layers.caffemodel").exists()
