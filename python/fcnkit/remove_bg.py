"""`remove-bg IMAGE... -o OUT_DIR`: cut the sneaker out of photos with the trained FCN.

For each image it writes OUT_DIR/<stem>_mask.png (8-bit, 255 = object) and OUT_DIR/<stem>_cutout.png
(RGBA, the original pixels with the background transparent), both at the image's original resolution.

Resolution: the FCN is fully convolutional, so the image is run as is, at its own size. Only when its
longer side exceeds --max-side (default 2048, 0 = never) is it resized down (area interpolation) for the
net; the two class score maps are then resized back to the original size (bilinear) and the argmax taken
there, so the mask always matches the input pixel for pixel.

Input: any format and size the data tools read (fcnkit.prep.imageio: EXIF orientation, CMYK, 16-bit,
palette, alpha, a pixel-count limit against decompression bombs). Transparent areas are flattened onto
white before the net sees them, and stay transparent in the cut-out. A directory argument means every
image file in it. Unreadable files are reported on stderr and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fcnkit.errors import UserError, cli_entry
from fcnkit.evaluate import IMAGE_EXTS, CaffeBackend, TorchBackend, resolve_model

DEFAULT_MAX_SIDE = 2048


def predict_mask(backend, bgr: np.ndarray, max_side: int = DEFAULT_MAX_SIDE, postprocess: str | None = None):
    """(H, W, 3) uint8 BGR -> (H, W) uint8 0/1 mask at the image's own resolution."""
    h, w = bgr.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        small = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        sc = backend.scores(small)
        sc = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in sc])
    else:
        sc = backend.scores(bgr)
    mask = sc.argmax(0).astype(np.uint8)
    if postprocess == "extractnet":
        from fcnkit.baselines import postprocess_extractnet  # noqa: PLC0415

        mask = postprocess_extractnet(mask)
    return mask


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


def make_backend(name: str, model, device: str = "cpu", log=print):
    mf = resolve_model(model)
    for n in mf.notes:
        log(f"remove-bg: {n}")
    return CaffeBackend(mf) if name == "caffe" else TorchBackend(mf, device)


def remove_bg(paths: list[Path], out_dir: Path, backend, *, max_side: int = DEFAULT_MAX_SIDE,
              postprocess: str | None = None, log=print) -> dict:
    from fcnkit.prep.imageio import ImageReadError, flatten_on_white, read_image  # noqa: PLC0415

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
        mask = predict_mask(backend, flatten_on_white(img.pixels, img.alpha), max_side, postprocess)
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


@cli_entry("remove-bg")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="remove-bg", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("images", nargs="+", help="image files or directories of images")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--model", help="converted model directory (default: the model `make demo` trained)")
    p.add_argument("--backend", choices=["torch", "caffe"], default="torch")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--postprocess", choices=["none", "extractnet"], default="none",
                   help="ExtractNet's blur k=27 / threshold 0.5 / opening k=39 (scaled to the image size)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help=f"run larger images resized to this longer side (default {DEFAULT_MAX_SIDE}; 0 = never)")
    a = p.parse_args(argv)
    paths = expand_inputs(a.images)
    if not paths:
        raise UserError("no image files found in the given directories")
    backend = make_backend(a.backend, a.model, a.device)
    r = remove_bg(paths, Path(a.out), backend, max_side=a.max_side,
                  postprocess=None if a.postprocess == "none" else a.postprocess)
    n = len(r["done"])
    rate = f", {n / r['seconds']:.2f} img/s" if n and r["seconds"] > 0 else ""
    skipped = f"; {len(r['failed'])} unreadable, skipped" if r["failed"] else ""
    print(f"remove-bg: {n} image(s) -> {a.out} ({a.backend}, {r['seconds']:.1f}s{rate}){skipped}")
    return 1 if r["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
