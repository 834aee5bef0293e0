"""`make demo`: the project's main job, run small enough for a CPU.

Today: builds a small synthetic segmentation set as paired Caffe LMDBs, generates a tiny-width FCN-32s
with the project's NetSpec generator, and trains it with real Caffe through the `solve` driver.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fcnkit import nets
from fcnkit.errors import cli_entry
from fcnkit.lmdb_io import LMDBWriter, encode_datum
from fcnkit.solve import run_solver


def ellipse_set(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright ellipses on dark noise: (N, 3, S, S) BGR images and (N, 1, S, S) masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.integers(0, 80, (n, 3, size, size), dtype=np.uint8)
    labels = np.zeros((n, 1, size, size), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.15, 0.35, 2) * size
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        labels[i, 0][inside] = 1
        images[i][:, inside] = rng.integers(140, 255, (3, 1), dtype=np.uint8)
    return images, labels


@cli_entry("demo")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--iters", type=int, default=100)
    a = p.parse_args(argv)
    data = a.out / "data"
    for split, (n, seed) in {"train": (60, 0), "val": (12, 1)}.items():
        images, labels = ellipse_set(n, 64, seed)
        for kind, arrays in (("image", images), ("label", labels)):
            with LMDBWriter(data / f"{split}_{kind}_lmdb") as w:
                for i, arr in enumerate(arrays):
                    w.put(f"{i:08d}", encode_datum(arr))
    net = a.out / "fcn32s_tiny_train.prototxt"
    net.write_text(str(nets.fcn(32, "train", width=1 / 16, data=nets.DataSpec(str(data), batch_size=4))))
    solver = a.out / "solver.prototxt"
    solver.write_text(f'net: "{net}"\nbase_lr: 1e-7\nlr_policy: "fixed"\nmomentum: 0.9\nweight_decay: 0.0005\n'
                      f'max_iter: {a.iters}\ndisplay: 10\nsnapshot_prefix: "{a.out}/snapshots/fcn32s_tiny"\n'
                      'random_seed: 0\n')
    r = run_solver(solver)
    print(f"demo: trained tiny FCN-32s for {r['iter']} iterations in {r['seconds']:.1f}s, "
          f"final loss {r['loss']:.1f}; snapshots in {a.out}/snapshots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
