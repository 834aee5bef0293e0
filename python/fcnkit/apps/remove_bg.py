"""Cut the object out of photos: for each image a mask PNG and an RGBA cut-out at its own resolution.

The library behind `remove-bg` (its flags and the resolution rule: fcnkit.cli.remove_bg). Predictions come
from any `fcnkit.inference.Predictor`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fcnkit.io.images import IMAGE_EXTS

DEFAULT_MAX_SIDE = 2048


def cutout(pixels_bgr: np.ndarray, alpha: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """BGRA uint8: original colours, alpha 255 on the object (times the original alpha), 0 elsewhere."""
    a = mask.astype(np.uint8) * 255
    if alpha is not None:
        a = np.minimum(a, alpha)
    return np.dstack([pixels_bgr, a])


def expand_inputs(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
        else:
            out.append(p)
    return out


def remove_bg(paths: list[Path], out_dir: Path, predictor, *, postprocess: str | None = None) -> dict:
    """Mask + cut-out for every readable image; unreadable ones are reported on stderr and listed."""
    from fcnkit.io.images import ImageReadError, flatten_on_white, read_image  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    done, failed, used = [], [], set()
    t0 = time.perf_counter()
    for p in tqdm(paths, desc="remove-bg", unit="img", disable=None if len(paths) > 1 else True):
        try:
            img = read_image(p, order="bgr")
        except (ImageReadError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            print(f"remove-bg: skipping {p}: {reason}", file=sys.stderr)
            failed.append(str(p))
            continue
        mask = predictor.mask(flatten_on_white(img.pixels, img.alpha), postprocess)
        stem, k = p.stem, 2
        while stem in used:
            stem, k = f"{p.stem}_{k}", k + 1
        used.add(stem)
        cv2.imwrite(str(out_dir / f"{stem}_mask.png"), mask * 255)
        cv2.imwrite(str(out_dir / f"{stem}_cutout.png"), cutout(img.pixels, img.alpha, mask))
        done.append({"input": str(p), "mask": str(out_dir / f"{stem}_mask.png"),
                     "cutout": str(out_dir / f"{stem}_cutout.png"), "size": list(mask.shape),
                     "foreground": float(mask.mean())})
    return {"done": done, "failed": failed, "seconds": time.perf_counter() - t0}
