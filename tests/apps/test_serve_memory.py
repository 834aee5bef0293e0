"""The server's memory bound holds under load with images at the pixel limit: 64 clients at once, each
uploading a 4000x4000 PNG of zeros (16,000,000 pixels, the default --max-pixels; 54 kB on the wire). Every
answer is 200 or 429 (with Retry-After), and the server's peak resident memory (VmHWM) stays under the bound
it computed and printed at start-up (fcnkit.apps.serve.memory_bound_mib, also in GET /api/models)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from fcnkit.apps.serve.client import get, post_image
from serve_helpers import ARTIFACTS, at_once, start_server

pytestmark = [pytest.mark.network, pytest.mark.slow]

CLIENTS = 64
SIDE = 4000


def test_64_clients_with_16_megapixel_images_stay_under_the_memory_bound(threshold_model):
    data = cv2.imencode(".png", np.zeros((SIDE, SIDE, 3), np.uint8))[1].tobytes()
    srv = start_server(threshold_model, "--workers", "2", "--max-queue", "8")  # default byte and pixel limits
    try:
        bound = get(f"{srv.url}/api/models").json()["limits"]["memory_bound_mib"]
        assert any("memory bound" in line for line in srv.log), srv.log
        start = srv.rss_kib()
        replies = at_once(CLIENTS, lambda: post_image(f"{srv.url}/api/remove", data, "zeros.png",
                                                       fields={"output": "mask"}, timeout=600))
        statuses = [getattr(r, "status", repr(r)) for r in replies]
        assert set(statuses) <= {200, 429}, statuses
        ok = [r for r in replies if r.status == 200]
        assert len(ok) >= 2, statuses
        for r in ok:
            mask = cv2.imdecode(np.frombuffer(r.body, np.uint8), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (SIDE, SIDE)
        for r in replies:
            if r.status == 429:
                assert int(r.headers["retry-after"]) >= 1
        health = get(f"{srv.url}/healthz").json()
        assert health["queue"]["admitted"] == 0
        rss = srv.rss_kib()
    finally:
        srv.stop()
    peak_mib = rss["VmHWM"] / 1024
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    record = {"clients": CLIENTS, "side": SIDE, "ok": len(ok), "busy": statuses.count(429),
              "start_rss_mib": start["VmRSS"] / 1024, "peak_mib": peak_mib, "bound_mib": bound}
    (ARTIFACTS / "serve_memory.json").write_text(json.dumps(record) + "\n")
    print(f"\nmemory: {record}")
    assert peak_mib <= bound, record
