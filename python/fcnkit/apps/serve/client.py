"""A standard-library client for `fcnkit serve` (used by the tests and bench/bench_serve.py).

    from fcnkit.apps.serve.client import post_image, get
    r = post_image("http://127.0.0.1:7860/api/remove", open("photo.jpg", "rb").read(), "photo.jpg",
                   {"output": "mask"})
    r.status, r.headers["Content-Type"], r.body
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def multipart(data: bytes, filename: str, fields: dict | None = None,
              content_type: str = "application/octet-stream") -> tuple[bytes, str]:
    """(body, Content-Type header) of a multipart/form-data request with `file` and text fields."""
    boundary = "fcnkit" + secrets.token_hex(12)
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def request(url: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None,
            timeout: float = 120) -> Reply:
    """Any request; HTTP error statuses are returned as replies, not raised."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, dict(e.headers), e.read())


def get(url: str, timeout: float = 30) -> Reply:
    return request(url, timeout=timeout)


def post_image(url: str, data: bytes, filename: str = "image", fields: dict | None = None,
               content_type: str = "application/octet-stream", timeout: float = 120) -> Reply:
    body, ctype = multipart(data, filename, fields, content_type)
    return request(url, body, {"Content-Type": ctype}, "POST", timeout)
