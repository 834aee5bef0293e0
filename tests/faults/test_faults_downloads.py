"""Downloads under faults, against a real HTTP server on 127.0.0.1 that misbehaves on purpose: a connection
dropped mid-body keeps NAME.part and the next run resumes it with a Range request (not a checksum mismatch and a
restart from zero); a deploy prototxt cut short is refused, never kept under its final name, and one already
on disk is fetched again; an archive with an absolute, '..' or link member is refused as a whole."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import pytest
from fcnkit.errors import UserError
from fcnkit.io.download import download
from fcnkit.prep.fetch import extract

pytestmark = pytest.mark.network

BLOB = bytes(range(256)) * 4096  # 1 MiB


class Flaky(http.server.BaseHTTPRequestHandler):
    """GET /blob: the first answer announces the whole body, sends half and closes; later ones honour Range.
    GET /short: a body the server itself cut (Content-Length says so: nothing looks wrong on the wire)."""

    files: dict[str, bytes] = {}
    served: list[str] = []
    ranges: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        rng = self.headers.get("Range")
        self.ranges.append(rng or "")
        first = name not in self.served
        self.served.append(name)
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if first and name == "blob":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def flaky():
    Flaky.served, Flaky.ranges = [], []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_a_dropped_connection_keeps_the_part_and_resumes_with_range(flaky, tmp_path):
    Flaky.files = {"blob": BLOB}
    digest = hashlib.sha256(BLOB).hexdigest()
    dest = tmp_path / "blob.bin"
    with pytest.raises(UserError, match="rerun to resume") as exc:
        download(f"{flaky}/blob", dest, algo="sha256", digest=digest, quiet=True, timeout=10)
    assert "checksum" not in str(exc.value)
    part = dest.with_name("blob.bin.part")
    assert part.stat().st_size == len(BLOB) // 2 and not dest.exists()
    download(f"{flaky}/blob", dest, algo="sha256", digest=digest, quiet=True, timeout=10)
    assert dest.read_bytes() == BLOB and not part.exists()
    assert Flaky.ranges[-1] == f"bytes={len(BLOB) // 2}-"  # resumed, not restarted


def test_a_truncated_deploy_prototxt_is_refused_and_refetched(flaky, tmp_path):
    from fcnkit.models.encoders.releases import RELEASES, expected_shapes, fetch_release

    rel = RELEASES["vgg16"]
    text = "".join(f'layer {{ name: "{n}" type: "Convolution" }}\n' for n in expected_shapes(rel)).encode()
    Flaky.files = {"deploy": text[: len(text) // 3]}
    dest = tmp_path / "w"
    with pytest.raises(UserError, match="not usable"):
        fetch_release(rel, dest, model_url=f"{flaky}/nothing", deploy_url=f"{flaky}/deploy", quiet=True)
    assert not (dest / rel.deploy_file).exists() and not list(dest.glob("*.part"))
    # a truncated deploy left by an older version is not trusted: it is fetched again (then the model, absent
    # from this server, stops the run)
    (dest / rel.deploy_file).write_bytes(text[: len(text) // 3])
    Flaky.files["deploy"] = text
    with pytest.raises(UserError, match="HTTP"):
        fetch_release(rel, dest, model_url=f"{flaky}/nothing", deploy_url=f"{flaky}/deploy", quiet=True)
    assert (dest / rel.deploy_file).read_bytes() == text


def _tar(tmp_path, name: str, member: tarfile.TarInfo, data: bytes = b"x"):
    path = tmp_path / name
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("top/check.txt")
        ok.size = 1
        tf.addfile(ok, io.BytesIO(b"1"))
        member.size = len(data) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _link(name, kind, target):
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, target
    return m


@pytest.mark.parametrize("member", [tarfile.TarInfo("/etc/evil"), tarfile.TarInfo("top/../../evil"),
                                    _link("top/l", tarfile.SYMTYPE, "/etc/passwd"),
                                    _link("top/h", tarfile.LNKTYPE, "top/check.txt")],
                         ids=["absolute", "dotdot", "symlink", "hardlink"])
def test_unsafe_tar_members_refuse_the_archive(tmp_path, member):
    archive = _tar(tmp_path, "a.tar", member)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UserError, match="refusing the archive"):
        extract(archive, dest, top="top", check="top/check.txt", quiet=True)
    assert not (dest / "top").exists() and not list(dest.iterdir())
