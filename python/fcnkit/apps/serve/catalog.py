"""The models a server offers: loaded once at start-up through `fcnkit.inference`, chosen per request by name.

With `--model REF ...` exactly those are loaded (the first is the default). Without, every registered model
whose trained weights are on this machine is loaded (`fcnkit models` lists them; `ModelSpec.find_weights`),
or else the model `make demo` converts; the default is then the best of them: a model trained on real
photographs (`compare --preset real` installs them, `<task>/<model>`) before any other, the one trained on
the shared salient-object task (DUTS) first and, among those, the highest test IoU its checkpoint records;
then a full-size (paper) net before a tiny one, and within each the latest stage of the paper's chain
(FCN-8s fine-tuned on composites is the study's final model, trained for objects in front of real scenes).
"""

from __future__ import annotations

import ctypes
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnkit import inference, models
from fcnkit.config.paths import project_root
from fcnkit.config.realdata import BEST_TASK
from fcnkit.config.stages import STAGE_BY_NAME, STAGES
from fcnkit.errors import UserError
from fcnkit.models.registry import ModelSpec

WARMUP_SIDE = 64  # each model runs once on a small image at start-up: a broken one fails there, not per request


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB (Linux /proc; (0, 0) elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0, 0.0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


@dataclass
class Entry:
    name: str                 # what requests pass as `model`
    predictor: inference.Predictor
    description: str
    trained_on: str
    reference: str            # what was loaded (path or registered name)
    forward_mib: float = 0.0  # measured at start-up: memory one forward pass at the largest net input takes
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward at a time per model

    def info(self, default: bool) -> dict:
        return {"name": self.name, "default": default, "description": self.description,
                "trained_on": self.trained_on, "backend": self.predictor.name, "reference": self.reference,
                "output": self.predictor.output, "preprocessing": self.predictor.preprocessing.describe()}


@dataclass
class Catalog:
    entries: dict[str, Entry]
    default: str
    why_default: str

    def get(self, name: str | None) -> Entry:
        if not name:
            return self.entries[self.default]
        if name not in self.entries:
            raise KeyError(f"unknown model {name!r}; this server offers {', '.join(self.entries)}")
        return self.entries[name]

    def infos(self) -> list[dict]:
        return [e.info(n == self.default) for n, e in self.entries.items()]


def spec_of(ref: inference.ModelRef) -> ModelSpec | None:
    """The registered model a reference holds: its own spec, or the solver run a converted net's
    caffemodel snapshot came from (`<prefix>_iter_N.caffemodel` -> `models.by_snapshot_prefix`)."""
    if ref.spec is not None:
        return ref.spec
    if ref.caffemodel is None:
        return None
    m = re.fullmatch(r"(.+)_iter_\d+\.caffemodel", ref.caffemodel.as_posix())
    if not m:
        return None
    prefix = Path(m.group(1))
    try:
        prefix = prefix.resolve().relative_to(project_root())
    except ValueError:
        pass
    return models.by_snapshot_prefix(prefix.as_posix())


def test_iou(spec: ModelSpec) -> float:
    """The test IoU `compare --preset real` recorded in the model's installed checkpoint sidecar (0 if none)."""
    weights = spec.find_weights()
    try:
        return float(json.loads(weights.with_suffix(".json").read_text())["test"]["iou"] or 0.0)
    except (AttributeError, OSError, ValueError, KeyError, TypeError):
        return 0.0


def rank(spec: ModelSpec | None) -> tuple:
    """Larger is better: real-photo models (DUTS first, then by test IoU), then full-size before tiny, then
    later stages of the paper's chain."""
    if spec is None:
        return (0, 0, 0.0, 0, -1)
    extra = spec.extra or {}
    real = extra.get("real")
    stage = STAGE_BY_NAME.get(extra.get("stage", ""))
    return (int(real is not None), int(real == BEST_TASK), test_iou(spec) if real else 0.0,
            int(extra.get("variant") == "paper"), STAGES.index(stage) if stage else -1)


def available_references() -> list[str]:
    """Registered models with weights on this machine, best first; else the demo's converted model."""
    found = [s for s in models.registered().values() if s.find_weights() is not None]
    if found:
        return [s.name for s in sorted(found, key=rank, reverse=True)]
    try:
        inference.resolve(None)
    except UserError:
        raise UserError("no trained model found on this machine (`fcnkit models` lists where weights are "
                        "expected); run `make demo`, or pass --model REF") from None
    return [str(inference.resolve(None).folder)]


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def map_large_blocks(threshold: int = 1 << 20) -> None:
    """Make glibc serve every allocation above `threshold` bytes with its own mapping, returned to the system
    when freed. By default the threshold grows with the largest block freed so far (up to 32 MB), after which
    a server's full-size image buffers stay resident in the heap after each request; fixed, resident memory
    follows the requests in flight. A no-op where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold)
    except (OSError, AttributeError):
        pass


def release_freed_memory() -> None:
    """Give freed heap memory back to the system (glibc's malloc_trim), so resident memory reflects what is in
    use; a no-op where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def forward_cost(predictor: inference.Predictor, side: int) -> float:
    """MiB one forward pass on a side x side image adds to this process at its peak (the net runs it at
    its own input size: the image resized to --max-side, or the model's fixed size). Measured once at start-up
    from the peak resident memory, so it counts the backend's own buffers (Caffe's blobs too)."""
    before, _ = rss_mib()
    predictor.logit(np.full((side, side, 3), 128, np.uint8))
    _, peak = rss_mib()
    release_freed_memory()
    return max(0.0, peak - before)


def load_catalog(refs: list[str] | None = None, *, backend: str = "auto", device: str = "cpu",
                 precision: str = "fp32", max_side: int = 0, probe_side: int = 0, log=print) -> Catalog:
    """Load every model once (see the module doc); UserError names a reference that does not load.
    `probe_side`: also run each model once at that image size and record what the forward pass costs."""
    explicit = bool(refs)
    refs = list(dict.fromkeys(refs)) if refs else available_references()
    entries: dict[str, Entry] = {}
    specs: dict[str, ModelSpec | None] = {}
    for text in refs:
        ref = inference.resolve(text)
        spec = spec_of(ref)
        predictor = inference.load(text, backend=backend, device=device, precision=precision, max_side=max_side)
        probe = np.full((WARMUP_SIDE, WARMUP_SIDE, 3), 128, np.uint8)
        if predictor.logit(probe).shape != probe.shape[:2]:
            raise UserError(f"model {text}: its output does not match the input size; is it a segmentation net?")
        name = spec.name if spec is not None and not explicit else text
        desc = spec.description if spec else f"{ref.kind} model {ref.label}"
        trained = spec.trained_on if spec else "unknown: not a registered model (`fcnkit models`)"
        entries[name] = Entry(name, predictor, desc, trained, text)
        specs[name] = spec
        if probe_side:
            entries[name].forward_mib = forward_cost(predictor, probe_side)
        log(f"serve: loaded {name} ({predictor.name}): {desc}; trained on {trained}"
            + (f"; a forward pass at {probe_side}x{probe_side} takes {entries[name].forward_mib:.0f} MiB"
               if probe_side else ""))
    if explicit:
        default, why = next(iter(entries)), "the first --model given"
    else:
        default = max(entries, key=lambda n: rank(specs[n]))
        spec = specs[default]
        if spec is not None and (spec.extra or {}).get("real"):
            why = (f"the best real-photo model found on this machine (trained on {spec.trained_on}; test IoU "
                   f"{test_iou(spec):.3f})")
        elif spec is not None:
            why = "the best model found on this machine: the latest stage of the paper's chain, full-size before tiny"
        else:
            why = "the model `make demo` converted"
    return Catalog(entries, default, why)
