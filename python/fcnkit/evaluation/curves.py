"""Training logs -> CSV + one PNG of loss, learning rate and val IoU (`plot-training LOG... [-o OUT]`).

Reads both log formats this project meets:
* ours (`solve`):      `iter 40 loss 3623.41 lr 0.001` and `val iter 40: pixel_acc 0.8672 mean_iou 0.6429 lr 0.001`
* stock `caffe train`: glog lines `solver.cpp:...] Iteration 40 (... iter/s ...), loss = 3623.41` (the older
  `Iteration 40, loss = ...` too), `sgd_solver.cpp:...] Iteration 40, lr = 0.001`, and after
  `Iteration 40, Testing net (#0)` every `Test net output #k: NAME = V` becomes column val_NAME.

* `fcnkit train`'s CSV log (NAME.csv: iter, epoch, loss, lr, val_* columns, one row per epoch).

Each log is one stage, named after its file stem (or NAME=LOG). Stages are drawn end to end on one
iteration axis in the order given (32s -> 16s -> 8s -> composite), each starting where the previous ended,
with a dashed line at each hand-over. The CSV keeps each stage's own iteration numbers plus the global one.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from fcnkit.errors import UserError
from fcnkit.io.atomic import atomic_path, ensure_writable
from fcnkit.io.figures import pyplot

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|-nan))"
OURS_TRAIN = re.compile(rf"^iter (\d+) loss {_NUM} lr {_NUM}")
OURS_VAL = re.compile(r"^val iter (\d+): (.*)$")
GLOG_LOSS = re.compile(rf"\] Iteration (\d+)(?: \([^)]*\))?, loss = {_NUM}")
GLOG_LR = re.compile(rf"\] Iteration (\d+), lr = {_NUM}")
GLOG_TEST = re.compile(r"\] Iteration (\d+), Testing net \(#0\)")
GLOG_TEST_OUT = re.compile(rf"\] +Test net output #\d+: (\S+) = {_NUM}")


def parse_log(text: str) -> list[dict]:
    """Rows {iter, loss, lr, val_*} sorted by iteration, one per iteration that has any value."""
    rows: dict[int, dict] = {}
    test_iter = None

    def row(it: int) -> dict:
        return rows.setdefault(it, {"iter": it})

    for line in text.splitlines():
        s = line.strip()
        if m := OURS_TRAIN.match(s):
            r = row(int(m[1]))
            r["loss"], r["lr"] = float(m[2]), float(m[3])
        elif m := OURS_VAL.match(s):
            r = row(int(m[1]))
            for k, v in re.findall(rf"(\w+) {_NUM}", m[2]):
                r["lr" if k == "lr" else f"val_{k}"] = float(v)
        elif m := GLOG_TEST.search(s):
            test_iter = int(m[1])
        elif (m := GLOG_TEST_OUT.search(s)) and test_iter is not None:
            row(test_iter)[f"val_{m[1]}"] = float(m[2])
        elif m := GLOG_LR.search(s):
            row(int(m[1]))["lr"] = float(m[2])
        elif m := GLOG_LOSS.search(s):
            row(int(m[1]))["loss"] = float(m[2])
    return [rows[k] for k in sorted(rows)]


def parse_csv(text: str) -> list[dict]:
    """Rows of a `fcnkit train` CSV log: numeric cells of iter, loss, lr and val_* columns."""
    rows = []
    for rec in csv.DictReader(text.splitlines()):
        try:
            r = {"iter": int(float(rec["iter"]))}
        except (KeyError, TypeError, ValueError):
            continue
        for k, v in rec.items():
            if k in ("loss", "lr") or (k and k.startswith("val_")):
                try:
                    r[k] = float(v)
                except (TypeError, ValueError):
                    pass
        rows.append(r)
    return sorted(rows, key=lambda r: r["iter"])


def load_stages(specs: list[str]) -> list[tuple[str, list[dict]]]:
    out = []
    for spec in specs:
        named = "=" in spec and not Path(spec).exists()
        name, _, path = spec.rpartition("=") if named else ("", "", spec)
        if named and not name.strip():
            raise UserError(f"{spec!r}: the stage name before '=' is empty; give NAME=LOG, or the log alone")
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: no such log file")
        text = p.read_text(errors="replace")
        rows = parse_csv(text) if p.suffix == ".csv" else parse_log(text)
        if not rows:
            raise UserError(f"{p}: no training lines found (expected `iter N loss X lr Y` or Caffe's "
                            "`Iteration N, loss = X`)")
        out.append((name or p.stem, rows))
    return out


def write_csv(stages: list[tuple[str, list[dict]]], path: Path) -> list[str]:
    cols = ["stage", "iter", "global_iter", "loss", "lr"]
    extra = sorted({k for _, rows in stages for r in rows for k in r if k.startswith("val_")})
    cols += extra
    offset = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, cols, restval="")
        w.writeheader()
        for name, rows in stages:
            for r in rows:
                w.writerow({"stage": name, "global_iter": offset + r["iter"], **r})
            offset += rows[-1]["iter"]
    return cols


def plot(stages: list[tuple[str, list[dict]]], path: Path, title: str | None = None) -> Path:
    plt = pyplot()

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    panels = [("loss", "training loss", False), ("lr", "learning rate", True), ("val", "val IoU", False)]
    offset = 0
    for i, (name, rows) in enumerate(stages):
        color = f"C{i % 10}"
        for ax, (key, _, _) in zip(axes, panels, strict=True):
            if key == "val":
                for k, style in (("val_mean_iou", "-o"), ("val_iou", "-o"), ("val_accuracy", "--s"),
                                 ("val_pixel_acc", "--s")):
                    pts = [(offset + r["iter"], r[k]) for r in rows if k in r]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), style, color=color, ms=3,
                                label=f"{name} {k[4:]}")
            else:
                pts = [(offset + r["iter"], r[key]) for r in rows if key in r and math.isfinite(r[key])]
                if pts:
                    ax.plot(*zip(*pts, strict=True), "-", color=color, label=name)
        offset += rows[-1]["iter"]
        if i < len(stages) - 1:
            for ax in axes:
                ax.axvline(offset, color="gray", ls=":", lw=1)
    for ax, (_, label, log) in zip(axes, panels, strict=True):
        ax.set_ylabel(label)
        if log and any(line.get_ydata().size and min(line.get_ydata()) > 0 for line in ax.get_lines()):
            ax.set_yscale("log")
        if ax.get_lines():
            ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("iteration (stages end to end)" if len(stages) > 1 else "iteration")
    axes[0].set_title(title or " → ".join(n for n, _ in stages))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_training(logs: list[str], out: str | Path, title: str | None = None) -> dict:
    """Logs (stage order; NAME=LOG names a stage) -> OUT.csv and OUT.png; returns the stages and paths."""
    out = Path(out)
    csv_path, png_path = out.with_name(out.name + ".csv"), out.with_name(out.name + ".png")
    for path in (csv_path, png_path):
        ensure_writable(path, flag="-o")
    stages = load_stages(logs)
    write_csv(stages, csv_path)
    plot(stages, png_path, title)
    return {"stages": stages, "csv": csv_path, "png": png_path}
