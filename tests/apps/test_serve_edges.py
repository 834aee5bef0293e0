"""The server at its edges: a PNG that is an image but broken (bad CRC, a 0x0 header) is 400, not 415; a
client trickling its body is answered 408 at the read deadline and frees its place, so others are served;
bytes that are not HTTP (garbage, broken chunked framing) get a JSON 400 too, and the server stays up.
A real `fcnkit serve` process on 127.0.0.1 with the threshold model (real Caffe weights converted)."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from fcnkit.apps.serve.client import get, post_image
from serve_helpers import disc, start_server

pytestmark = pytest.mark.network

DEADLINE = 3  # --read-timeout for this server, seconds


@pytest.fixture(scope="module")
def server(threshold_model):
    srv = start_server(threshold_model, "--workers", "1", "--max-queue", "1", "--read-timeout", str(DEADLINE))
    yield srv
    assert srv.stop() == 0, "\n".join(srv.log)
    assert not any("Traceback" in line for line in srv.log), "\n".join(srv.log)


def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) if crc is None
                                                                   else crc)


SIG = b"\x89PNG\r\n\x1a\n"
BROKEN = {
    "bad CRC": SIG + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0), crc=1) + _chunk(b"IEND", b""),
    "0x0 header": SIG + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)) + _chunk(b"IEND", b""),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_png_is_a_bad_request(server, case):
    r = post_image(f"{server.url}/api/remove", BROKEN[case], "broken.png")
    assert r.status == 400 and r.json()["code"] == "corrupt", r.body[:300]
    assert "PNG" in r.json()["error"]


def _trickler(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(b"POST /api/remove HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
              + b"\x89PNG")
    return s


def _read_all(s: socket.socket) -> str:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_trickling_bodies_get_408_at_the_deadline_and_free_their_places(server):
    data = cv2.imencode(".png", disc())[1].tobytes()
    slow = [_trickler(server) for _ in range(2)]  # the 2 places (1 worker + 1 waiting) are taken
    time.sleep(0.5)
    assert post_image(f"{server.url}/api/remove", data, "a.png").status == 429
    t0 = time.time()
    for s in slow:
        reply = _read_all(s)
        assert reply.startswith("HTTP/1.1 408"), reply[:200]
        assert '"code":"body-timeout"' in reply.replace(" ", "")
        s.close()
    assert time.time() - t0 < DEADLINE + 5
    r = post_image(f"{server.url}/api/remove", data, "a.png")
    assert r.status == 200, r.body[:300]
    assert get(f"{server.url}/healthz").json()["queue"]["admitted"] == 0


@pytest.mark.parametrize("garbage", [b"\x00\x01\x02 not http at all\r\n\r\n",
                                     b"POST /api/remove HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"zz\r\nbroken\r\n0\r\n\r\n"])
def test_bytes_that_are_not_http_are_refused_and_the_server_stays_up(server, garbage):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(garbage)
        reply = _read_all(s)
    assert reply.startswith("HTTP/1.1 400"), reply[:200]
    head, _, body = reply.partition("\r\n\r\n")
    assert "application/json" in head and json.loads(body)["code"] == "bad-http", reply[:400]
    assert get(f"{server.url}/healthz").status == 200
    img = np.full((20, 20, 3), 200, np.uint8)
    assert post_image(f"{server.url}/api/remove", cv2.imencode(".png", img)[1].tobytes(), "b.png").status == 200
