"""`fcnkit serve` as a real process on 127.0.0.1: round trips of real photos, alpha, EXIF, formats, the
metadata endpoint, every error status, the OpenAPI schema, back-pressure under 32 concurrent uploads, and
clean shutdown. The model is a real converted Caffe net that segments bright pixels (conftest)."""

from __future__ import annotations

import base64
import io
import json
import re
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import VENV_BIN
from fcnkit.apps.serve.client import get, post_image, request
from PIL import Image
from serve_helpers import (
    ARTIFACTS,
    SERVER_LIMITS,
    at_once,
    decode,
    disc,
    exif_rotated_jpeg,
    real_photo,
    rgba_png,
    start_server,
)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def server(threshold_model):
    """1 worker, a queue of 4, small byte/pixel limits so the 413s are cheap to provoke."""
    srv = start_server(threshold_model, "--workers", "1", "--max-queue", "4",
                       "--max-bytes", str(SERVER_LIMITS["max_bytes"]), "--max-pixels", str(SERVER_LIMITS["max_pixels"]))
    yield srv
    assert srv.stop() == 0, "\n".join(srv.log)
    assert not any("Traceback" in line for line in srv.log), "\n".join(srv.log)


@pytest.fixture(scope="module")
def local(threshold_model):
    """The same model in this process: what the server's masks must equal."""
    from fcnkit import inference

    return inference.load(str(threshold_model))


def png(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", bgr)[1].tobytes()


def remove(server, data: bytes, name="photo.png", json_out=False, **fields):
    return post_image(f"{server.url}/api/remove{'.json' if json_out else ''}", data, name,
                      {k: str(v) for k, v in fields.items()})


def test_models_health_page_and_schema(server):
    h = get(f"{server.url}/healthz")
    assert h.status == 200 and h.json()["status"] == "ok"
    m = get(f"{server.url}/api/models").json()
    assert [x["name"] for x in m["models"]] == [m["default"]] and m["models"][0]["default"]
    assert m["models"][0]["trained_on"] and m["models"][0]["backend"] == "torch"
    limits = dict(m["limits"])
    assert limits.pop("memory_bound_mib") > 0 and limits == SERVER_LIMITS
    schema = get(f"{server.url}/api/openapi.json").json()
    assert {"/api/remove", "/api/remove.json", "/api/models", "/healthz"} <= set(schema["paths"])
    op = schema["paths"]["/api/remove"]["post"]
    assert {"model", "postprocess", "output", "bgcolor", "format", "crop", "margin"} <= {p["name"] for p in
                                                                                         op["parameters"]}
    assert "file" in op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"200", "400", "413", "415", "429"} <= set(op["responses"])
    page = get(f"{server.url}/")
    assert page.status == 200 and b"Remove the background" in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]  # nothing from outside the machine
    for path in re.findall(rb'(?:src|href)="(/static/[^"]+)"', page.body):
        assert get(server.url + path.decode()).status == 200
    assert b"http" not in re.sub(rb"http://127\.0\.0\.1:7860", b"", get(f"{server.url}/static/app.js").body)
    assert get(f"{server.url}/api/docs").status == 200


@pytest.mark.parametrize("size", [(333, 517), (517, 333), (7, 31), (1, 1)])
def test_round_trip_of_a_real_photo(server, local, size):
    photo = real_photo(*size)
    expected = local.mask(photo)
    r = remove(server, png(photo))
    assert r.status == 200 and r.headers["content-type"] == "image/png"
    cut = decode(r.body)
    assert cut.shape == (size[1], size[0], 4)
    assert (cut[..., 3] == expected * 255).mean() >= 0.999
    on = cut[..., 3] > 0
    assert np.array_equal(cut[..., :3][on], photo[on])  # original pixels, untouched
    mask = decode(remove(server, png(photo), output="mask").body)
    assert mask.shape == (size[1], size[0]) and np.array_equal(mask > 0, cut[..., 3] > 0)
    meta = remove(server, png(photo), json_out=True).json()
    assert (meta["width"], meta["height"]) == size
    assert meta["foreground"] == pytest.approx(expected.mean(), abs=1e-3)


def test_rgba_input_keeps_its_alpha(server, local, tmp_path):
    img = disc(120, 80)
    path, alpha = rgba_png(tmp_path / "a.png", img)
    cut = decode(remove(server, path.read_bytes()).body)
    assert cut.shape == (80, 120, 4)
    from fcnkit.io.images import flatten_on_white

    expected = np.minimum(local.mask(flatten_on_white(img, alpha)) * 255, alpha)  # the net sees it on white
    assert np.array_equal(cut[..., 3], expected)
    assert not cut[:-16, :30, 3].any()                     # transparent stays transparent
    assert set(np.unique(cut[-16:, :, 3])) <= {0, 128}     # half-transparent stays half


def test_exif_rotated_jpeg_is_turned_upright(server, local, tmp_path):
    upright = np.full((60, 100, 3), 20, np.uint8)
    cv2.circle(upright, (25, 30), 15, (240, 240, 240), -1)  # left of centre: a wrong turn moves it
    path = exif_rotated_jpeg(tmp_path / "rot.jpg", upright)
    assert Image.open(path).size == (60, 100)  # stored sideways
    mask = decode(remove(server, path.read_bytes(), "rot.jpg", output="mask").body)
    assert mask.shape == (60, 100)
    assert ((mask > 0) == local.mask(upright).astype(bool)).mean() > 0.98
    meta = remove(server, path.read_bytes(), "rot.jpg", json_out=True).json()
    assert (meta["width"], meta["height"]) == (100, 60) and meta["bbox"]["x"] < 20


def test_formats_colours_and_crop(server, local):
    img = disc(90, 61)
    expected = local.mask(img)
    webp = remove(server, png(img), format="webp")
    assert webp.headers["content-type"] == "image/webp"
    w = decode(webp.body)
    assert w.shape == (61, 90, 4) and (w[..., 3] == expected * 255).mean() > 0.99
    jpg = remove(server, png(img), format="jpeg")
    j = decode(jpg.body)
    assert jpg.headers["content-type"] == "image/jpeg" and j.shape == (61, 90, 3)
    assert j[2, 2].min() > 230  # JPEG has no alpha: the background is white
    blue = decode(remove(server, png(img), bgcolor="0,0,255").body)
    assert blue.shape == (61, 90, 3) and tuple(blue[2, 2]) == (255, 0, 0)  # BGR
    half = decode(remove(server, png(img), bgcolor="0,0,255,128").body)
    assert half.shape == (61, 90, 4) and half[2, 2, 3] == 128 and half[30, 45, 3] == 255
    meta = remove(server, png(img), json_out=True).json()
    b = meta["bbox"]
    crop = decode(remove(server, png(img), crop="true", margin=3).body)
    assert crop.shape[:2] == (b["height"] + 6, b["width"] + 6)
    pp = remove(server, png(img), postprocess="extractnet", json_out=True).json()
    assert pp["postprocess"] == "extractnet"


def test_metadata_flags_and_images(server):
    dark, bright = np.full((40, 50, 3), 10, np.uint8), np.full((40, 50, 3), 250, np.uint8)
    d = remove(server, png(dark), json_out=True).json()
    assert d["empty"] and d["review"] and d["bbox"] is None and d["foreground"] == 0
    b = remove(server, png(bright), json_out=True).json()
    assert b["whole_frame"] and b["review"] and b["bbox"] == {"x": 0, "y": 0, "width": 50, "height": 40}
    ok = remove(server, png(disc()), json_out=True, images="true").json()
    assert not ok["review"] and 0.05 < ok["foreground"] < 0.5
    for key in ("mask", "result"):
        head, data = ok["images"][key].split(",", 1)
        assert head == "data:image/png;base64"
        assert decode(base64.b64decode(data)).shape[:2] == (61, 90)


def _bomb(w: int, h: int) -> bytes:
    """A small PNG declaring w x h pixels (1-bit, all black, so it compresses to almost nothing)."""
    buf = io.BytesIO()
    Image.new("1", (w, h)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _raw(server, body: bytes, ctype: str):
    return request(f"{server.url}/api/remove", body, {"Content-Type": ctype}, "POST")


ERRORS = {  # case -> (request, expected status, expected code)
    "text file": (lambda s: remove(s, b"hello, not a picture\n" * 20, "notes.png"), 415, "not-image"),
    "json body": (lambda s: _raw(s, b'{"file": 1}', "application/json"), 415, "bad-content-type"),
    "empty file": (lambda s: remove(s, b""), 400, "empty-file"),
    "truncated png": (lambda s: remove(s, png(disc())[:120]), 400, None),
    "no file field": (lambda s: request(f"{s.url}/api/remove", *_form_without_file()), 400, "no-file"),
    "bad format": (lambda s: remove(s, png(disc()), format="gif"), 400, "bad-parameter"),
    "bad bgcolor": (lambda s: remove(s, png(disc()), bgcolor="1,2"), 400, "bad-parameter"),
    "bad margin": (lambda s: remove(s, png(disc()), margin="-3"), 400, "bad-parameter"),
    "unknown model": (lambda s: remove(s, png(disc()), model="nope"), 400, "unknown-model"),
    "unknown parameter": (lambda s: remove(s, png(disc()), colour="red"), 400, "bad-parameter"),
    "too many bytes": (lambda s: remove(s, b"\0" * (SERVER_LIMITS["max_bytes"] + 100_000)), 413, "too-many-bytes"),
    "too many pixels": (lambda s: remove(s, _bomb(2500, 2500)), 413, "too-large"),
    "decompression bomb": (lambda s: remove(s, _bomb(20000, 20000)), 413, "too-large"),
    "unknown path": (lambda s: get(f"{s.url}/api/nothing"), 404, None),
    "wrong method": (lambda s: get(f"{s.url}/api/remove"), 405, None),
}


def _form_without_file():
    from fcnkit.apps.serve.client import multipart

    body, ctype = multipart(b"x", "x.png")
    body = body.replace(b'name="file"', b'name="picture"')
    return body, {"Content-Type": ctype}, "POST"


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_statuses_are_json(server, case):
    send, status, code = ERRORS[case]
    before = server.rss_kib()["VmHWM"]
    r = send(server)
    assert r.status == status, r.body[:300]
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == status and body["error"] and "\n" not in body["error"]
    if code:
        assert body["code"] == code
    if case == "decompression bomb":  # refused from the header: 400 MP were never allocated
        assert server.rss_kib()["VmHWM"] - before < 100_000
    assert get(f"{server.url}/healthz").status == 200


def test_uploads_leave_nothing_on_disk(server):
    tmp = Path("/tmp") / f"fcnkit-serve-{server.proc.pid}"
    assert tmp.is_dir() and oct(tmp.stat().st_mode & 0o777) == "0o700"
    assert remove(server, png(disc())).status == 200
    assert list(tmp.iterdir()) == []


def test_32_concurrent_uploads_with_a_queue_of_4(server):
    """Back-pressure: every request gets 200 or 429 (with Retry-After), none fails, the server stays healthy
    and its memory bounded."""
    data = png(real_photo(333, 517))
    n = 32
    replies = at_once(n, lambda: remove(server, data), timeout=120)
    statuses = [getattr(r, "status", repr(r)) for r in replies]
    assert set(statuses) <= {200, 429}, statuses
    ok, busy = statuses.count(200), statuses.count(429)
    assert ok >= 5 and busy >= 1, statuses  # 1 worker + 4 waiting are admitted; the rest are turned away
    for r in replies:
        if r.status == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.json()["code"] == "queue-full"
        else:
            assert decode(r.body).shape == (517, 333, 4)
    health = get(f"{server.url}/healthz").json()
    assert health["status"] == "ok" and health["queue"]["admitted"] == 0 and health["queue"]["running"] == 0
    assert remove(server, data).status == 200
    rss = server.rss_kib()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "serve_load.json").write_text(json.dumps({"requests": n, "ok": ok, "busy": busy, **rss}) + "\n")
    print(f"\nload: {ok} x 200, {busy} x 429; server VmRSS {rss['VmRSS'] / 1024:.0f} MiB, "
          f"peak VmHWM {rss['VmHWM'] / 1024:.0f} MiB")
    assert rss["VmHWM"] < 2 * 1024 * 1024  # KiB: bounded well below the machine's memory


def test_sigterm_stops_cleanly_and_a_taken_port_is_one_line(threshold_model, server):
    port = server.url.rsplit(":", 1)[1]
    r = subprocess.run([str(VENV_BIN / "fcnkit"), "serve", "--model", str(threshold_model), "--port", port],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--port" in r.stderr
    srv = start_server(threshold_model)
    tmp = Path("/tmp") / f"fcnkit-serve-{srv.proc.pid}"
    assert tmp.is_dir()
    assert srv.stop(signal.SIGTERM) == 0
    assert not tmp.exists()
    assert "stopped by SIGTERM" in srv.log[-1]


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1040")


@pytest.fixture
def browser(tmp_path):
    """Real headless Chromium (Debian's, installed by `make setup`) driven by Selenium, fresh profile."""
    import os

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = f"{CHROMIUM} / {CHROMEDRIVER} missing: run `make setup` as root (tools/setup_apt.py)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI's set-up installs them: a missing browser is a broken set-up there
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


def _wait_for_status(driver, timeout=90):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = driver.find_element(By.ID, "status")
    WebDriverWait(driver, timeout).until(lambda d: status.get_attribute("data-state") in ("done", "error"))
    return status.get_attribute("data-state"), status.text


@pytest.mark.slow
def test_page_in_headless_chromium(server, browser, tmp_path):
    """Upload through the page, wait for the cut-out, download it, compare it with the API's answer;
    a rejected file gets a clear message; a screenshot of the page is kept as a test artefact."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, downloads = browser
    photo = tmp_path / "coins.png"  # bright coins on a dark ground: what the bright-pixel model cuts out
    photo.write_bytes(png(real_photo(333, 423, "coins")))
    driver.get(server.url + "/")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    info = driver.find_element(By.ID, "model-info").text
    assert "Trained on" in info and "Default" in info
    driver.find_element(By.ID, "file").send_keys(str(photo))
    state, text = _wait_for_status(driver)
    assert state == "done", text
    for img in ("original", "mask", "result"):  # the three pictures side by side, decoded by the browser
        assert driver.execute_script(f"return document.getElementById('{img}').naturalWidth") == 333
    assert "foreground" in driver.find_element(By.ID, "meta").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve_page.png"
    assert driver.save_screenshot(str(shot)) and Image.open(shot).size[0] >= 1000
    driver.find_element(By.ID, "download").click()
    target = downloads / "coins_cutout.png"
    WebDriverWait(driver, 30).until(lambda d: target.exists() and not list(downloads.glob("*.crdownload")))
    api = decode(remove(server, photo.read_bytes(), "coins.png").body)
    assert np.array_equal(decode(target.read_bytes()), api)
    # a file that is not an image: the page says why, with the server's status
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture\n" * 10)
    driver.find_element(By.ID, "file").send_keys(str(bad))
    state, text = _wait_for_status(driver)
    assert state == "error" and "HTTP 415" in text and "notes.png" in text
