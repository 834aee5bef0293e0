"""Model references: what a user may pass as `--model`, resolved to the files that hold a model.

A reference is one of
- a folder `convert` wrote (conversion.json, weights.safetensors, model.py): the converted PyTorch module,
  whose Caffe source (prototxt + caffemodel, named in conversion.json) the Caffe backend can run;
- `DEPLOY.prototxt:MODEL.caffemodel` (or --deploy/--caffemodel): a Caffe net and its weights;
- a native PyTorch checkpoint of a registered family: `NAME.safetensors` with its `NAME.json` sidecar;
- a registered model name (`fcnkit models`): its latest snapshot (Caffe) or checkpoint (PyTorch).
With no reference, the model `make demo` trains and converts is used, and the caller is told so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit import models
from fcnkit.caffenet.model_folder import is_model_folder, read_info
from fcnkit.config.paths import DEMO_RUN_DIR, in_project
from fcnkit.errors import UserError
from fcnkit.models.registry import ModelSpec, Preprocessing

DEFAULT_MODEL = f"{DEMO_RUN_DIR}/torch/fcn8s_finetune"  # what `make demo` converts last
FCN_PREPROCESSING = models.get("fcn8s").preprocessing  # Caffe nets of unknown origin: the FCN reference's


@dataclass
class ModelRef:
    kind: str                          # "converted", "caffe" or "checkpoint"
    label: str                         # how messages name it
    preprocessing: Preprocessing
    output: str = "softmax2"           # models.registry.OUTPUTS
    output_blob: str = "score"
    spec: ModelSpec | None = None
    folder: Path | None = None         # converted folder
    deploy: Path | None = None
    caffemodel: Path | None = None
    checkpoint: Path | None = None     # native checkpoint (.safetensors)
    info: dict = field(default_factory=dict)  # conversion.json / checkpoint sidecar
    notes: list[str] = field(default_factory=list)


def _converted(folder: Path, deploy=None, caffemodel=None, notes=None) -> ModelRef:
    info = read_info(folder)
    try:
        return _converted_ref(folder, info, deploy, caffemodel, notes)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise UserError(f"{folder / 'conversion.json'}: malformed ({type(exc).__name__}: {exc}); convert the net "
                        "again") from None


def _converted_ref(folder: Path, info, deploy, caffemodel, notes) -> ModelRef:
    src = info.get("source", {})
    deploy = Path(deploy) if deploy else _source_file(folder, src, "prototxt")
    caffemodel = Path(caffemodel) if caffemodel else _source_file(folder, src, "caffemodel")
    pre = info.get("preprocessing", {})
    if pre.get("known") and len(pre.get("mean_value", [])) == 3 and pre.get("scale", 1.0) == 1.0:
        preprocessing = Preprocessing("BGR", tuple(pre["mean_value"]), 1.0, "any")
    else:
        preprocessing = FCN_PREPROCESSING
    outputs = info.get("outputs", [])
    names = [o["blob"] for o in outputs]
    blob = "score" if "score" in names or not names else names[0]
    channels = next((o["shape"][1] for o in outputs if o["blob"] == blob and len(o["shape"]) > 1), 2)
    return ModelRef("converted", str(folder), preprocessing, "sigmoid1" if channels == 1 else "softmax2", blob,
                    folder=folder, deploy=deploy, caffemodel=caffemodel, info=info, notes=list(notes or []))


def _source_file(folder: Path, src: dict, key: str) -> Path | None:
    """A Caffe source file conversion.json names: relative to the folder (it may have moved with its
    project), absolute, or (files of older conversions) as written, relative to the working directory."""
    for cand in (folder / src[f"{key}_from_folder"] if src.get(f"{key}_from_folder") else None,
                 src.get(f"{key}_absolute"), src.get(key)):
        if cand and Path(cand).is_file():
            return Path(cand)
    return Path(src[key]) if src.get(key) else None


def _caffe_pair(deploy, caffemodel, spec: ModelSpec | None = None) -> ModelRef:
    pre = spec.preprocessing if spec else FCN_PREPROCESSING
    label = spec.name if spec else f"{deploy}:{caffemodel}"
    return ModelRef("caffe", label, pre, spec.output if spec else "softmax2", spec.output_blob if spec else "score",
                    spec=spec, deploy=Path(deploy), caffemodel=Path(caffemodel) if caffemodel else None)


def _checkpoint(path: Path) -> ModelRef:
    sidecar = path.with_suffix(".json")
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{sidecar}: the checkpoint's JSON sidecar is missing or unreadable ({exc}); it names "
                        "the model family and configuration") from None
    name = info.get("model")
    if not name:
        raise UserError(f"{sidecar}: names no `model`; is it a checkpoint of `fcnkit train`?")
    spec = models.get(name)
    if spec.framework != "torch":
        raise UserError(f"{sidecar}: names {name}, a {spec.framework} model; a checkpoint holds a PyTorch model "
                        "of a registered family (`fcnkit models`)")
    return ModelRef("checkpoint", str(path), spec.preprocessing, spec.output, spec=spec, checkpoint=path, info=info)


def resolve(ref: str | os.PathLike | None = None, *, deploy=None, caffemodel=None) -> ModelRef:
    """The ModelRef of a `--model` value (see the module doc); --deploy/--caffemodel override or give a pair."""
    if ref is None and deploy and caffemodel:
        return _caffe_pair(deploy, caffemodel)
    notes = []
    if ref is None:
        ref = in_project(DEFAULT_MODEL)
        notes.append(f"no --model given: using the model `make demo` trained and converted, {ref}")
        if not is_model_folder(ref):
            raise UserError(f"{ref}: not a converted model directory (no conversion.json) (run `make demo` first)")
    text = str(ref)
    path = Path(text)
    if path.is_dir():
        if is_model_folder(path):
            return _converted(path, deploy, caffemodel, notes)
        raise UserError(f"{path}: not a converted model directory (no conversion.json); convert a Caffe net "
                        "with `convert DEPLOY MODEL -o DIR`")
    if path.is_file() and path.suffix == ".safetensors":
        return _checkpoint(path)
    if ":" in text and text.split(":", 1)[0].endswith(".prototxt"):
        d, m = text.split(":", 1)
        return _caffe_pair(d, m)
    if path.suffix in (".prototxt", ".caffemodel") or path.is_file():
        raise UserError(f"{text}: give a Caffe net as DEPLOY.prototxt:MODEL.caffemodel (or --deploy and "
                        "--caffemodel), a converted model folder, a checkpoint .safetensors or a model name")
    spec = models.get(text)  # a registered name, or one clear error listing them
    weights = spec.find_weights()
    if spec.framework == "caffe":
        if weights is None:
            raise UserError(f"model {spec.name} has no trained weights yet ({spec.snapshot_prefix}_iter_*.caffemodel); "
                            f"train it with `{spec.how_to_train()}`")
        return _caffe_pair(in_project(spec.deploy), weights, spec)
    if weights is None:
        raise UserError(f"model {spec.name} has no checkpoint at {spec.checkpoint}; train it with "
                        f"`{spec.how_to_train()}`")
    ref = _checkpoint(weights)
    ref.label = spec.name  # asked for by name: messages and metadata name it so (e.g. duts/unet)
    return ref
