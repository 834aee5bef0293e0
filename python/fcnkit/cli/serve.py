"""`fcnkit serve`: the upload page and HTTP API for background removal (FastAPI + uvicorn).

Open http://127.0.0.1:7860/ for the page; the API is POST /api/remove (the picture), POST
/api/remove.json (the mask's metadata), GET /api/models, GET /healthz, schema at /api/openapi.json.

Models are loaded once at start-up: every --model REF given (the first is the default), or else every
registered model with trained weights on this machine, the best of them as the default. At most
--workers requests run at once and --max-queue more wait; beyond that the answer is 429 with Retry-After.
Uploads over --max-bytes (413), images declaring more than --max-pixels (413, checked before decoding),
non-images (415) and broken images (400) get a JSON error. It listens on 127.0.0.1 unless --host says
otherwise, never fetches URLs, and keeps uploads only in a temp folder it removes on exit.
"""

from __future__ import annotations

import argparse

from fcnkit.apps.serve import (
    DEFAULT_HOST,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_SIDE,
    DEFAULT_PORT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WORKERS,
    ServeConfig,
    run_server,
)
from fcnkit.cli import Parser
from fcnkit.cli.args import add_precision, count, device, number
from fcnkit.errors import cli_entry


@cli_entry("serve")
def main(argv=None) -> int:
    p = Parser(prog="fcnkit serve", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=count(0, 65535), default=DEFAULT_PORT,
                   help=f"default {DEFAULT_PORT}; 0 = any free port")
    p.add_argument("--model", action="append", metavar="REF",
                   help="a model to offer (repeatable): registered name, converted folder, "
                        "DEPLOY.prototxt:MODEL.caffemodel or checkpoint; default: every trained model found")
    p.add_argument("--backend", choices=["auto", "torch", "caffe"], default="auto")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    add_precision(p, "PyTorch arithmetic: fp32 (default), bf16, fp16 (CUDA)")
    p.add_argument("--workers", type=count(1), default=DEFAULT_WORKERS,
                   help=f"inference worker threads (default {DEFAULT_WORKERS})")
    p.add_argument("--max-queue", type=count(0), default=DEFAULT_MAX_QUEUE,
                   help=f"requests allowed to wait for a worker (default {DEFAULT_MAX_QUEUE}); more get 429")
    p.add_argument("--max-bytes", type=count(1), default=DEFAULT_MAX_BYTES,
                   help=f"largest upload in bytes (default {DEFAULT_MAX_BYTES:,}); more get 413")
    p.add_argument("--max-pixels", type=count(1), default=DEFAULT_MAX_PIXELS,
                   help=f"largest image in pixels, checked before decoding (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--max-side", type=count(0), default=DEFAULT_MAX_SIDE,
                   help=f"score larger images downscaled to this side (default {DEFAULT_MAX_SIDE}; 0 = never)")
    p.add_argument("--read-timeout", type=number(above=0, high=3600), default=DEFAULT_READ_TIMEOUT,
                   help=f"seconds a request's whole body may take to arrive (default {DEFAULT_READ_TIMEOUT:g}); "
                        "slower ones get 408")
    a = p.parse_args(argv)
    cfg = ServeConfig(host=a.host, port=a.port, models=a.model, backend=a.backend, device=a.device,
                      precision=a.precision, workers=a.workers, max_queue=a.max_queue, max_bytes=a.max_bytes,
                      max_pixels=a.max_pixels, max_side=a.max_side, read_timeout=a.read_timeout)
    return run_server(cfg, log=lambda m: print(m, flush=True))
