"""Downloads with a checksum: streamed to NAME.part with a progress bar and hashed on the way.

A partial file from an interrupted run is resumed with an HTTP Range request when the server allows it: a
body shorter than the server announced (a dropped connection) keeps NAME.part and says "rerun to resume";
only a complete file whose checksum matches (and that `validate` accepts, for files without a published
checksum) is renamed to its final name; a complete file that fails either is deleted.
Used for datasets (`prep fetch`) and pretrained weights (`fetch-vgg16`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from fcnkit.errors import UserError

_CHUNK = 1 << 20


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str, dest: Path, *, algo: str, digest: str | None, quiet: bool = False, timeout: float = 60.0,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Download `url` to `dest` (via dest.part); verify `digest` (hex, `algo`) and `validate(part)` (raises
    UserError) before renaming."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.new(algo)
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "fcnkit-prep/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the .part is already complete
            resp = None
        else:
            raise UserError(
                f"{url}: download failed, HTTP {exc.code} {exc.reason}; check the URL or pass --url "
                "with a mirror"
            ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"{url}: cannot connect ({reason}); check the network, or download the file yourself "
            f"into {dest.parent} and rerun"
        ) from None
    try:
        if resp is not None and have and resp.status != 206:
            have = 0  # the server ignored Range: start over
        mode = "ab" if have else "wb"
        if have:
            with open(part, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        total = None
        if resp is not None and resp.headers.get("Content-Length", "").isdigit():
            total = have + int(resp.headers["Content-Length"])
        got_bytes = have
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=quiet,
                leave=False,
            ) as bar,
        ):
            while resp is not None and (chunk := resp.read(_CHUNK)):
                f.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
                got_bytes += len(chunk)
    except (OSError, http.client.HTTPException) as exc:  # a reset, a timeout, IncompleteRead
        raise UserError(f"{url}: download interrupted ({type(exc).__name__}: {exc}); {part} keeps what arrived, "
                        "rerun to resume") from None
    finally:
        if resp is not None:
            resp.close()
    if total is not None and got_bytes < total:
        raise UserError(f"{url}: the connection ended after {got_bytes:,} of {total:,} bytes; {part} keeps them, "
                        "rerun to resume")
    got = h.hexdigest()
    if digest and got.lower() != digest.lower():
        part.unlink(missing_ok=True)
        raise UserError(
            f"{url}: checksum mismatch ({algo} {got}, expected {digest}); the download is corrupt or "
            "the server sent another file; it was deleted, rerun to retry"
        )
    if validate is not None:
        try:
            validate(part)
        except UserError as exc:
            part.unlink(missing_ok=True)
            raise UserError(f"{url}: the download is not usable ({exc}); it was deleted, rerun to retry") from None
    os.replace(part, dest)
    return dest


