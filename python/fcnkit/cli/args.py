"""Argument types shared by the commands, so every command refuses the same bad value the same way (one line
`PROG: error: argument --x: ...`, exit 2, through `fcnkit.cli.Parser`), before any work starts.

    count(minimum[, maximum])   a whole number in range             (--limit, --epochs, --relabel, --port ...)
    number(low, high, ...)      a finite float in range             (--lr, --scale, --tol ...)
    device(text)                a torch device this machine has     (--device cpu | cuda | cuda:N)
    shard(text)                 I/N with 0 <= I < N                 (remove-bg --shard)
    add_precision(parser, help) the --precision option              (fp32 | bf16 | fp16; default fp32)
"""

from __future__ import annotations

import argparse
import math
import re

import torch

from fcnkit.inference.backends import PRECISIONS


def count(minimum: int, maximum: int | None = None):
    """argparse type: an integer from `minimum` to `maximum`, with a message naming the bound."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{v} is below the smallest allowed value, {minimum}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"{v} is above the largest allowed value, {maximum}")
        return v
    return parse


def number(low: float | None = None, high: float | None = None, *, above: float | None = None):
    """argparse type: a finite float, at least `low` (or strictly above `above`) and at most `high`."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        ok = math.isfinite(v) and (low is None or v >= low) and (above is None or v > above) and (
            high is None or v <= high)
        if not ok:
            rng = [f"at least {low:g}" if low is not None else "", f"above {above:g}" if above is not None else "",
                   f"at most {high:g}" if high is not None else ""]
            raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number "
                                             + " and ".join(r for r in rng if r))
        return v
    return parse


def device(text: str) -> str:
    """argparse type: `cpu`, `cuda` or `cuda:N` naming a device this PyTorch can use."""
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return text
    if dev.type != "cuda":
        raise argparse.ArgumentTypeError(f"{text!r}: only cpu and cuda devices are supported")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this PyTorch has no usable CUDA device; use cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA device(s) "
                                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return text


def shard(text: str) -> tuple[int, int]:
    """argparse type: I/N with 0 <= I < N."""
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r}: give I/N, shard I (0-based) of N, with 0 <= I < N, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def add_precision(p: argparse.ArgumentParser, help: str) -> None:
    """--precision: the PyTorch backend's arithmetic (fcnkit.inference.backends.PRECISIONS), fp32 by default."""
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32", help=help)
