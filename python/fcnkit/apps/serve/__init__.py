"""`fcnkit serve`: ExtractNet's upload page and an HTTP API for background removal (FastAPI on uvicorn).

    catalog.py   the models, loaded once at start-up through fcnkit.inference; the default
    jobs.py      the bounded queue and worker pool; one request's work (decode, predict, render)
    app.py       routes, limits, JSON errors, the OpenAPI schema
    client.py    a standard-library client (tests, bench, scripts)
    static/      the page: plain HTML, CSS and JS served by the app

`run_server` binds the socket itself (so `--port 0` can print the port it got), keeps uploads in a temp
folder of its own (`$TMPDIR/fcnkit-serve-PID`, mode 0700) that it removes on exit (a later start removes
those of killed servers), and stops on Ctrl-C / SIGTERM: running requests finish, then it exits 0.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fcnkit.apps.serve.app import Limits, create_app
from fcnkit.apps.serve.catalog import load_catalog, map_large_blocks, rss_mib
from fcnkit.apps.serve.jobs import JobQueue
from fcnkit.errors import Interrupted, UserError
from fcnkit.io.atomic import remove_stale

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
DEFAULT_WORKERS, DEFAULT_MAX_QUEUE = 2, 8
DEFAULT_MAX_BYTES = 20_000_000   # 20 MB: any phone photo
DEFAULT_MAX_PIXELS = 16_000_000  # 16 MP: about 4900 x 3300
# What a running request holds per image pixel, whatever the model: the decoded image and its transient
# decoder copies (~10 B), the one full-size float log-odds map (4 B; nets run at --max-side and only the
# log-odds are resized back), the mask and the rendered picture (~6 B), its encoding. Measured: a 4000x4000
# upload peaks at ~19 B/pixel (tests/apps/test_serve_memory.py holds the bound under load).
BYTES_PER_PIXEL = 32
DEFAULT_MAX_SIDE = 2048          # as remove-bg: larger images are scored downscaled, masks resized back
DEFAULT_READ_TIMEOUT = 60.0      # seconds for a whole request body: a trickling client frees its slot then
TMP_PREFIX = "fcnkit-serve-"


@dataclass
class ServeConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    models: list[str] | None = None
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "fp32"
    workers: int = DEFAULT_WORKERS
    max_queue: int = DEFAULT_MAX_QUEUE
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE
    read_timeout: float = DEFAULT_READ_TIMEOUT


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                        "(0 = any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def memory_bound_mib(cfg: ServeConfig, base_mib: float, forward_mib: float) -> float:
    """The most resident memory the server should reach, in MiB: what it holds after start-up, plus per
    running request (one per worker) BYTES_PER_PIXEL x --max-pixels and the largest model's forward pass at
    --max-side (measured at start-up), plus per admitted request twice --max-bytes (the body and its copy)."""
    per_running = BYTES_PER_PIXEL * cfg.max_pixels / 2**20 + forward_mib
    bodies = (cfg.workers + cfg.max_queue) * 2 * cfg.max_bytes / 2**20
    return base_mib + cfg.workers * per_running + bodies


def run_server(cfg: ServeConfig, log=print) -> int:
    """Bind, load the models, serve until Ctrl-C / SIGTERM; the temp folder is removed on the way out."""
    import uvicorn  # noqa: PLC0415  (only `serve` runs a server)

    from fcnkit.apps.serve.protocol import JsonH11Protocol  # noqa: PLC0415  (imports uvicorn: only here)


    sock = bind(cfg.host, cfg.port)  # first: a taken port fails before minutes of model loading
    tmp_root = Path(tempfile.gettempdir())
    remove_stale(tmp_root, TMP_PREFIX)  # left by servers that were killed
    tmp_dir = tmp_root / f"{TMP_PREFIX}{os.getpid()}"
    # SIGTERM is an exception from here on, so the clean-up below always runs. (uvicorn shuts down gracefully
    # on SIGINT/SIGTERM, then raises the signal again with the handler found at start: this one.)
    previous = signal.signal(signal.SIGTERM, _stop)
    how, queue = "stopped", None
    try:
        map_large_blocks()  # freed image buffers go back to the system: resident memory follows the requests
        probe = cfg.max_side or int(cfg.max_pixels ** 0.5)  # the largest image a net will be run on
        catalog = load_catalog(cfg.models, backend=cfg.backend, device=cfg.device, precision=cfg.precision,
                               max_side=cfg.max_side, probe_side=probe, log=log)
        base_mib = rss_mib()[0]
        bound = memory_bound_mib(cfg, base_mib, max(e.forward_mib for e in catalog.entries.values()))
        default = catalog.entries[catalog.default]
        log(f"serve: default model {catalog.default}: {default.description}; trained on {default.trained_on} "
            f"({catalog.why_default})")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(mode=0o700)
        # Multipart uploads over 1 MB spill into an unnamed temporary file: make that live in our folder too.
        tempfile.tempdir = str(tmp_dir)
        queue = JobQueue(cfg.workers, cfg.max_queue)
        app = create_app(catalog, queue, Limits(cfg.max_bytes, cfg.max_pixels, cfg.read_timeout, round(bound)), tmp_dir)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        if not is_loopback(cfg.host):
            log(f"serve: note: listening on {cfg.host}, reachable from other machines; there is no authentication")
        log(f"serve: {cfg.workers} worker(s), queue {cfg.max_queue}, limits {cfg.max_bytes:,} bytes / "
            f"{cfg.max_pixels:,} pixels; uploads are decoded from {tmp_dir} (removed on exit)")
        log(f"serve: memory bound {bound:,.0f} MiB = {base_mib:,.0f} after start-up + {cfg.workers} running x "
            f"({BYTES_PER_PIXEL} B x {cfg.max_pixels:,} px + the forward pass) + "
            f"{cfg.workers + cfg.max_queue} admitted x 2 x {cfg.max_bytes:,} B")
        log(f"serve: listening on http://{shown}:{port} (Ctrl-C stops)")
        sys.stdout.flush()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                               timeout_graceful_shutdown=10, http=JsonH11Protocol))
        server.run(sockets=[sock])
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as errors.Interrupted
        how = f"stopped by {'SIGTERM' if isinstance(exc, Interrupted) else 'Ctrl-C'}"
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        tempfile.tempdir = None
        shutil.rmtree(tmp_dir, ignore_errors=True)
    served = f"; {queue.served} request(s) served, {queue.rejected} turned away (queue full)" if queue else ""
    log(f"serve: {how}{served}")
    return 0


def _stop(signum, frame):
    raise Interrupted()
