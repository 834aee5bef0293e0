#!/usr/bin/env python3
"""remove-bg throughput (images/s) per backend at 224² and 1024², reading and writing real files.

    python bench/bench_remove_bg.py [--model REF] [--n 8] [--backends torch,caffe] [--sizes 224,1024]
                                    [--batch-size 1] [--output both|cutout|mask]

Default model: what remove-bg uses without --model (the one `make demo` converted). Each size: N PNG photos
(a real scikit-image photo resized), one warm-up image first, then the whole `remove_bg` loop (decode, net,
mask, PNG encode, atomic writes). `cli_rate` is reused by bench_serve.py for the CLI-vs-server ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import cv2  # noqa: E402
import skimage.data  # noqa: E402
from fcnkit import inference  # noqa: E402
from fcnkit.apps.remove_bg import KINDS, expand_inputs, remove_bg  # noqa: E402


def photo_png(size: int) -> bytes:
    """A real photograph (scikit-image's coffee) resized to size x size, as PNG bytes."""
    bgr = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA))[1].tobytes()


def cli_rate(predictor, size: int, n: int, tmp: Path, output: str = "both", batch_size: int = 1) -> float:
    """images/s of the remove-bg loop over n files of size x size (after one warm-up image)."""
    src = tmp / f"in_{size}"
    src.mkdir(parents=True, exist_ok=True)
    data = photo_png(size)
    for i in range(n + 1):
        (src / f"{i:03d}.png").write_bytes(data)
    items = expand_inputs([str(src)])
    out = tmp / f"out_{predictor.name}_{size}_{output}"
    remove_bg(items[:1], out / "warm", predictor, kinds=KINDS[output], log=lambda m: None)
    r = remove_bg(items[1:], out, predictor, kinds=KINDS[output], batch_size=batch_size, log=lambda m: None)
    return len(r.done) / r.seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--backends", default="torch,caffe")
    p.add_argument("--sizes", default="224,1024")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--output", choices=list(KINDS), default="both")
    a = p.parse_args()
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: figures vary)")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'backend':<8} {'size':>6} {'images/s':>9}")
        for name in a.backends.split(","):
            predictor = inference.load(a.model, backend=name, batch_size=a.batch_size,
                                       log=lambda m: print(f"# {m}", file=sys.stderr))
            for size in map(int, a.sizes.split(",")):
                rate = cli_rate(predictor, size, a.n, Path(tmp), a.output, a.batch_size)
                print(f"{name:<8} {size:>6} {rate:>9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
