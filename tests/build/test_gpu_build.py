"""The CUDA build that `make check-gpu-build` compiles (the container's recipe, no GPU here): every .cu file
went through nvcc into libcaffe.so, and its pycaffe runs the tiny FCN-8s exactly like the CPU build.

Which build: the architecture set in FCNKIT_CUDA_ARCHS (the Makefile passes its CUDA_ARCHS; default `ci`, as in
`make test`), so the same tests check `make check-gpu-build CUDA_ARCHS=all`. Counts come from the build's
record and the sdist, never from here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from tool_modules import bc, cg

PROBE = Path(__file__).with_name("pycaffe_probe.py")
DEPLOY = ROOT / "prototxt" / "tiny" / "fcn8s" / "deploy.prototxt"
pytestmark = pytest.mark.caffe


@pytest.fixture(scope="module")
def gpu_build():
    """The GPU build for this checkout's recipe, the container's CUDA and FCNKIT_CUDA_ARCHS; never built here
    (too slow for a test)."""
    archs = os.environ.get("FCNKIT_CUDA_ARCHS", "ci")
    check = cg.prepare(sys.executable, archs=archs, install_wheels=False)
    if not bc.is_complete(check.build_dir):
        pytest.fail(f"no GPU build at {check.build_dir}: run `make check-gpu-build CUDA_ARCHS={archs}` "
                    "(or `make test`) first")
    return check


def sdist_cu_files() -> set[str]:
    """Every .cu file under src/ of the sdist itself, read from the tarball, not from the build's record."""
    sdist = bc.default_cache() / "downloads" / bc.SDIST_FILE
    assert bc.sha256_of(sdist) == bc.SDIST_SHA256
    top = f"{bc.SDIST_NAME}-{bc.SDIST_VERSION}/"
    with tarfile.open(sdist) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile() and m.name.endswith(".cu")]
    return {n[len(top):] for n in names if n.startswith(top + "src/")}


def test_every_cu_file_under_src_was_compiled_for_the_checked_archs(gpu_build):
    info = gpu_build.record()
    cuda = info["cuda"]
    expected = sdist_cu_files()
    # the sdist's CUDA sources: layers, utilities, cuDNN layers and CUDA test kernels alike
    assert {"src/caffe/layers/conv_layer.cu", "src/caffe/util/math_functions.cu"} <= expected
    assert any("/test/" in u for u in expected) and any("cudnn" in u for u in expected)
    units = cuda["cu_units"]
    assert set(units) == expected, f"not in the build's record: {sorted(expected - set(units))}"
    not_compiled = sorted(u for u, r in units.items() if not (r["compiled"] and r["object"]))
    assert not not_compiled, f"nvcc did not compile: {not_compiled}"

    # the requested architectures, all of them targets of the container's build, PTX for the last
    archs = set(cuda["archs"])
    assert cuda["archs"] == list(gpu_build.cfg.archs()) and cuda["ptx_arch"] == cuda["archs"][-1]
    assert archs and archs <= set(cg.container_archs(gpu_build.release))
    for unit, r in units.items():  # each object carries SASS for exactly the configured archs, plus the PTX
        assert set(r["sass"]) == archs and all(n == 1 for n in r["sass"].values()), (unit, r["sass"])
        assert r["ptx"] == {cuda["ptx_arch"]: 1}, (unit, r["ptx"])

    # libcaffe.so holds the device code of every linked .cu object, once per arch: nothing dropped at link time
    linked = sum(r["linked"] for r in units.values())
    assert linked == len(units) - sum("/test/" in u for u in units)
    images = cuda["libcaffe_images"]
    assert images["sass"] == {a: linked for a in archs}
    assert images["ptx"] == {cuda["ptx_arch"]: linked}

    toolkit = cuda["toolkit"]
    assert toolkit["nvcc"] == gpu_build.release["nvcc"]
    for lib, pin in gpu_build.release["wheels"].items():
        assert pin.split("==")[1].startswith(toolkit["headers"][lib])
        assert toolkit["header_files"][lib].startswith(str(gpu_build.cuda_prefix))  # wheel headers, not the host's
    assert "CPU_ONLY := 0" in info["makefile_config"] and "USE_CUDNN := 0" in info["makefile_config"]


def run_probe(workdir: Path, env: dict) -> tuple[dict, dict[str, np.ndarray]]:
    workdir.mkdir()
    env = dict(env, GLOG_minloglevel="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(PROBE), str(DEPLOY), str(workdir)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    report["stderr"] = r.stderr
    with np.load(workdir / "numbers.npz") as npz:
        return report, {k: npz[k] for k in npz.files}


def test_gpu_pycaffe_runs_tiny_fcn8s_forward_and_solver_step_like_the_cpu_build(gpu_build, tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    cpu_report, cpu = run_probe(tmp_path / "cpu", base)  # the venv's pycaffe: the CPU build
    gpu_env = gpu_build.runtime_env(dict(base, PYTHONPATH=str(gpu_build.build_dir / "python")))
    gpu_report, gpu = run_probe(tmp_path / "gpu", gpu_env)

    assert Path(gpu_report["caffe"]).is_relative_to(gpu_build.build_dir)
    assert not Path(cpu_report["caffe"]).is_relative_to(gpu_build.build_dir)
    libs = gpu_report["libraries"]
    assert any(Path(p).is_relative_to(gpu_build.build_dir) and "libcaffe.so" in p for p in libs)
    for name in ("libcudart.so", "libcublas.so", "libcurand.so"):  # linked, and loaded from the pinned wheels
        hits = [p for p in libs if Path(p).name.startswith(name)]
        assert hits and all(Path(p).is_relative_to(gpu_build.cuda_prefix) for p in hits), (name, hits)
    assert not any("libcudart" in p for p in cpu_report["libraries"])
    if not Path("/dev/nvidia0").exists():  # the GPU build's CUDA init ran, found no GPU and carried on
        assert "Cannot create Cublas handle" in gpu_report["stderr"]

    assert set(gpu) == set(cpu) and any(k.startswith("step/param/") for k in cpu)
    assert np.all(np.isfinite(cpu["forward/score"])) and np.abs(cpu["forward/score"]).max() > 0
    assert cpu["step/loss"] > 0
    # the same C++ on the same OpenBLAS (one thread): equal to float32 precision, a few ulps at most
    differ = {k: float(np.max(np.abs(gpu[k].astype(np.float64) - cpu[k]) / (np.abs(cpu[k]) + 1e-30)))
              for k in cpu if not np.allclose(gpu[k], cpu[k], rtol=1e-6, atol=0)}
    assert not differ, f"the GPU build's CPU path differs from the CPU build (max relative error): {differ}"
