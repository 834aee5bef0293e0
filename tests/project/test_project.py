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
    # a Debian base Docker Hub has; the CUDA toolkit from the pinned wheels, not an nvidia/cuda base image
    assert "\nARG BASE_IMAGE=debian:bookworm-slim\n" in text
    assert [ln for ln in text.splitlines() if ln.startswith("FROM ")] == ["FROM ${BASE_IMAGE} AS build",
                                                                          "FROM ${BASE_IMAGE}"]
    assert "tools/check_gpu_build.py --install-toolkit /opt/cuda" in text
    assert 'make caffe CAFFE_FLAGS="--gpu --cuda-dir /opt/cuda' in text
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
