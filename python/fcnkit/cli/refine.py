"""`fcnkit refine IMAGE --box x,y,w,h` / `fcnkit refine DATA --dataset`: the patch CNN refines rectangles.

Single image: the seed's net trains on the image's own 32x32 patches (centre inside the box ->
foreground, outside -> background) for --steps steps, or a trained checkpoint is applied (--model),
densely every --step pixels; writes IMAGE_mask.png (0/255) and IMAGE_cutout.png (RGBA) into --out.
Without --box it runs tag-free (patches near the border are background). The seed's other ideas:
--relabel N (patches outside the derived contour become background, train again), --largest (largest
connected component), --no-clip (let the mask leave the box).

Dataset mode (--dataset): every val image of DATA (`evaluate`'s layouts) gets the bounding box of its
true mask as its tag; masks are written to --out and Jaccard / Hausdorff / IoU are printed.
"""

from __future__ import annotations

from pathlib import Path

from fcnkit.apps.refine import refine_dataset, refine_file
from fcnkit.cli import doc_parser
from fcnkit.cli.args import count, device
from fcnkit.errors import UserError, cli_entry


def parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--box {text!r}: give x,y,w,h in pixels, e.g. --box 10,20,80,60") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UserError(f"--box {text!r}: width and height must be positive, x and y not negative")
    return x, y, w, h


@cli_entry("refine")
def main(argv=None) -> int:
    p = doc_parser("fcnkit refine", __doc__)
    p.add_argument("input", help="an image, or with --dataset a dataset folder")
    p.add_argument("--box", help="x,y,w,h of the tag (omit: tag-free mode)")
    p.add_argument("--dataset", action="store_true", help="every val image, box = its true mask's bounding box")
    p.add_argument("--model", help="a trained patchcnn checkpoint (default: train on the image itself)")
    p.add_argument("--out", default="refined", help="output folder (default refined/)")
    p.add_argument("--step", type=count(1, 32), help="apply every STEP pixels (default 4; 1 = densest, smoothest)")
    p.add_argument("--steps", type=count(0, 1_000_000), default=300, help="training steps per image (default 300)")
    p.add_argument("--batch", type=count(1, 100_000), default=128, help="patches per training step (default 128)")
    p.add_argument("--relabel", type=count(0, 100), default=0, help="relabelling rounds (default 0)")
    p.add_argument("--largest", action="store_true", help="keep the largest connected component")
    p.add_argument("--no-clip", action="store_true", help="do not clip the mask to the box")
    p.add_argument("--limit", type=count(1), help="dataset mode: first N images")
    p.add_argument("--seed", type=count(0, 2**32 - 1), default=0)
    p.add_argument("--device", type=device, default="cpu")
    a = p.parse_args(argv)

    opts = {"step": a.step, "relabel": a.relabel, "largest": a.largest, "clip": not a.no_clip, "seed": a.seed,
            "device": a.device, "steps": a.steps, "batch": a.batch}
    if (a.step is not None and a.step < 1) or a.batch < 1 or a.steps < 0:
        raise UserError("--step and --batch must be at least 1, --steps at least 0")
    if a.dataset:
        if a.box:
            raise UserError("--dataset takes each image's box from its true mask; drop --box")
        r = refine_dataset(a.input, Path(a.out), model=a.model, limit=a.limit, **opts)
        s = r["summary"]
        print(f"refine: {s['images']} images: Jaccard {s['jaccard_mean']:.2f} ± {s['jaccard_std']:.2f} %, "
              f"Hausdorff {s['hausdorff_mean']:.1f} ± {s['hausdorff_std']:.1f} px, fg IoU {s['iou'][1]:.4f}; "
              f"boxes alone: Jaccard {r['box_jaccard']:.2f} %; masks in {a.out}")
        return 0
    r = refine_file(a.input, parse_box(a.box) if a.box is not None else None, Path(a.out), model=a.model, **opts)
    print(f"refine: {a.input}: {r['foreground']:.1%} of the {'box' if a.box else 'image'} kept; wrote {r['mask']} "
          f"and {r['cutout']}")
    return 0
