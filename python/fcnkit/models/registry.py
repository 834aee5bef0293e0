"""The model registry: every model the toolkit can train, load or compare is one `ModelSpec`.

A spec says what a user of the model needs to know and what the code needs to run it: its family and
framework, how images become its input (`Preprocessing`), what its output means (`output`), what data it
is trained on, and where its weights come from. Families register their specs when `fcnkit.models`
imports them (see `FAMILIES` there); nothing else keeps lists of model names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnkit.config.paths import in_project
from fcnkit.data.preprocessing import Preprocessing
from fcnkit.errors import UserError
from fcnkit.io.caffe_schema import proto_is_complete
from fcnkit.models.recipe import Recipe

FRAMEWORKS = ("caffe", "torch")
# What a model's raw output is. Both reduce to one foreground log-odds map (fcnkit.inference):
#   "softmax2": 2-class scores (N, 2, H, W), class 1 = object; log-odds = s1 - s0, mask = argmax;
#   "sigmoid1": one logit map (N, 1, H, W); probability = sigmoid(logit).
OUTPUTS = ("softmax2", "sigmoid1")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model. `name` is what users type (`--model fcn8s`, `fcnkit models`)."""

    name: str
    family: str
    framework: str                 # "caffe" or "torch"
    output: str                    # one of OUTPUTS
    preprocessing: Preprocessing
    description: str
    trained_on: str                # the data it is trained on, in words
    weights: str                   # where its weights come from, in words
    supervision: str = "masks"     # "masks", or e.g. "boxes" for weakly supervised families
    # -- Caffe models: the committed files, project-relative
    deploy: str | None = None      # deploy prototxt (input blob first, output blob `output_blob`)
    solver: str | None = None      # solver prototxt that trains it
    snapshot_prefix: str | None = None
    init: str | None = None        # "vgg16", "scratch", or the name of the model it starts from
    output_blob: str = "score"
    # -- PyTorch models: build(**config) -> nn.Module; checkpoints are safetensors + JSON sidecar
    build: Callable[..., Any] | None = None
    config: dict = field(default_factory=dict)
    checkpoint: str | None = None  # default checkpoint path, project-relative
    recipe: Recipe | None = None   # how `fcnkit train` trains it (PyTorch models; None: load-only)
    # -- the `fcnkit compare` presets that include it ("quick": CPU minutes on the sample data, "paper")
    presets: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"{self.name}: framework must be one of {FRAMEWORKS}")
        if self.output not in OUTPUTS:
            raise ValueError(f"{self.name}: output must be one of {OUTPUTS}")
        if self.framework == "caffe" and not self.deploy:
            raise ValueError(f"{self.name}: a Caffe model needs its deploy prototxt")
        if self.framework == "torch" and self.build is None:
            raise ValueError(f"{self.name}: a PyTorch model needs a build function")

    def find_weights(self) -> Path | None:
        """The trained weights on disk, if any: the highest-iteration snapshot (Caffe) or the checkpoint."""
        if self.framework == "caffe" and self.snapshot_prefix:
            return latest_snapshot(in_project(self.snapshot_prefix))
        if self.checkpoint:
            p = in_project(self.checkpoint)
            return p if p.is_file() else None
        return None

    def how_to_train(self) -> str:
        if self.solver:
            return f"solve {self.solver}"
        return f"fcnkit train {self.name}"


def latest_snapshot(prefix: Path, *, with_state: bool = False) -> Path | None:
    """The highest-iteration `<prefix>_iter_N.caffemodel` that is whole (with_state: whose .solverstate is
    whole too), or None. A snapshot cut short by a kill is passed over, never picked."""
    found = []
    for path in prefix.parent.glob(f"{prefix.name}_iter_*.caffemodel"):
        m = re.fullmatch(rf"{re.escape(prefix.name)}_iter_(\d+)\.caffemodel", path.name)
        if m:
            found.append((int(m.group(1)), path))
    for _, path in sorted(found, reverse=True):
        if proto_is_complete(path) and (not with_state or proto_is_complete(path.with_suffix(".solverstate"))):
            return path
    return None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registered() -> dict[str, ModelSpec]:
    return dict(_REGISTRY)


def get(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        near = [n for n in _REGISTRY if name in n or n in name][:5] or sorted(_REGISTRY)[:8]
        raise UserError(f"unknown model {name!r}; registered models include {', '.join(near)} "
                        "(`fcnkit models` lists all)")
    return _REGISTRY[name]


def by_snapshot_prefix(prefix: str) -> ModelSpec | None:
    """The Caffe model whose solver snapshots under `prefix` (how `solve` knows which stage it runs)."""
    p = Path(prefix).as_posix()
    return next((s for s in _REGISTRY.values() if s.snapshot_prefix and Path(s.snapshot_prefix).as_posix() == p),
                None)
