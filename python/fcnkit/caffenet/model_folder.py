"""The converted-model format: a folder holding model.py, weights.safetensors and conversion.json, written
by `convert` and read here (`write_info`, `read_info`, `read_weights`, `load_converted`, `load_generated`).

Loading is data, never code: `convert` writes a readable `model.py` for people who want standalone source, but
inference (evaluate, remove-bg, the web server) must not run whatever a shared folder's model.py contains.
Here the module is rebuilt from `conversion.json` alone: every layer entry names its module class (a
`torch.nn` class or one of this package's Caffe-semantics classes in `fcnkit.caffenet.modules`, nothing else)
with its constructor arguments as JSON values, and the forward pass follows the recorded bottoms and tops.
Weights are read by the `safetensors` library, which rejects malformed headers (overlapping or out-of-range
offsets, negative shapes) before any tensor is built. The result computes exactly what model.py computes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
import uuid
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file
from torch import nn

from fcnkit.caffenet import modules
from fcnkit.errors import UserError

MODEL_FILE = "model.py"
WEIGHTS_FILE = "weights.safetensors"
INFO_FILE = "conversion.json"


def module_class(name: str, where: str) -> type[nn.Module]:
    """The class a spec names: only torch.nn modules and the Caffe-semantics classes of fcnkit.caffenet.modules."""
    cls = modules.lookup(name)
    if cls is None:
        raise UserError(f"{where}: module class {name!r} is neither a torch.nn module nor a converter runtime "
                        "class; the file was not written by `convert` (or by a newer version): convert again")
    return cls


def _tuples(v):
    """JSON lists back to the tuples the module constructors were given."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def to_json_value(v):
    """A constructor argument as a JSON value (tuples become lists; inf/nan stay floats). Floats are the value
    model.py spells (codegen.lit: the shortest float32 spelling), so both build bit-identical modules."""
    if isinstance(v, tuple | list):
        return [to_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, bool | np.bool_ | int | np.integer):
        return v.item() if hasattr(v, "item") else v
    if isinstance(v, float | np.floating):
        f = np.float32(v)
        return float(f) if not np.isfinite(f) else float(str(f))
    if hasattr(v, "item"):  # other numpy scalars
        return v.item()
    return v


class ConvertedNet(nn.Module):
    """A converted Caffe net rebuilt from conversion.json; forward(*inputs) returns what model.py returns."""

    def __init__(self, info: dict, where: str = INFO_FILE):
        super().__init__()
        if info.get("plugins"):
            raise UserError(f"{where}: the net has Python layers converted by --plugin modules "
                            f"({', '.join(sorted(set(info['plugins'].values())))}); they exist only as code: load it "
                            "with its model.py")
        try:
            self.input_blobs = [i["blob"] for i in info["inputs"]]
            self.output_blobs = [o["blob"] for o in info["outputs"]]
            self.steps: list[tuple[str, list[str], list[str], str, bool]] = []
            for entry in info["layers"]:
                if entry["kind"] != "module":
                    continue
                spec = entry.get("module_spec")
                if spec is None:
                    raise UserError(f"{where}: layer {entry['name']!r} has no module_spec: the folder was written "
                                    "by an older converter; convert the net again")
                cls = module_class(spec["cls"], where)
                try:
                    mod = cls(*_tuples(spec["args"]), **_tuples(spec["kwargs"]))
                except (TypeError, ValueError, RuntimeError) as exc:
                    raise UserError(f"{where}: layer {entry['name']!r}: {spec['cls']} rejects its recorded "
                                    f"arguments ({exc}); convert the net again") from None
                self.add_module(entry["module"], mod)
                self.steps.append((entry["module"], list(entry["bottoms"]), list(entry["tops"]), spec["call"],
                                   bool(spec["multi_top"])))
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where}: malformed ({type(exc).__name__}: {exc}); convert the net again") from None

    def forward(self, *xs: torch.Tensor):
        blobs = dict(zip(self.input_blobs, xs, strict=True))
        for name, bottoms, tops, call, multi_top in self.steps:
            mod = self._modules[name]
            ins = [blobs[b] for b in bottoms]
            out = mod(ins) if call == "list" else mod(*ins)
            outs = list(out) if multi_top else [out]
            for top, value in zip(tops, outs, strict=False):
                blobs[top] = value
        result = tuple(blobs[b] for b in self.output_blobs)
        return result[0] if len(result) == 1 else result


def is_model_folder(path: str | Path) -> bool:
    """Does `path` hold a converted model (its conversion.json)?"""
    return (Path(path) / INFO_FILE).is_file()


def read_info(folder: str | Path) -> dict:
    """folder/conversion.json as a dict; one line naming the file when it is missing or unreadable."""
    path = Path(folder) / INFO_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{Path(folder)}: not a converted model directory (no {INFO_FILE})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); convert the net again with `convert ... -o {folder}`"
                        ) from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file, read by the safetensors library (header fully validated)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; convert the net again")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a valid safetensors file ({first}); convert the net again") from None


def non_finite(tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    """{tensor name: number of NaN/inf values} for every tensor that has any."""
    out = {}
    for k, t in tensors.items():
        if t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                out[k] = n
    return out


def load_converted(folder: str | Path, device: str = "cpu", *, allow_non_finite: bool = False) -> ConvertedNet:
    """The converted model in `folder`, in eval mode, with its weights; executes nothing from the folder.

    Weights with NaN/inf are refused (every output would be non-finite) unless `allow_non_finite` (for
    --verify, which must run the model to report the failure)."""
    folder = Path(folder)
    info = read_info(folder)
    with torch.device("meta"):
        net = ConvertedNet(info, str(folder / INFO_FILE))
    state = read_weights(folder / WEIGHTS_FILE)
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        wrong = [k for k in want if k in got and want[k] != got[k]][:3]
        raise UserError(f"{folder / WEIGHTS_FILE}: does not match {INFO_FILE} (missing {missing}, unexpected "
                        f"{extra}, other shapes {wrong}); the two files come from different conversions")
    bad = {} if allow_non_finite else non_finite(state)
    if bad:
        where = ", ".join(f"{k} ({n} of {math.prod(state[k].shape)})" for k, n in list(bad.items())[:4])
        raise UserError(f"{folder / WEIGHTS_FILE}: non-finite weights (NaN/inf) in {where}; the source caffemodel "
                        "is corrupt or the training diverged: use an earlier snapshot")
    net.load_state_dict(state, strict=True, assign=True)
    return net.to(device).eval()


_NUM_LIST = re.compile(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]")


def dumps(info: dict) -> str:
    """Indented JSON with lists of numbers (shapes) kept on one line."""
    text = json.dumps(info, indent=1)
    return _NUM_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def write_info(folder: Path, info: dict) -> None:
    """folder/conversion.json: `info` as indented JSON (see `dumps`)."""
    (Path(folder) / INFO_FILE).write_text(dumps(info) + "\n")


def write_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    try:
        save_file(tensors, str(path), metadata=metadata)
    except Exception as exc:  # the Rust writer reports I/O errors as SafetensorError("... (os error N)")
        m = re.search(r"os error (\d+)", str(exc))
        if m is None:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def load_generated(model_py: Path, name: str | None = None):
    """Import a generated model.py as a fresh module object (not registered under a shared name). This runs
    the file: only for model.py files this process has just written (checks of `convert`)."""
    name = name or f"_fcnkit_converted_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, model_py)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclass/TorchScript introspection wants the module registered
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module
