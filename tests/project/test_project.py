"""Project hygiene that CI must enforce: lint, Dockerfile lint, the container entrypoint."""

from __future__ import annotations

import subprocess

from conftest import ROOT, VENV_BIN


def test_ruff_clean():
    r = subprocess.run([str(VENV_BIN / "ruff"), "check", str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_clean():
    r = subprocess.run([str(VENV_BIN / "hadolint"), str(ROOT / "Dockerfile.caffe")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_container_builds_caffe_with_the_same_script_in_gpu_mode():
    text = (ROOT / "Dockerfile.caffe").read_text()
    assert "FROM nvidia/cuda:" in text and "-devel-" in text
    assert 'make setup PYTHON=python3 CAFFE_FLAGS="--gpu"' in text
    assert 'ENTRYPOINT ["fcnkit"]' in text
    make = (ROOT / "Makefile").read_text()
    assert "tools/build_caffe.py" in make and "$(CAFFE_FLAGS)" in make


def test_every_python_module_the_makefile_and_ci_run_exists():
    """`make demo` once ran a module the restructuring had moved: every `-m MODULE` must import."""
    import importlib.util
    import re

    for name in ("Makefile", ".ci/run", "Dockerfile.caffe"):
        for module in re.findall(r"-m ([\w.]+)", (ROOT / name).read_text()):
            if module in ("venv", "pip", "pytest"):
                continue
            assert importlib.util.find_spec(module) is not None, f"{name} runs `-m {module}`, which does not exist"
