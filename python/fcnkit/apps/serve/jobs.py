"""Back-pressure and the work of one request.

`JobQueue`: a fixed pool of inference worker threads and a bounded number of admitted requests
(`workers` running + `max_queue` waiting). A request is admitted before its body is read, so memory is
bounded by (workers + max_queue) x max_bytes however many clients connect; when the queue is full the
answer is 429 with a Retry-After estimated from recent job times.

`process(...)`: upload bytes -> decoded image (pixel limit checked from the header before decoding, EXIF
orientation applied) -> the model (one forward at a time per model) -> picture or metadata. The upload is
held in a temporary file inside the server's own temp folder only while it is decoded.
"""

from __future__ import annotations

import asyncio
import base64
import math
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fcnkit.apps.cutout import POSTPROCESS, Look, encode, parse_bgcolor, render, segment_many
from fcnkit.apps.metadata import describe
from fcnkit.apps.serve.catalog import Catalog, Entry
from fcnkit.io.images import ImageReadError, read_image

TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class ApiError(Exception):
    """An answer other than 200: HTTP status, one-line message, short machine-readable code."""

    def __init__(self, status: int, message: str, code: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# ImageReadError.code -> HTTP status: too many pixels is "too big"; anything that is not an image is 415;
# a file that is an image but broken is a bad request.
STATUS_OF_READ_ERROR = {"too-large": 413, "not-image": 415, "empty-file": 400, "corrupt": 400, "truncated": 400}


@dataclass(frozen=True)
class Params:
    entry: Entry
    postprocess: str | None
    look: Look
    images: bool = False  # remove.json: also the mask and the result as data: URLs


def _flag(name: str, text: str) -> bool:
    t = str(text).strip().lower()
    if t in TRUE:
        return True
    if t in FALSE:
        return False
    raise ApiError(400, f"{name} must be true or false, got {text!r}", "bad-parameter")


def parse_params(values: dict[str, str], catalog: Catalog) -> Params:
    """Request parameters (query string and form fields) -> Params; ApiError 400 naming the bad one."""
    known = {"model", "postprocess", "output", "bgcolor", "format", "crop", "margin", "images"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ApiError(400, f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                       "bad-parameter")
    try:
        entry = catalog.get(values.get("model"))
    except KeyError as exc:
        raise ApiError(400, exc.args[0], "unknown-model") from None
    pp = str(values.get("postprocess", "none")).strip().lower()
    if pp not in POSTPROCESS:
        if pp not in TRUE | FALSE:
            raise ApiError(400, f"postprocess must be none, extractnet, true or false, got {pp!r}", "bad-parameter")
        pp = "extractnet" if pp in TRUE else "none"
    try:
        bg = parse_bgcolor(values["bgcolor"]) if values.get("bgcolor") else None
        margin = str(values.get("margin", "0")).strip()
        if not margin.isdigit():
            raise ValueError(f"margin must be 0 or more pixels, got {margin!r}")
        look = Look(str(values.get("output", "cutout")).strip().lower(), bg,
                    str(values.get("format", "png")).strip().lower(), _flag("crop", values.get("crop", "false")),
                    int(margin))
    except ValueError as exc:
        raise ApiError(400, str(exc), "bad-parameter") from None
    return Params(entry, None if pp == "none" else pp, look, _flag("images", values.get("images", "false")))


def decode_upload(data: bytes, tmp_dir: Path, max_pixels: int):
    """Decode upload bytes with the project's reader; ApiError 413/415/400 for what cannot be used."""
    if not data:
        raise ApiError(400, "the uploaded file is empty (0 bytes)", "empty-file")
    with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-") as f:
        f.write(data)
        f.flush()
        try:
            return read_image(f.name, max_pixels=max_pixels, order="bgr")
        except ImageReadError as exc:
            status = STATUS_OF_READ_ERROR.get(exc.code, 400)
            hint = {413: "", 415: " (send a PNG, JPEG, WebP, BMP, TIFF or GIF image)"}.get(status, "")
            raise ApiError(status, f"{exc.reason}{hint}", exc.code) from None


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def process(data: bytes, params: Params, tmp_dir: Path, max_pixels: int, as_json: bool):
    """One request's work, in a worker thread: -> (body bytes, media type) or a metadata dict."""
    image = decode_upload(data, tmp_dir, max_pixels)
    entry = params.entry
    with entry.lock:
        [(mask, logit)] = segment_many(entry.predictor, [image], params.postprocess)
    look = params.look
    if not as_json:
        return encode(render(image, mask, look), look.fmt), look.media_type
    meta = describe(mask, logit, model=entry.name, backend=entry.predictor.name, postprocess=params.postprocess)
    if params.images:
        mask_look = Look("mask", None, "png", look.crop, look.margin)
        meta["images"] = {"mask": data_url(encode(render(image, mask, mask_look), "png"), "image/png"),
                          "result": data_url(encode(render(image, mask, look), look.fmt), look.media_type)}
    return meta


class JobQueue:
    """Admission control + the worker pool. `try_admit`/`release` are called from the event loop only."""

    def __init__(self, workers: int, max_queue: int):
        self.workers, self.max_queue = workers, max_queue
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fcnkit-serve")
        self.admitted = 0
        self.running = 0
        self.served = 0
        self.rejected = 0
        self._mean_seconds = 0.5  # running average of job times, for Retry-After
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue

    def try_admit(self) -> bool:
        if self.admitted >= self.capacity:
            self.rejected += 1
            return False
        self.admitted += 1
        return True

    def release(self) -> None:
        self.admitted -= 1

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the waiting jobs' share of the workers, at least 1."""
        return max(1, math.ceil(self._mean_seconds * (self.admitted - self.workers + 1) / self.workers))

    def _timed(self, fn, *args):
        t0 = time.perf_counter()
        with self._lock:
            self.running += 1
        try:
            return fn(*args)
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.running -= 1
                self.served += 1
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * dt

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._timed, fn, *args)

    def state(self) -> dict:
        return {"workers": self.workers, "max_queue": self.max_queue, "admitted": self.admitted,
                "running": self.running, "served": self.served, "rejected": self.rejected}

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
