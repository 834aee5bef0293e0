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

import ast
import importlib.util
import json
import math
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
from fcnkit.errors import UserError, os_error_from

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
            produced = set(self.input_blobs)
            for entry in info["layers"]:
                if entry["kind"] != "module":
                    continue
                spec = entry.get("module_spec")
                if spec is None:
                    raise UserError(f"{where}: layer {entry['name']!r} has no module_spec: the folder was written "
                                    "by an older converter; convert the net again")
                cls = module_class(spec["cls"], where)
                placed = sorted({"device", "dtype"} & set(spec["kwargs"]))
                if placed:
                    raise UserError(f"{where}: layer {entry['name']!r} sets {', '.join(placed)} for its module; "
                                    "`convert` never records that (the device is chosen when loading): convert the "
                                    "net again")
                for b in entry["bottoms"]:
                    if b not in produced:
                        raise UserError(f"{where}: layer {entry['name']!r} reads blob {b!r}, which no input or "
                                        "earlier layer produces; the file is damaged: convert the net again")
                try:
                    mod = cls(*_tuples(spec["args"]), **_tuples(spec["kwargs"]))
                except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
                    raise UserError(f"{where}: layer {entry['name']!r}: {spec['cls']} rejects its recorded "
                                    f"arguments ({exc}); convert the net again") from None
                self.add_module(entry["module"], mod)
                self.steps.append((entry["module"], list(entry["bottoms"]), list(entry["tops"]), spec["call"],
                                   bool(spec["multi_top"])))
                produced.update(entry["tops"])
            last_read = {b: i for i, (_, bottoms, _, _, _) in enumerate(self.steps) for b in bottoms}
            self._dead_after: list[list[str]] = [[] for _ in self.steps]
            for b, i in last_read.items():
                if b not in self.output_blobs:
                    self._dead_after[i].append(b)
            lost = [b for b in self.output_blobs if b not in produced]
            if lost:
                raise UserError(f"{where}: output blob(s) {lost} are produced by no layer; the file is damaged: "
                                "convert the net again")
        except (KeyError, TypeError) as exc:
            raise UserError(f"{where}: malformed ({type(exc).__name__}: {exc}); convert the net again") from None

    def forward(self, *xs: torch.Tensor):
        blobs = dict(zip(self.input_blobs, xs, strict=True))
        for (name, bottoms, tops, call, multi_top), dead in zip(self.steps, self._dead_after, strict=True):
            mod = self._modules[name]
            ins = [blobs[b] for b in bottoms]
            out = mod(ins) if call == "list" else mod(*ins)
            del ins
            outs = list(out) if multi_top else [out]
            del out
            for top, value in zip(tops, outs, strict=False):
                blobs[top] = value
            del outs
            for b in dead:  # no later step reads it: free it now (peak memory = the live blobs, not all of them)
                blobs.pop(b, None)
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
        err = os_error_from(exc, path)
        if err is None:
            raise
        raise err from None


_IMPORTS = {"json", "math", "os", "torch", "torch.nn.functional"}
_FROM_IMPORTS = {("torch", "nn")}
_FORBIDDEN_NAMES = {"exec", "eval", "compile", "__import__", "breakpoint", "globals", "locals", "vars", "setattr",
                    "delattr", "getattr", "input", "importlib", "subprocess", "sys", "builtins", "__builtins__",
                    "pickle", "marshal", "ctypes", "shutil", "socket"}
_FORBIDDEN_ATTRS = {"system", "popen", "spawnv", "spawnve", "execv", "execve", "execvp", "fork", "kill", "unlink",
                    "rmdir", "putenv", "chmod", "chown", "__subclasses__", "__globals__", "__code__",
                    "__builtins__", "__dict__", "__class__", "__bases__", "__mro__", "__getattribute__",
                    "__reduce__", "__loader__", "__spec__"}


def _audit_fail(where: str, node: ast.AST, what: str):
    raise UserError(f"{where}:{getattr(node, 'lineno', '?')}: {what}; this is not a model.py as `convert` writes "
                    "it, so it is not run: convert the net again")


def _is_literal(node: ast.AST) -> bool:
    """A constructor argument as codegen.lit spells it: constants, tuples/lists of them, -x, float("inf")."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_literal(node.operand)
    if isinstance(node, ast.Tuple | ast.List):
        return all(_is_literal(e) for e in node.elts)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in ("inf", "-inf", "nan"))


def _is_self_attr(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
            and not node.attr.startswith("__"))


def _audit_net_class(cls: ast.ClassDef, where: str, classes: set[str]) -> None:
    """The generated net class: __init__ only builds modules from literals, forward only calls them on blobs."""
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name not in ("__init__", "forward", "forward_onnx"):
            _audit_fail(where, fn, f"unexpected statement in class {cls.name}")
        if fn.decorator_list:
            _audit_fail(where, fn, f"decorated method {fn.name}")
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # docstring
        for st in body:
            if fn.name == "__init__":
                if (isinstance(st, ast.Expr) and isinstance(st.value, ast.Call)
                        and ast.unparse(st.value) == "super().__init__()"):
                    continue
                ok = (isinstance(st, ast.Assign) and len(st.targets) == 1 and _is_self_attr(st.targets[0])
                      and isinstance(st.value, ast.Call)
                      and isinstance(st.value.func, ast.Name | ast.Attribute)
                      and all(_is_literal(a) for a in st.value.args)
                      and all(_is_literal(k.value) and k.arg is not None for k in st.value.keywords))
                f = st.value.func if ok else None
                if isinstance(f, ast.Attribute):  # nn.Conv2d, plugin_mymodule.MyLayer
                    ok = isinstance(f.value, ast.Name) and (f.value.id == "nn" or f.value.id.startswith("plugin_"))
                elif isinstance(f, ast.Name):  # a Caffe-semantics class defined in this file
                    ok = f.id in classes
                if not ok:
                    _audit_fail(where, st, "__init__ does more than build layer modules from literal arguments")
            elif isinstance(st, ast.Return):
                vals = st.value.elts if isinstance(st.value, ast.Tuple) else [st.value]
                if not all(isinstance(v, ast.Name) for v in vals):
                    _audit_fail(where, st, f"{fn.name} returns something other than blobs")
            else:
                call = st.value if isinstance(st, ast.Assign) else None
                if isinstance(call, ast.Subscript):  # a multi-top module of which one top is used: (...)[0]
                    call = call.value if isinstance(call.slice, ast.Constant) else None
                targets = st.targets[0].elts if isinstance(st, ast.Assign) and isinstance(
                    st.targets[0], ast.Tuple) else (st.targets if isinstance(st, ast.Assign) else [])
                args = list(call.args) if isinstance(call, ast.Call) else []
                if len(args) == 1 and isinstance(args[0], ast.List):
                    args = list(args[0].elts)
                ok = (isinstance(call, ast.Call) and _is_self_attr(call.func) and not call.keywords
                      and len(st.targets) == 1 and all(isinstance(t, ast.Name) for t in targets)
                      and all(isinstance(a, ast.Name) for a in args))
                if not ok:
                    _audit_fail(where, st, f"{fn.name} does more than call the layer modules on blobs")


def audit_generated(source: str, where: str, class_name: str) -> ast.Module:
    """Parse a model.py and check it has the shape `convert` gives it before anything runs it: imports only of
    torch, json, math, os and `plugin_*` modules; no exec/eval/getattr-like names or os.system-like attributes
    anywhere; and the one class built from the input files (`class_name`) only builds layer modules from
    literal arguments and calls them on blobs. Generated names are escaped (codegen.text / repr); this is the
    second lock. UserError naming the line otherwise."""
    try:
        tree = ast.parse(source, filename=where)
    except (SyntaxError, ValueError) as exc:
        raise UserError(f"{where}: not valid Python ({exc}); convert the net again") from None
    found = False
    classes = {st.name for st in tree.body if isinstance(st, ast.ClassDef) and st.name != class_name}
    for st in tree.body:
        if isinstance(st, ast.Import):
            for a in st.names:
                plugin = a.asname is not None and a.asname == "plugin_" + a.name.replace(".", "_")
                if a.name not in _IMPORTS and not plugin:
                    _audit_fail(where, st, f"imports {a.name}")
        elif isinstance(st, ast.ImportFrom):
            for a in st.names:
                if (st.module, a.name) not in _FROM_IMPORTS or st.level:
                    _audit_fail(where, st, f"imports {a.name} from {st.module}")
        elif isinstance(st, ast.ClassDef) and st.name == class_name:
            found = True
            _audit_net_class(st, where, classes)
    if not found:
        _audit_fail(where, tree, f"no class {class_name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in _FORBIDDEN_NAMES:
            _audit_fail(where, node, f"uses {node.id}")
        if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRS:
            _audit_fail(where, node, f"uses .{node.attr}")
        if isinstance(node, ast.Import | ast.ImportFrom) and node not in tree.body:
            _audit_fail(where, node, "imports inside a function or class")
    return tree


def load_generated(model_py: Path, name: str | None = None, class_name: str | None = None):
    """Import a generated model.py as a fresh module object (not registered under a shared name). Only for
    model.py files this process has just written (checks of `convert`), and only after `audit_generated`
    accepted the very text that is then compiled (read once: no window for the file to change)."""
    model_py = Path(model_py)
    source = model_py.read_text()
    if class_name is None:
        m = re.search(r"^Net = (\w+)$", source, flags=re.M)
        class_name = m.group(1) if m else "Net"
    tree = audit_generated(source, str(model_py), class_name)
    name = name or f"_fcnkit_converted_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(model_py))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(model_py)
    sys.modules[name] = module  # dataclass/TorchScript introspection wants the module registered
    try:
        # dont_inherit: this module's `from __future__ import annotations` must not leak into model.py
        exec(compile(tree, str(model_py), "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - audited above
    except Exception:
        sys.modules.pop(name, None)
        raise
    return module
