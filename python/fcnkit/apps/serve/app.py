"""The FastAPI application: the upload page, the API, limits. It holds no model code: every prediction is a
`fcnkit.inference.Predictor` from the catalog, run by the job queue's worker threads.

    GET  /                  the upload page (static/index.html, app.js, app.css; nothing from outside)
    POST /api/remove        the picture: cut-out, mask, or the object on a colour (PNG, WebP or JPEG)
    POST /api/remove.json   the mask's metadata (fcnkit.apps.metadata), optionally with both pictures
    GET  /api/models        the models offered, which is the default and what each was trained on
    GET  /healthz           liveness, models and queue state
    GET  /api/openapi.json  the OpenAPI schema (/api/docs: a readable list of it)

Uploads: multipart/form-data with the image in field `file` (parameters as form fields or in the query
string), or the raw image as the request body (`Content-Type: image/...`, parameters in the query string).
Errors are JSON `{"error": ..., "code": ..., "status": ...}`: 400 bad parameter or broken image, 408 body not
received within the read deadline, 413 over the byte or pixel limit, 415 not an image, 429 queue full (with
Retry-After). Requests that are not HTTP at all (garbage bytes, malformed chunked framing) are refused by
the HTTP parser before the application sees them: JSON 400 `bad-http` and the connection closed (protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import traceback
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from fcnkit.apps.cutout import FORMATS, OUTPUTS, POSTPROCESS
from fcnkit.apps.serve.catalog import Catalog
from fcnkit.apps.serve.jobs import ApiError, JobQueue, parse_params, process

STATIC = Path(str(resources.files("fcnkit.apps.serve") / "static"))
DRAIN_FACTOR = 4  # a rejected upload is read and discarded up to this many times max_bytes, so the client
                  # gets its answer instead of a reset connection; beyond that the connection is closed
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                                           "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff"}
PARAMETERS = [  # (name, JSON schema, description): documented once, for the query string and the form
    ("model", {"type": "string"}, "model name from GET /api/models (default: the server's default model)"),
    ("postprocess", {"type": "string", "enum": [*POSTPROCESS, "true", "false"], "default": "none"},
     "ExtractNet's mask clean-up (blur 27, threshold 0.5, opening 39)"),
    ("output", {"type": "string", "enum": list(OUTPUTS), "default": "cutout"}, "cut-out or the mask"),
    ("bgcolor", {"type": "string", "pattern": r"^\d{1,3},\d{1,3},\d{1,3}(,\d{1,3})?$"},
     "r,g,b[,a] 0-255: the object on this colour instead of transparency"),
    ("format", {"type": "string", "enum": list(FORMATS), "default": "png"}, "file type (JPEG: no alpha)"),
    ("crop", {"type": "boolean", "default": False}, "crop to the subject's bounding box"),
    ("margin", {"type": "integer", "minimum": 0, "default": 0}, "pixels kept around the subject with crop"),
    ("images", {"type": "boolean", "default": False}, "remove.json only: include mask and result as data: URLs"),
]
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}, "code": {"type": "string"},
                                                 "status": {"type": "integer"}}}


@dataclass
class Limits:
    max_bytes: int
    max_pixels: int
    read_timeout: float = 60.0  # seconds for a request's whole body
    memory_mib: int | None = None  # the bound the server computed at start-up (fcnkit.apps.serve.memory_bound_mib)


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


class BodyLimit:
    """ASGI middleware: counts request body bytes; past the request's limit, reading the body raises
    BodyTooLarge (the handler answers 413). The limit lives in the scope, so a handler can raise it to
    drain a rejected upload. The whole body must arrive within `read_timeout` seconds of the request's start,
    else reading it raises BodyTimeout (the handler answers 408): a client trickling its body cannot hold an
    admission slot for longer than that."""

    def __init__(self, app, max_bytes: int, read_timeout: float = 60.0):
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        budget = scope["fcnkit.body"] = {"limit": self.max_bytes, "seen": 0}
        deadline = asyncio.get_running_loop().time() + self.read_timeout

        async def counted():
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                budget["seen"] += len(message.get("body", b""))
                if budget["seen"] > budget["limit"]:
                    raise BodyTooLarge()
            return message

        return await self.app(scope, counted, send)


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse({"error": err.message, "code": err.code, "status": err.status}, status_code=err.status,
                        headers=err.headers)


def _openapi(json_out: bool, media: dict) -> dict:
    props = {"file": {"type": "string", "format": "binary", "description": "the image"}}
    props.update({n: {**s, "description": d} for n, s, d in PARAMETERS if json_out or n != "images"})
    errors = {str(s): {"description": d, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
              for s, d in ((400, "bad parameter or broken image"), (413, "over the byte or pixel limit"),
                           (415, "not an image"), (429, "queue full; see Retry-After"))}
    return {
        "parameters": [{"name": n, "in": "query", "required": False, "schema": s, "description": d}
                       for n, s, d in PARAMETERS if json_out or n != "images"],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": props}},
            "image/*": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": {"description": "the result", "content": media}, **errors},
    }


def _safe_stem(filename: str | None) -> str:
    stem = Path(filename or "image").stem
    return re.sub(r"[^\w.-]", "_", stem)[:80] or "image"


def create_app(catalog: Catalog, queue: JobQueue, limits: Limits, tmp_dir: Path) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        queue.shutdown()  # running jobs finish, waiting ones are dropped

    app = FastAPI(title="fcnkit serve", version="1", description=__doc__.split("\n\n")[0], lifespan=lifespan,
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes, read_timeout=limits.read_timeout)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def reject(request: Request, err: ApiError) -> JSONResponse:
        """Answer without using the body, after reading (and dropping) what the client is still sending."""
        budget = request.scope["fcnkit.body"]
        budget["limit"] = DRAIN_FACTOR * limits.max_bytes
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) <= budget["limit"]:
            with contextlib.suppress(BodyTooLarge, BodyTimeout, Exception):
                async for _ in request.stream():
                    pass
        if budget["seen"] > budget["limit"] or (length.isdigit() and int(length) > budget["limit"]):
            err.headers["Connection"] = "close"
        return error_response(err)

    async def read_upload(request: Request) -> tuple[bytes, dict, str | None, list]:
        """(image bytes, parameters, file name, things to close) from a multipart form or a raw body."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        values = dict(request.query_params)
        if ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=len(PARAMETERS) + 1)
            except MultiPartException as exc:
                raise ApiError(400, f"malformed multipart form ({exc.message})", "bad-form") from None
            upload = form.get("file")
            values.update({k: v for k, v in form.items() if k != "file" and isinstance(v, str)})
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "no image: send it as the multipart file field `file`", "no-file")
            return await upload.read(), values, upload.filename, [form]
        if ctype.startswith("image/") or ctype == "application/octet-stream":
            return await request.body(), values, None, []
        raise ApiError(415, f"unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data with the "
                            "image in field `file`, or the image itself with Content-Type image/...",
                       "bad-content-type")

    async def handle(request: Request, as_json: bool):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_bytes:
            return await reject(request, ApiError(413, f"upload of {int(length):,} bytes is over the "
                                                       f"{limits.max_bytes:,}-byte limit", "too-many-bytes"))
        if not queue.try_admit():
            return await reject(request, ApiError(429, f"busy: all {queue.capacity} places in the queue are taken; "
                                                       "retry later", "queue-full",
                                                  {"Retry-After": str(queue.retry_after())}))
        closers = []
        try:
            try:
                data, values, filename, closers = await read_upload(request)
            except BodyTooLarge:
                return await reject(request, ApiError(413, f"upload is over the {limits.max_bytes:,}-byte limit",
                                                      "too-many-bytes"))
            except BodyTimeout:
                return error_response(ApiError(408, f"the request body did not arrive within "
                                                    f"{limits.read_timeout:g} s; send it faster or retry",
                                               "body-timeout", {"Connection": "close"}))
            params = parse_params(values, catalog)
            result = await queue.run(process, data, params, tmp_dir, limits.max_pixels, as_json)
            if as_json:
                return JSONResponse(result)
            body, media_type = result
            name = f"{_safe_stem(filename)}_{params.look.output}{params.look.extension}"
            return Response(body, media_type=media_type, headers={
                "Content-Disposition": f'inline; filename="{name}"', "X-Model": params.entry.name})
        except ApiError as err:
            return error_response(err)
        finally:
            queue.release()
            for c in closers:
                await c.close()

    image_media = {m: {"schema": {"type": "string", "format": "binary"}}
                   for m in ("image/png", "image/webp", "image/jpeg")}
    json_media = {"application/json": {"schema": {"type": "object"}}}

    @app.post("/api/remove", summary="Remove the background: the cut-out, mask or object on a colour",
              openapi_extra=_openapi(False, image_media), response_class=Response)
    async def api_remove(request: Request):
        return await handle(request, as_json=False)

    @app.post("/api/remove.json", summary="The mask's metadata: size, coverage, box, uncertain share, flags",
              openapi_extra=_openapi(True, json_media))
    async def api_remove_json(request: Request):
        return await handle(request, as_json=True)

    @app.get("/api/models", summary="The models this server offers")
    async def api_models():
        return {"default": catalog.default, "why_default": catalog.why_default, "models": catalog.infos(),
                "limits": {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels,
                           "memory_bound_mib": limits.memory_mib}}

    @app.get("/healthz", summary="Liveness, models and queue state")
    async def healthz():
        return {"status": "ok", "models": list(catalog.entries), "default": catalog.default, "queue": queue.state()}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/api/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html", headers=PAGE_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(ApiError(exc.status_code, str(exc.detail), "http-error", dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error_response(ApiError(400, f"bad request: {first.get('msg', exc)}", "bad-request"))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        traceback.print_exception(exc, file=sys.stderr)
        return error_response(ApiError(500, f"internal error ({type(exc).__name__}); see the server log",
                                       "internal"))

    return app
