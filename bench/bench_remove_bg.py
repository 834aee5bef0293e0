#!/usr/bin/env python3
"""remove-bg throughput (images/s) per backend at 224² and 1024², reading and writing real files.

    python bench/bench_remove_bg.py [--model DIR] [--n 8] [--backends torch,caffe] [--sizes 224,1024]

Default model: the one `make demo` converted. Each size: N JPEG photos (a real scikit-image photo resized),
one warm-up image first, then the whole `remove_bg` loop (decode, net, argmax, PNG mask + RGBA cut-out).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import cv2  # noqa: E402
import skimage.data  # noqa: E402
from fcnkit.apps.remove_bg import make_backend, remove_bg  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--backends", default="torch,caffe")
    p.add_argument("--sizes", default="224,1024")
    a = p.parse_args()
    photo = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{'backend':<8} {'size':>6} {'images/s':>9}")
        for name in a.backends.split(","):
            backend = make_backend(name, a.model, log=lambda m: print(m, file=sys.stderr))
            for size in map(int, a.sizes.split(",")):
                paths = []
                for i in range(a.n + 1):
                    q = tmp / f"{size}_{i}.jpg"
                    cv2.imwrite(str(q), cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA))
                    paths.append(q)
                remove_bg(paths[:1], tmp / "warm", backend, max_side=0, log=lambda m: None)
                r = remove_bg(paths[1:], tmp / f"out_{name}_{size}", backend, max_side=0, log=lambda m: None)
                print(f"{name:<8} {size:>6} {len(r['done']) / r['seconds']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
