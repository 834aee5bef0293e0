"""Checkpoints of `fcnkit train`, in the format `fcnkit.inference` reads, and the training log.

    NAME.safetensors   the weights (model.state_dict())
    NAME.json          sidecar: {"model": <registered name>, "family", "framework", "config": build(**config),
                       "data", "recipe", "seed", "epoch", "metrics" (the last validation), "history", ...}
    NAME.resume.pt     optimizer, epoch, plateau bookkeeping and RNG states, for --resume (read back with
                       torch.load(weights_only=True): tensors and plain values only, never pickled code)
    NAME.csv           one row per epoch: iter, epoch, loss, lr, val_* (what `plot-training` reads)
Every file is written under a temporary name and renamed into place (fcnkit.io.atomic): a kill leaves the
previous complete checkpoint, never a truncated one.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fcnkit.errors import UserError, os_error_from
from fcnkit.io.atomic import atomic_path, write_text_atomic

CSV_COLUMNS = ["iter", "epoch", "loss", "lr", "val_pixel_acc", "val_mean_iou", "val_iou", "val_jaccard",
               "val_hausdorff", "seconds"]


RESUME_KEYS = ("epoch", "history", "train_seconds", "best", "since_best", "phase", "numpy_rng", "torch_rng",
               "optimizer")


def paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    base = out.with_suffix("") if out.suffix == ".safetensors" else out
    return {k: base.with_name(base.name + ext) for k, ext in
            (("weights", ".safetensors"), ("sidecar", ".json"), ("resume", ".resume.pt"), ("csv", ".csv"))}


def save(out: str | Path, model, sidecar: dict, resume_state: dict | None, history: list[dict]) -> Path:
    p = paths(out)
    p["weights"].parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(p["weights"]) as tmp:
        try:
            save_file(state, str(tmp), metadata={"format": "pt", "model": sidecar["model"]})
        except Exception as exc:  # a full disk is SafetensorError("... (os error 28)"): make it the OSError it is
            err = os_error_from(exc, p["weights"])
            if err is None:
                raise
            raise err from None
    if resume_state is not None:
        with atomic_path(p["resume"]) as tmp, open(tmp, "wb") as fh:
            writer = _Writer(fh)
            try:
                torch.save(resume_state, writer)
            except RuntimeError:  # torch reports a failed write as RuntimeError("unexpected pos ...")
                if writer.error is not None:
                    raise OSError(writer.error.errno, writer.error.strerror, str(p["resume"])) from None
                raise
    write_text_atomic(p["csv"], csv_text(history))
    write_text_atomic(p["sidecar"], json.dumps(sidecar, indent=1) + "\n")  # last: the checkpoint is complete
    return p["weights"]


class _Writer:
    """A file for torch.save that remembers the OSError of a failed write (torch replaces it by its own)."""

    def __init__(self, fh):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def csv_text(history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, restval="", extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def load_for_resume(out: str | Path, model_name: str) -> tuple[dict, dict, dict]:
    """(sidecar, weights state dict, resume state) of an earlier run of the same model; UserError otherwise."""
    p = paths(out)
    for key in ("sidecar", "weights", "resume"):
        if not p[key].is_file():
            raise UserError(f"{p[key]}: nothing to resume (no earlier `fcnkit train {model_name} --out "
                            f"{p['weights']}`); run without --resume")
    try:
        sidecar = json.loads(p["sidecar"].read_text())
    except ValueError as exc:
        raise UserError(f"{p['sidecar']}: unreadable sidecar ({exc}); run without --resume") from None
    if sidecar.get("model") != model_name:
        raise UserError(f"{p['sidecar']}: a checkpoint of {sidecar.get('model')!r}, not {model_name!r}; resume "
                        "with that model's name or pick another --out")
    try:
        weights = load_file(str(p["weights"]))
        state = torch.load(p["resume"], map_location="cpu", weights_only=True)  # data only: no pickle code
    except Exception as exc:  # safetensors and the weights-only unpickler raise their own types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{p['resume']}: cannot read the checkpoint to resume ({first}); run without --resume"
                        ) from None
    missing = sorted(set(RESUME_KEYS) - set(state)) if isinstance(state, dict) else ["(not a dict)"]
    if missing:
        raise UserError(f"{p['resume']}: not a resume state of `fcnkit train` (missing {', '.join(missing)}); run "
                        "without --resume")
    return sidecar, weights, state
