"""Shared pieces of the natively trained (PyTorch) families: their registry entries, initialisation, inputs.

Each family folder (`lrn/`, `unet/`, `extractnet/`, `patchcnn/`) builds its nets and registers one
`ModelSpec` per model through `native_spec`. A spec's `config` is what `build(**config)` takes (the width
multiplier among it), and `recipe` is its training recipe (`fcnkit.models.recipe.Recipe`: learning rate,
batch, epochs, loss, augmentation, encoder freezing, pretrained release). Default checkpoints live in
`weights/native/<name>.safetensors` with the JSON sidecar `fcnkit train` writes.

What the trainer asks of a model (`NativeModel`, checked by `check_model` when it builds one): an
`nn.Module` whose forward maps (N, 3, H, W) to one logit map (N, 1, H, W); a "deep_bce" recipe needs
`supervised(x)` (one logit map per level), a "patches" recipe `patch_logits(patches)`, a pretrained one
`encoder` and `load_pretrained(folder)`.
"""

from __future__ import annotations

import inspect
import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from fcnkit.config.paper import VGG_MEAN_BGR
from fcnkit.config.realdata import REAL_SIZE, REAL_TRAIN, REAL_TUNED, TASK_BY_NAME, RealTask, real_models
from fcnkit.config.seeds import RESNET_MEAN_BGR, SCRATCH_INPUT_SCALE
from fcnkit.errors import UserError
from fcnkit.models.recipe import Recipe
from fcnkit.models.registry import ModelSpec, Preprocessing, register

NATIVE_DIR = "weights/native"
TINY = "tiny"
TINY_WIDTH = 1 / 8
TINY_SIZE = "fixed:64"  # tiny VGG/ResNet nets run at 64x64 (outputs are resized back to the image)
TINY_WORDS = "CPU stand-in at 1/8 width and 64x64 input, trained from scratch (same topology; not the seed's net)"


def tiny_words(width: float) -> str:
    return TINY_WORDS.replace("1/8", f"1/{round(1 / width)}").replace(" and 64x64 input", "")
SAMPLE_WORDS = "the embedded sample set (white or composite)"
REAL_PRESETS = ("real", "real-quick")


def real_words(size: int = REAL_SIZE) -> str:
    return f"CPU model for real photos at {size}x{size}, batch-normalised, trained from scratch"


def checkpoint_path(name: str) -> str:
    return f"{NATIVE_DIR}/{name}.safetensors"


def preprocessing(size_rule: str, pretrained: str | None = None) -> Preprocessing:
    """BGR minus the mean of the weights' origin; scale 1 for Caffe Model Zoo weights, 1/58 from scratch."""
    if pretrained and pretrained.startswith("resnet"):
        return Preprocessing("BGR", RESNET_MEAN_BGR, 1.0, size_rule)
    if pretrained:
        return Preprocessing("BGR", VGG_MEAN_BGR, 1.0, size_rule)
    return Preprocessing("BGR", VGG_MEAN_BGR, SCRATCH_INPUT_SCALE, size_rule)


# `--set` / checkpoint settings, typed by the default value's type: a width multiplier in this range (below it
# layers lose every channel, above it a full-size VGG/ResNet net no longer fits a machine's memory), whole
# numbers at least 1 unless a family narrows them, true/false flags, and names from the family's list.
WIDTH_RANGE = (1 / 64, 2.0)


def check_settings(spec: ModelSpec, values, where: str = "--set") -> dict:
    """`spec.config` updated with `values` (from --set or a checkpoint's sidecar), every value checked against
    the setting's type and allowed values; UserError naming the key, the value and what is allowed."""
    if not isinstance(values, dict):
        raise UserError(f"{where}: settings must be a JSON object of KEY: VALUE, got {type(values).__name__}")
    choices, ranges = spec.extra.get("choices", {}), spec.extra.get("ranges", {})
    defaults = settings_of(spec)
    for key, value in values.items():
        if key not in defaults:
            raise UserError(f"{where}: {spec.name} has no setting {key!r}; its settings are "
                            f"{', '.join(f'{k}={v!r}' for k, v in defaults.items()) or 'none'}")
        default = defaults[key]
        shown = f"{where} {key}={value!r}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise UserError(f"{shown}: {key} is true or false")
        elif isinstance(default, int):
            lo, hi = ranges.get(key, (1, None))
            if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
                allowed = f"{lo} to {hi}" if hi is not None else f"at least {lo}"
                raise UserError(f"{shown}: {key} is a whole number, {allowed}")
        elif isinstance(default, float):
            lo, hi = ranges.get(key, WIDTH_RANGE if key == "width" else (-math.inf, math.inf))
            if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                    or not lo <= value <= hi):
                rng = f"from {lo:g} to {hi:g}" if math.isfinite(lo) else "finite"
                raise UserError(f"{shown}: {key} is a number {rng} (default {default:g})")
        elif isinstance(default, str):
            allowed = choices.get(key)
            if not isinstance(value, str) or (allowed is not None and value not in allowed):
                raise UserError(f"{shown}: {key} is one of {', '.join(allowed or ['a name'])}")
    return {**spec.config, **{k: (float(v) if isinstance(defaults[k], float) else v) for k, v in values.items()}}


def settings_of(spec: ModelSpec) -> dict:
    """Every setting a model takes with its default (whose type is the setting's type): `spec.config`, and the
    keyword parameters of `spec.build` with bool/int/float/str defaults."""
    out = {}
    try:
        params = inspect.signature(spec.build).parameters.values() if spec.build else []
    except (TypeError, ValueError):
        params = []
    for p in params:
        if isinstance(p.default, bool | int | float | str):
            out[p.name] = p.default
    return {**out, **spec.config}


def build_model(spec: ModelSpec, cfg: dict, where: str = "--set"):
    """spec.build(**cfg) with a build that fails (settings it rejects, memory it cannot get) as one line."""
    try:
        return spec.build(**cfg)
    except (ValueError, TypeError, RuntimeError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{where}: {spec.name} cannot be built with {cfg} ({first}); change the settings") from None


def native_spec(name: str, family: str, build, *, description: str, config: dict, train: dict,
                size_rule: str, trained_on: str, presets: tuple[str, ...], pretrained: str | None = None,
                supervision: str = "masks", init: str = "Glorot-uniform initialisation",
                extra: dict | None = None, choices: dict | None = None, ranges: dict | None = None) -> ModelSpec:
    """Register one PyTorch model (see the module doc). `choices` {setting: allowed names} and `ranges`
    {setting: (low, high)} narrow what `check_settings` accepts."""
    if pretrained:
        weights = (f"`fcnkit train {name}`; encoder from the {pretrained} Caffe Model Zoo release "
                   f"(`fcnkit fetch-weights {pretrained}`)")
    else:
        weights = f"`fcnkit train {name}`, {init}"
    return register(ModelSpec(
        name=name, family=family, framework="torch", output="sigmoid1",
        preprocessing=preprocessing(size_rule, pretrained), description=description, trained_on=trained_on,
        weights=weights, supervision=supervision, build=build, config=dict(config),
        checkpoint=checkpoint_path(name), recipe=Recipe(**train, pretrained=pretrained), presets=presets,
        extra={**(extra or {}), "choices": dict(choices or {}), "ranges": dict(ranges or {})}))


def real_specs(family: str, model: str, build, *, description: str, config: dict,
               train: dict | None = None, size_rule: str = f"fixed:{REAL_SIZE}", supervision: str = "masks",
               init: str = "Glorot-uniform initialisation", choices: dict | None = None,
               ranges: dict | None = None) -> list[ModelSpec]:
    """`<task>/<model>` for every real-photo task the family trains on (`config.realdata.REAL_TASKS`): the
    models `compare --preset real` trains, and what `remove-bg`, `serve` and `fcnkit models` then offer.
    `config.realdata.REAL_TUNED` changes one task's model (its input size, settings and recipe)."""
    out = []
    for task in real_models(family):
        name = f"{task.name}/{model}"
        tuned = REAL_TUNED.get(name, {})
        size = tuned.get("size")
        out.append(native_spec(name, family, build,
                               description=f"{description}; {real_words(size or REAL_SIZE)}",
                               config={**config, **tuned.get("config", {})},
                               train={**REAL_TRAIN, **(train or {}), **tuned.get("train", {})},
                               size_rule=f"fixed:{size}" if size else size_rule,
                               trained_on=task.trained_on, presets=REAL_PRESETS, supervision=supervision,
                               init=init, extra={"real": task.name}, choices=choices, ranges=ranges))
    return out


def real_task_of(spec: ModelSpec) -> RealTask | None:
    """The real-photo task a registered model is trained on, or None (sample-data and paper models)."""
    return TASK_BY_NAME.get((spec.extra or {}).get("real", ""))


def glorot_(module) -> None:
    """Glorot-uniform weights and zero biases for every (transposed) convolution under `module`."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@runtime_checkable
class NativeModel(Protocol):
    """What `fcnkit train` and inference call on every PyTorch model: (N, 3, H, W) -> (N, 1, H, W) logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DeepSupervision(Protocol):
    """A "deep_bce" recipe: one logit map per supervision level (the LRN's levels)."""

    def supervised(self, x: torch.Tensor) -> list[torch.Tensor]: ...


@runtime_checkable
class PatchModel(Protocol):
    """A "patches" recipe: logits of a batch of patches (the patch CNN)."""

    def patch_logits(self, patches: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Pretrainable(Protocol):
    """A recipe with `pretrained`: an `encoder` that Caffe Model Zoo weights are loaded into, and may freeze."""

    encoder: nn.Module

    def load_pretrained(self, folder=None) -> dict: ...


def check_model(model, recipe: Recipe, name: str) -> None:
    """Refuse, with the missing method named, a built model that cannot be trained by `recipe`."""
    needs = [(NativeModel, "forward(x)")]
    if recipe.loss == "deep_bce":
        needs.append((DeepSupervision, "supervised(x)"))
    if recipe.task == "patches":
        needs.append((PatchModel, "patch_logits(patches)"))
    if recipe.pretrained:
        needs.append((Pretrainable, "encoder and load_pretrained(folder)"))
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}: build() returned {type(model).__name__}, not a torch.nn.Module")
    for protocol, what in needs:
        if not isinstance(model, protocol):
            raise TypeError(f"{name}: its recipe (loss {recipe.loss}, task {recipe.task}, pretrained "
                            f"{recipe.pretrained}) needs {what}, which {type(model).__name__} lacks")
