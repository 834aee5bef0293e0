"""A standard-library client for `fcnkit serve`, and the server as a child process (tests, bench_serve.py).

    from fcnkit.apps.serve.client import post_image, get
    r = post_image("http://127.0.0.1:7860/api/remove", open("photo.jpg", "rb").read(), "photo.jpg",
                   {"output": "mask"})
    r.status, r.headers["Content-Type"], r.body
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


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


class ServerProcess:
    """`fcnkit serve ... --port 0` as a child process; `start()` returns once it prints its address."""

    def __init__(self, args: list[str], command: list[str] | None = None):
        self.cmd = [*(command or [sys.executable, "-m", "fcnkit", "serve"]), "--port", "0", *args]
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 180) -> ServerProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1)
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    self.url = m.group(1)
                    found.set()
            found.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not found.wait(timeout) or not self.url:
            self.stop(signal.SIGKILL)
            raise RuntimeError("fcnkit serve did not start:\n" + "\n".join(self.log))
        return self

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(10)  # every line it printed is in self.log
        return rc

    def rss_kib(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the server process, KiB (Linux)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(re.search(rf"^{k}:\s+(\d+) kB", text, re.M).group(1)) for k in ("VmRSS", "VmHWM")}
