"""The one command table: `fcnkit COMMAND ...` (also the container's entrypoint) and every console script.

Each command is a module `fcnkit.cli.<module>` with `main(argv) -> int` (argument parsing and printing
only; the work is done by library functions). `[project.scripts]` in pyproject.toml points at the same
modules; the wrappers in tools/, data_prep/ and weights/ call `run()`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module under fcnkit.cli, what it does)
COMMANDS = {
    "solve": ("solve", "train a solver prototxt with real Caffe (the paper's stage chain)"),
    "prep": ("prep", "data preparation: sample, masks, composite, lmdb, fetch, ingest"),
    "convert": ("convert", "Caffe prototxt + caffemodel -> PyTorch (caffe2torch), --verify against Caffe"),
    "evaluate": ("evaluate", "segmentation metrics, Caffe and PyTorch side by side, the classical baseline"),
    "remove-bg": ("remove_bg", "cut the object out of photos: mask + RGBA cut-out"),
    "plot-training": ("plot_training", "training logs -> CSV + loss / lr / val IoU figure"),
    "fidelity": ("fidelity", "every number of the paper -> file:field -> PASS/FAIL"),
    "generate": ("generate", "write (or --check) prototxt/ and solvers/ from code"),
    "fetch-vgg16": ("fetch_vgg16", "download and check the VGG-16 ImageNet weights FCN-32s starts from"),
    "models": ("models", "list the registered models"),
    "demo": ("demo", "the whole study at CPU scale on the embedded sample data"),
    "serve": ("serve", "the upload page and HTTP API for background removal (127.0.0.1:7860)"),
    "train": ("train", "train a registered PyTorch model (LRN, U-Net, ExtractNet, patch CNN)"),
    "refine": ("refine", "patch CNN: refine a rectangle (--box x,y,w,h) to the object's contour"),
    "compare": ("compare", "every family on the same data, scored alike, in the seeds' own tables"),
    "fetch-weights": ("fetch_weights", "download and check Caffe Model Zoo encoders (VGG-16/19, ResNet-50/152)"),
}


class Parser(argparse.ArgumentParser):
    """Every command's parser: a bad argument is one line `PROG: error: ... (see PROG --help)` and exit 2, as
    every other bad input (argparse's own would print the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def doc_parser(prog: str, doc: str, description: str | None = None):
    """An ArgumentParser whose description is the module doc's first line (after "`cmd ...`: ") and whose
    epilog is the rest of the doc, kept as written."""
    lines = doc.splitlines()
    return Parser(prog=prog, description=description or lines[0].split(": ", 1)[-1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n".join(lines[2:]))


def run(command: str, argv: list[str]) -> int:
    """Run one command of the table with its arguments (what the wrapper scripts call)."""
    return importlib.import_module(f"fcnkit.cli.{COMMANDS[command][0]}").main(argv)


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "usage: fcnkit COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(
        f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        if not argv:
            print("fcnkit: error: no command given; choose one of the commands above (fcnkit COMMAND --help)",
                  file=sys.stderr)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"fcnkit: error: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run(cmd, rest)
