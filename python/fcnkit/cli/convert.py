"""`convert` / `python tools/caffe2torch.py`: Caffe prototxt + caffemodel -> standalone PyTorch model.

    convert DEPLOY.prototxt MODEL.caffemodel -o OUT_DIR [--verify [--sizes 224x224,500x375]]

Exit status: 0 success; 1 --verify found a blob above tolerance, or --onnx could not write model.onnx (the
reason on stderr); 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import sys

from fcnkit.caffenet.pycaffe import load_caffe
from fcnkit.caffenet.registry import INPUT_TYPES, LAYERS, TRAINING_ONLY
from fcnkit.cli import Parser
from fcnkit.cli.args import number
from fcnkit.convert.convert import convert
from fcnkit.convert.tolerance import TOL
from fcnkit.convert.verify import check_caffe_runs, verify
from fcnkit.errors import UserError, cli_entry


def _shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=N,C,H,W with positive sizes")
    return name, shape


def _floats_arg(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected finite numbers like 104,117,123")
    return values


def _sizes_arg(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        w, sep, h = part.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
            raise argparse.ArgumentTypeError(f"{part!r}: expected WIDTHxHEIGHT, e.g. 500x375")
        sizes.append((int(w), int(h)))
    return sizes


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="convert",
        description="Convert a Caffe net (deploy prototxt + caffemodel) to a standalone PyTorch model.py, "
                    "weights.safetensors and conversion.json. Needs no pycaffe (except --verify).",
        epilog="Exit status: 0 ok, 1 --verify above tolerance or model.onnx not written, 2 bad input.")
    ap.add_argument("prototxt", nargs="?", help="deploy .prototxt (V0/V1 formats are upgraded)")
    ap.add_argument("caffemodel", nargs="?", help="trained .caffemodel")
    ap.add_argument("-o", "--out", metavar="OUT_DIR", help="output directory (created; see --force)")
    ap.add_argument("--force", action="store_true", help="replace OUT_DIR if it is not empty")
    ap.add_argument("--input-shape", action="append", type=_shape_arg, default=[], metavar="NAME=N,C,H,W",
                    help="shape for an input whose prototxt gives none (Data layers), or to override it")
    ap.add_argument("--preprocess-from", metavar="PROTOTXT",
                    help="train/val prototxt whose data layer's transform_param (mean, scale) to record")
    ap.add_argument("--mean", type=_floats_arg, metavar="B,G,R",
                    help="record this per-channel mean (the net's channel order) as its preprocessing, e.g. "
                         "FCN's 104.00699,116.66877,122.67892 (FCN's data layer is Python code)")
    ap.add_argument("--scale", type=number(above=0), default=None, help="record this input scale (after the mean)")
    ap.add_argument("--skip", action="append", default=[], metavar="LAYER",
                    help="leave this layer out (its tops must be unused), e.g. a Python metric layer")
    ap.add_argument("--class-name", help="name of the generated nn.Module class (default: from the net name)")
    ap.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="Python module with torch.nn.Module classes named like the net's Python layers "
                         "(python_param.layer), constructed with param_str=...; repeatable")
    ap.add_argument("--onnx", action="store_true",
                    help="also write model.onnx (checked with onnx.checker; --verify then runs it in onnxruntime)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset for --onnx (default 17, at least 17)")
    ap.add_argument("--verify", action="store_true",
                    help="run Caffe (pycaffe) and the converted module on the same inputs; per-blob table")
    ap.add_argument("--sizes", type=_sizes_arg, default=None, metavar="WxH[,WxH...]",
                    help="input sizes for --verify (default: the prototxt's input size)")
    ap.add_argument("--fp64", action="store_true",
                    help="--verify runs the converted module in float64, to tell converter errors from float32 "
                         "rounding (Caffe stays float32)")
    ap.add_argument("--tol", type=number(above=0), default=TOL,
                    help="--verify tolerance: max abs diff / max |Caffe blob| (default %(default)g)")
    ap.add_argument("--random", type=int, default=1, metavar="N",
                    help="random inputs per size for --verify, besides the sample photos (default 1)")
    ap.add_argument("--photos", type=int, default=2, metavar="N",
                    help="sample photos (skimage astronaut, chelsea, coffee) per size for --verify "
                         "(default 2)")
    ap.add_argument("--list-layers", action="store_true",
                    help="print the supported Caffe layer types and exit")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only errors and the verify verdict")
    return ap


@cli_entry("convert")
def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.list_layers:
        print("converted:      " + ", ".join(sorted(LAYERS)))
        print("become inputs:  " + ", ".join(sorted(INPUT_TYPES)))
        print("left out:       " + ", ".join(sorted(TRAINING_ONLY)) + " (training only)")
        return 0
    if not args.prototxt or not args.caffemodel or not args.out:
        ap.error("need DEPLOY.prototxt MODEL.caffemodel -o OUT_DIR")
    if args.tol <= 0:
        raise UserError(f"--tol must be positive, got {args.tol}")
    if args.opset < 17:
        raise UserError(f"--opset must be at least 17, got {args.opset}")
    if args.fp64 and not args.verify:
        raise UserError("--fp64 is a --verify mode; add --verify")
    if args.random < 0 or args.photos < 0 or args.random + args.photos == 0:
        raise UserError(f"--random and --photos must be >= 0 and not both 0 (got {args.random} and "
                        f"{args.photos})")


    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    if args.verify:  # before writing anything: Caffe aborts on a fork's fields or layer types
        check_caffe_runs(load_caffe(), args.prototxt)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in args.input_shape:
        shapes[name] = shape
    res = convert(args.prototxt, args.caffemodel, args.out, force=args.force, input_shapes=shapes,
                  preprocess_from=args.preprocess_from, skip=tuple(args.skip), class_name=args.class_name,
                  mean=args.mean, scale=args.scale, plugins=tuple(args.plugin), onnx=args.onnx, opset=args.opset,
                  verify_sizes=(args.sizes or [None]) if args.verify else (),
                  log=log)
    g = res.graph
    for node in g.nodes:  # never silent: a Python layer the converter could not run is named
        if node.kind == "skipped" and node.type == "Python" and node.name not in args.skip:
            print(f"convert: note: Python layer '{node.name}' was left out (nothing in the net reads its tops, and "
                  "no --plugin implements it); if an output of the net should come from it, pass --plugin; "
                  f"--skip {node.name} says you meant to leave it out", file=sys.stderr, flush=True)
    n_params = sum(int(a) for a in _param_counts(res.info))
    log(f"wrote {res.out_dir}/model.py, weights.safetensors ({n_params:,} values), conversion.json "
        f"in {res.seconds:.1f} s: {len(g.modules())} modules, inputs "
        + ", ".join(f"{i.blob}{list(i.shape)}" for i in g.inputs) + ", outputs " + ", ".join(g.outputs))
    for k, v in res.info["scriptability"].items():
        log(f"{k}: {v}")
    onnx_info = res.info.get("onnx")
    onnx_failed = onnx_info is not None and not onnx_info.get("exported")
    if onnx_failed:  # asked for and not written: never exit 0
        why = onnx_info.get("why")
        why = "; ".join(why) if isinstance(why, list) else str(why)
        print(f"convert: error: --onnx: model.onnx was not written ({why}); {res.out_dir} holds model.py and the "
              "weights, conversion.json[\"onnx\"] says why each export failed", file=sys.stderr, flush=True)
    if not res.info["preprocessing"].get("known"):
        log("note: preprocessing unknown; see conversion.json (or pass --preprocess-from TRAIN_VAL.prototxt)")
    if args.verify:
        ok = verify(args.prototxt, args.caffemodel, res.out_dir, sizes=args.sizes, tol=args.tol,
                    n_photos=args.photos, n_random=args.random, quiet=args.quiet, fp64=args.fp64,
                    onnx=bool(onnx_info and onnx_info.get("exported")))
        return 0 if ok and not onnx_failed else 1
    return 1 if onnx_failed else 0


def _param_counts(info: dict):
    for shape in info["tensors"].values():
        yield math.prod(shape)


if __name__ == "__main__":
    sys.exit(main())
