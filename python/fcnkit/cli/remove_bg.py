"""`remove-bg IMAGE... -o OUT_DIR`: cut the sneaker out of photos with the trained FCN.

For each image it writes OUT_DIR/<stem>_mask.png (8-bit, 255 = object) and OUT_DIR/<stem>_cutout.png
(RGBA, the original pixels with the background transparent), both at the image's original resolution.

Resolution: the FCN is fully convolutional, so the image is run as is, at its own size. Only when its
longer side exceeds --max-side (default 2048, 0 = never) is it resized down (area interpolation) for the
net; the two class score maps are then resized back to the original size (bilinear) and the argmax taken
there, so the mask always matches the input pixel for pixel.

Input: any format and size the data tools read (fcnkit.io.images: EXIF orientation, CMYK, 16-bit,
palette, alpha, a pixel-count limit against decompression bombs). Transparent areas are flattened onto
white before the net sees them, and stay transparent in the cut-out. A directory argument means every
image file in it. Unreadable files are reported on stderr and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fcnkit.apps.remove_bg import DEFAULT_MAX_SIDE, expand_inputs, remove_bg
from fcnkit.errors import UserError, cli_entry


@cli_entry("remove-bg")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="remove-bg", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("images", nargs="+", help="image files or directories of images")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--model", help="model reference: a converted model directory, a registered model name, "
                                   "DEPLOY.prototxt:MODEL.caffemodel or a checkpoint (default: the model `make demo` "
                                   "trained)")
    p.add_argument("--backend", choices=["auto", "torch", "caffe"], default="auto",
                   help="auto (default): PyTorch when the model has a PyTorch form, else Caffe")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--postprocess", choices=["none", "extractnet"], default="none",
                   help="ExtractNet's blur k=27 / threshold 0.5 / opening k=39 (scaled to the image size)")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help=f"run larger images resized to this longer side (default {DEFAULT_MAX_SIDE}; 0 = never)")
    a = p.parse_args(argv)
    paths = expand_inputs(a.images)
    if not paths:
        raise UserError("no image files found in the given directories")
    from fcnkit import inference  # noqa: PLC0415

    predictor = inference.load(a.model, backend=a.backend, device=a.device, max_side=a.max_side,
                               log=lambda n: print(f"remove-bg: {n}"))
    r = remove_bg(paths, Path(a.out), predictor, postprocess=None if a.postprocess == "none" else a.postprocess)
    n = len(r["done"])
    rate = f", {n / r['seconds']:.2f} img/s" if n and r["seconds"] > 0 else ""
    skipped = f"; {len(r['failed'])} unreadable, skipped" if r["failed"] else ""
    print(f"remove-bg: {n} image(s) -> {a.out} ({predictor.name}, {r['seconds']:.1f}s{rate}){skipped}")
    return 1 if r["failed"] else 0
