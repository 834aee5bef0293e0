"""`prep fetch`: the download, checksum and extraction code against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
from fcnkit.cli.prep import main
from fcnkit.errors import UserError
from fcnkit.io.download import download
from fcnkit.prep.composite import resolve_backgrounds
from fcnkit.prep.fetch import DATASETS, fetch
from prep_util import write_voc_tar

pytestmark = pytest.mark.network


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus `Range: bytes=N-` (206) so resuming is exercised; counts requests."""

    hits: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        type(self).hits.append((self.path, self.headers.get("Range")))
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            try:
                data = open(path, "rb").read()
            except OSError:
                self.send_error(404)
                return
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            self.wfile.write(data[start:])
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    _RangeHandler.hits = []
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(root))
    )
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads_verifies_and_extracts(server, tmp_path, capsys):
    www, url = server
    digest = write_voc_tar(www / "voc.tar")
    dest = tmp_path / "data"
    rc = main(
        ["fetch", "voc2012", "--dest", str(dest), "--url", f"{url}/voc.tar", "--sha256", digest, "--quiet"]
    )
    assert rc == 0 and "downloaded and extracted" in capsys.readouterr().out
    assert (dest / "VOCdevkit/VOC2012/ImageSets/Segmentation/trainval.txt").is_file()
    assert (dest / DATASETS["voc2012"].filename).is_file()
    assert sorted(p.name for p in dest.iterdir()) == [
        "VOCdevkit",
        DATASETS["voc2012"].filename,
    ]  # no temp left
    assert len(resolve_backgrounds(dest / "VOCdevkit", "train")) == 2  # ready for `prep composite`
    n = len(_RangeHandler.hits)
    assert main(["fetch", "voc2012", "--dest", str(dest), "--url", f"{url}/voc.tar", "--sha256", digest]) == 0
    assert "already present" in capsys.readouterr().out and len(_RangeHandler.hits) == n  # no second download


def test_checksum_mismatch_keeps_nothing(server, tmp_path, capsys):
    www, url = server
    write_voc_tar(www / "voc.tar")
    dest = tmp_path / "data"
    rc = main(
        ["fetch", "voc2012", "--dest", str(dest), "--url", f"{url}/voc.tar", "--sha256", "0" * 64, "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "checksum mismatch" in err and len(err.strip().splitlines()) == 1
    assert list(dest.iterdir()) == []
    with pytest.raises(UserError, match="needs the archive's checksum"):
        fetch("voc2012", dest, url=f"{url}/voc.tar")


def test_http_errors_and_unreachable_hosts_are_one_line(server, tmp_path):
    _, url = server
    with pytest.raises(UserError, match="HTTP 404"):
        download(f"{url}/missing.tar", tmp_path / "x.tar", algo="sha256", digest="0" * 64, quiet=True)
    with pytest.raises(UserError, match="cannot connect"):
        download(
            "http://127.0.0.1:9/x.tar",
            tmp_path / "x.tar",
            algo="sha256",
            digest="0" * 64,
            quiet=True,
            timeout=5,
        )
    assert not list(tmp_path.glob("x.tar*"))


def test_interrupted_download_resumes_with_range(server, tmp_path):
    www, url = server
    digest = write_voc_tar(www / "voc.tar")
    data = (www / "voc.tar").read_bytes()
    dest = tmp_path / "voc.tar"
    (tmp_path / "voc.tar.part").write_bytes(data[: len(data) // 3])  # what a dropped connection leaves
    download(f"{url}/voc.tar", dest, algo="sha256", digest=digest, quiet=True)
    assert dest.read_bytes() == data and not (tmp_path / "voc.tar.part").exists()
    assert _RangeHandler.hits[-1][1] == f"bytes={len(data) // 3}-"


def test_archive_escaping_its_folder_is_refused(server, tmp_path):
    www, url = server
    digest = write_voc_tar(www / "voc.tar", evil=True)
    dest = tmp_path / "a" / "b"
    with pytest.raises(UserError, match="refusing the archive"):
        fetch("voc2012", dest, url=f"{url}/voc.tar", algo="sha256", digest=digest, quiet=True)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()
    assert not (dest / "VOCdevkit").exists() and not list(dest.glob(".extract-tmp-*"))
