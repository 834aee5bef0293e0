#!/usr/bin/env python3
"""`fcnkit serve` throughput and latency: requests/s, p50/p95 at 224² and 1024² for 1 and 4 concurrent
clients, beside remove-bg's images/s on the same model (the ratio server/CLI).

    python bench/bench_serve.py [--model REF] [--sizes 224,1024] [--clients 1,4] [--requests 16]
                                [--workers 2] [--backend auto]

A real server process on 127.0.0.1 (`--port 0`, queue large enough that nothing is turned away); each
client sends its requests one after another (POST /api/remove, PNG cut-out) after 2 warm-up requests.
The CLI figure is the remove-bg loop in this process writing the same cut-out PNG (`--output cutout`),
so the ratio is what HTTP, multipart and the queue cost or gain. The machine is shared: figures vary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_remove_bg import cli_rate, photo_png  # noqa: E402
from fcnkit import inference  # noqa: E402
from fcnkit.apps.serve.client import ServerProcess, get, post_image  # noqa: E402


def load(url: str, data: bytes, clients: int, per_client: int) -> tuple[float, list[float]]:
    """(requests/s, latencies in s) of `clients` threads each sending `per_client` requests in turn."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def client():
        go.wait()
        for _ in range(per_client):
            t0 = time.perf_counter()
            r = post_image(url, data, "photo.png")
            dt = time.perf_counter() - t0
            with lock:
                (latencies if r.status == 200 else failures).append(dt if r.status == 200 else r.status)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"bench_serve: {len(failures)} request(s) failed: statuses {sorted(set(failures))}")
    return len(latencies) / wall, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model reference (default: the server's default, the best found locally)")
    p.add_argument("--sizes", default="224,1024")
    p.add_argument("--clients", default="1,4")
    p.add_argument("--requests", type=int, default=16, help="requests per size and client count (default 16)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", default="auto")
    a = p.parse_args()
    sizes, client_counts = [int(s) for s in a.sizes.split(",")], [int(c) for c in a.clients.split(",")]
    args = ["--workers", str(a.workers), "--max-queue", str(4 * max(client_counts)), "--backend", a.backend,
            "--max-bytes", str(50_000_000)]
    srv = ServerProcess([*args, *(["--model", a.model] if a.model else [])]).start()
    try:
        default = next(line for line in srv.log if "default model" in line)
        print(f"# {default}")
        print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: figures vary); "
              f"server: {a.workers} worker(s), backend {a.backend}")
        print(f"{'size':>6} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'CLI img/s':>9} {'ratio':>6}")
        offered = get(f"{srv.url}/api/models").json()["models"]
        model_ref = a.model or next(m["reference"] for m in offered if m["default"])
        predictor = inference.load(model_ref, backend=a.backend)
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                data = photo_png(size)
                cli = cli_rate(predictor, size, max(4, a.requests // 2), Path(tmp), "cutout")
                for c in client_counts:
                    load(f"{srv.url}/api/remove", data, 1, 2)  # warm-up
                    rate, lat = load(f"{srv.url}/api/remove", data, c, max(1, a.requests // c))
                    print(f"{size:>6} {c:>7} {rate:>7.2f} {1000 * pct(lat, 50):>8.0f} {1000 * pct(lat, 95):>8.0f} "
                          f"{cli:>9.2f} {rate / cli:>6.2f}", flush=True)
        rss = srv.rss_kib()
        print(f"# server memory: VmRSS {rss['VmRSS'] / 1024:.0f} MiB, peak VmHWM {rss['VmHWM'] / 1024:.0f} MiB")
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
