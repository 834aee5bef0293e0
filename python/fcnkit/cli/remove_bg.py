"""`remove-bg INPUT... -o OUT`: cut the object out of photos with a trained model.

For each image it writes OUT/<stem>_mask.png (8-bit, 255 = object) and OUT/<stem>_cutout.png (RGBA, the
original pixels with the background transparent), both at the image's original resolution; --output
picks one, --format png|webp|jpeg the file type, --bgcolor r,g,b[,a] puts the object on a colour instead
of transparency (JPEG has no alpha: white unless given), --crop cuts to the subject's box plus --margin
pixels. `-` as INPUT reads one image from stdin; `-o -` writes the one picture to stdout (default: the
cut-out). A folder means the images in it; with -r also in its sub-folders, mirrored under OUT.
--skip-existing leaves images whose outputs exist alone, so an interrupted run can be resumed. An output
file that already exists and was not written by this run is never replaced without --overwrite (the image
is skipped with one line), and no output ever replaces an input of the same run, --overwrite or not.
--shard I/N takes only shard I (0-based) of N of the inputs, split by a hash of each output name: a folder
of millions of images runs as N independent jobs (e.g. a SLURM array: --shard $SLURM_ARRAY_TASK_ID/N; a
Kubernetes indexed job: --shard $JOB_COMPLETION_INDEX/N), each resumable with --skip-existing.

--json prints one JSON line per image to stdout (size, model, foreground share, bounding box, share of
uncertain pixels, empty / whole-frame flags and whether to review it; --json-out FILE writes the same as a
JSON array). With --json and no -o only the metadata is produced.

Resolution: fully convolutional models run the image as is, at its own size. Only when its longer side
exceeds --max-side (default 2048, 0 = never) is it resized down (area interpolation) for the net; the
score maps are then resized back to the original size (bilinear), so the mask always matches the input
pixel for pixel. --batch-size N runs N same-size images per forward pass. --precision bf16 runs the PyTorch
model in bfloat16 (faster on CPUs with AMX or AVX-512-BF16; masks agree with fp32 on all but a few edge
pixels: `evaluate --precision bf16` measures it on your data); fp32 is the default.

Input: any format and size the data tools read (fcnkit.io.images: EXIF orientation applied, CMYK, 16-bit,
palette, alpha, a pixel-count limit against decompression bombs). Transparent areas are flattened onto
white for the net and stay transparent in the cut-out. Unreadable files are reported in one line each and
skipped; the exit status is then 1. Outputs are written atomically (temp name, fsync, rename): Ctrl-C
(exit 130; SIGTERM 143), a kill or a full disk never leave a truncated file; a write that fails stops with exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from fcnkit import inference
from fcnkit.apps.cutout import FORMATS, POSTPROCESS, Look, parse_bgcolor
from fcnkit.apps.remove_bg import (
    DEFAULT_MAX_SIDE,
    KINDS,
    STDIO,
    Tally,
    expand_inputs,
    prepare_out_dir,
    probe_writable,
    remove_bg,
    select_shard,
    stdout_is_terminal,
)
from fcnkit.cli import Parser
from fcnkit.cli.args import add_precision, count, device, shard
from fcnkit.errors import UserError, cli_entry
from fcnkit.io.atomic import write_text_atomic
from fcnkit.io.images import DEFAULT_MAX_PIXELS


def bgcolor(text: str):
    try:
        return parse_bgcolor(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="remove-bg", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("images", nargs="+", help="image files, folders of images, or - for stdin")
    p.add_argument("-o", "--out", help="output folder (created if missing), or - for stdout")
    p.add_argument("--output", choices=list(KINDS), default=None,
                   help="what to write: both (default for a folder), mask or cutout (default for -o -)")
    p.add_argument("--format", choices=FORMATS, default="png", help="file type (default png)")
    p.add_argument("--bgcolor", type=bgcolor, help="r,g,b[,a] (0-255): the object on this colour instead of "
                                                   "transparency")
    p.add_argument("--crop", action="store_true", help="crop to the subject's bounding box")
    p.add_argument("--margin", type=count(0), default=0, help="pixels kept around the subject with --crop")
    p.add_argument("-r", "--recursive", action="store_true", help="also images in sub-folders of folder inputs")
    p.add_argument("--skip-existing", action="store_true", help="skip images whose output files all exist")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist (never an input of this run)")
    p.add_argument("--json", action="store_true", help="print one JSON line of metadata per image to stdout")
    p.add_argument("--json-out", type=Path, help="write the metadata of all images to this JSON file")
    p.add_argument("--model", help="a registered model name (`fcnkit models`), a converted model folder, "
                                   "DEPLOY.prototxt:MODEL.caffemodel or a checkpoint (default: the model "
                                   "`make demo` trained)")
    p.add_argument("--backend", choices=["auto", "torch", "caffe"], default="auto",
                   help="auto (default): PyTorch when the model has a PyTorch form, else Caffe")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    add_precision(p, "PyTorch arithmetic: fp32 (default), bf16 (faster on CPUs with AMX/AVX-512-BF16), "
                     "fp16 (CUDA)")
    p.add_argument("--shard", type=shard, metavar="I/N",
                   help="process only shard I (0-based) of N of the inputs: a stable split by output name, "
                        "for N independent jobs; resume with --skip-existing")
    p.add_argument("--postprocess", choices=POSTPROCESS, default="none",
                   help="ExtractNet's blur k=27 / threshold 0.5 / opening k=39 (scaled to the image size)")
    p.add_argument("--max-side", type=count(0), default=DEFAULT_MAX_SIDE,
                   help=f"run larger images resized to this longer side (default {DEFAULT_MAX_SIDE}; 0 = never)")
    p.add_argument("--max-pixels", type=count(1), default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images declaring more pixels, before decoding (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--batch-size", type=count(1), default=1, help="images per forward pass (default 1)")
    return p


def check_args(a) -> None:
    """Every combination that cannot work is refused before a model is loaded or a file written."""
    stdin_uses = a.images.count(STDIO)
    if stdin_uses > 1:
        raise UserError("- (stdin) can be given once")
    if a.out is None and not (a.json or a.json_out):
        raise UserError("say where the pictures go: -o FOLDER, -o - for stdout, or --json for metadata only")
    if a.out == STDIO:
        if len(a.images) != 1 or (a.images[0] != STDIO and Path(a.images[0]).is_dir()):
            raise UserError("-o - writes one picture: give exactly one image file (or - for stdin)")
        if a.output == "both":
            raise UserError("-o - writes one picture: choose --output mask or --output cutout")
        if a.json:
            raise UserError("-o - puts the picture on stdout; write the metadata with --json-out FILE instead")
        if a.skip_existing or a.overwrite:
            raise UserError(f"{'--skip-existing' if a.skip_existing else '--overwrite'} needs an output folder, "
                            "not -o -")
        if stdout_is_terminal():
            raise UserError("-o - would print image bytes to the terminal; redirect stdout to a file or a pipe")
    if a.json_out is not None:
        if a.json_out.is_dir():
            raise UserError(f"--json-out {a.json_out}: is a folder; name a file")
        parent = a.json_out.parent
        if not parent.is_dir():
            raise UserError(f"--json-out {a.json_out}: folder {parent} does not exist")
        probe_writable(parent, f"--json-out {a.json_out}")  # now, not after the whole run


@cli_entry("remove-bg")
def main(argv=None) -> int:
    a = parser().parse_args(argv)
    check_args(a)
    items = expand_inputs(a.images, recursive=a.recursive)
    if not items:
        raise UserError("no image files found in the given folders" + ("" if a.recursive else " (-r: sub-folders)"))
    if a.shard is not None:
        total = len(items)
        items = select_shard(items, *a.shard)
        print(f"remove-bg: shard {a.shard[0]}/{a.shard[1]}: {len(items)} of {total} image(s)", file=sys.stderr)
    if a.json_out is not None and os.path.realpath(a.json_out) in {os.path.realpath(it.source) for it in items
                                                                   if it.source != STDIO}:
        raise UserError(f"--json-out {a.json_out}: is an input of this run; name another file")
    kinds = KINDS[a.output or ("cutout" if a.out == STDIO else "both")]
    out = None if a.out is None else (Path(a.out) if a.out != STDIO else Path(STDIO))
    if out is not None and a.out != STDIO:
        prepare_out_dir(out)
    data_on_stdout = a.json or a.out == STDIO
    say = (lambda m: print(m, file=sys.stderr)) if data_on_stdout else print

    predictor = inference.load(a.model, backend=a.backend, device=a.device, precision=a.precision,
                               max_side=a.max_side,
                               batch_size=a.batch_size, log=lambda n: say(f"remove-bg: {n}"))
    look = Look(kinds[0], a.bgcolor, a.format, a.crop, a.margin)
    emit = (lambda r: print(json.dumps(r), flush=True)) if a.json else None
    tally = Tally()
    try:
        remove_bg(items, out, predictor, look=look, kinds=kinds, postprocess=a.postprocess,
                  batch_size=a.batch_size, skip_existing=a.skip_existing, overwrite=a.overwrite,
                  max_pixels=a.max_pixels,
                  on_result=emit, tally=tally)
        if data_on_stdout:
            sys.stdout.flush()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where the CLI wrapper turns it into one
        signum = int(getattr(exc, "signum", signal.SIGINT))
        print(f"remove-bg: interrupted ({'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'}) after "
              f"{len(tally.done)} image(s); every file written is complete (--skip-existing resumes)",
              file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `remove-bg ... -o - | head`: the reader left; nothing to report to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("remove-bg: stdout was closed before the output was written", file=sys.stderr)
        return 1
    if a.json_out is not None:
        try:
            write_text_atomic(a.json_out, json.dumps(tally.done, indent=1) + "\n")
        except OSError as exc:
            raise UserError(f"--json-out {a.json_out}: cannot write ({exc.strerror or exc})") from None
    n = len(tally.done)
    rate = f", {n / tally.seconds:.2f} img/s" if n and tally.seconds > 0 else ""
    where = {None: "metadata only", STDIO: "stdout"}.get(a.out, a.out)
    notes = "".join(f"; {len(v)} {what}" for v, what in (
        (tally.skipped, "already done, skipped"), (tally.kept, "skipped: output exists (--overwrite replaces it)"),
        (tally.failed, "unreadable or an input as output, skipped")) if v)
    review = sum(r["review"] for r in tally.done)
    notes += f"; {review} to review (empty, whole-frame or uncertain mask)" if review else ""
    say(f"remove-bg: {n} image(s) -> {where} ({predictor.label}, {predictor.name}, {tally.seconds:.1f}s{rate}){notes}")
    return 1 if tally.failed else 0
