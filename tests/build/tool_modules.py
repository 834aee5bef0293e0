"""tools/build_caffe.py (`bc`) and tools/check_gpu_build.py (`cg`), imported by path: they are standalone
scripts, not part of the fcnkit package. check_gpu_build imports build_caffe by name, so both share one module."""

from __future__ import annotations

import importlib.util
import sys

from conftest import ROOT


def load_tool(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


bc = load_tool("build_caffe")
cg = load_tool("check_gpu_build")
