"""tools/build_caffe.py: the GPU configuration (dry run), and every failure path stops with one line."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = ROOT / "tools" / "build_caffe.py"


def load_build_module():
    spec = importlib.util.spec_from_file_location("build_caffe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_caffe"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


bc = load_build_module()


def run_script(*args, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, **kw)


def config_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":=" in line and not line.startswith("#"):
            k, v = line.split(":=", 1)
            out[k.strip()] = v.split("#")[0].strip()
    return out


def test_gpu_dry_run_prints_cuda_makefile_config_and_builds_nothing(tmp_path):
    r = run_script("--gpu", "--dry-run", "--cache-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    cfg = config_values(r.stdout)
    assert cfg["CPU_ONLY"] == "0"
    assert cfg["USE_CUDNN"] == "0"
    assert cfg["CUDA_DIR"] == "/usr/local/cuda"
    for sm in ("60", "70", "75", "80", "86", "89", "90"):
        assert f"code=sm_{sm}" in cfg["CUDA_ARCH"]
    assert "code=compute_90" in cfg["CUDA_ARCH"]  # PTX for GPUs newer than Hopper
    assert cfg["USE_LMDB"] == "1" and cfg["USE_OPENCV"] == "1" and cfg["WITH_PYTHON_LAYER"] == "1"
    tag = f"{sys.version_info[0]}{sys.version_info[1]}"
    assert cfg["PYTHON_LIBRARIES"].startswith(f"boost_python{tag} ")
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_cpu_and_gpu_configs_differ_only_where_they_should():
    py = bc.PythonInfo.probe(sys.executable)
    cpu = config_values(bc.Config(gpu=False, py=py).makefile_config())
    gpu = config_values(bc.Config(gpu=True, py=py).makefile_config())
    assert cpu["CPU_ONLY"] == "1" and "CUDA_ARCH" not in cpu
    assert {k for k in cpu if cpu[k] != gpu.get(k)} == {"CPU_ONLY"}
    assert bc.Config(gpu=False, py=py).key() != bc.Config(gpu=True, py=py).key()


def test_checksum_mismatch_stops_with_one_line_and_keeps_nothing(tmp_path, http_dir):
    www, url = http_dir
    (www / "fake.tar.gz").write_bytes(b"not the caffe sdist")
    cache = tmp_path / "cache"
    r = run_script("--fetch-only", "--cache-dir", str(cache), "--sdist-url", f"{url}/fake.tar.gz")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "checksum mismatch" in r.stderr and bc.SDIST_SHA256 in r.stderr
    assert list((cache / "downloads").iterdir()) == []


def test_failed_download_stops_with_one_line(tmp_path, http_dir):
    _, url = http_dir
    r = run_script("--fetch-only", "--cache-dir", str(tmp_path), "--sdist-url", f"{url}/missing.tar.gz")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "download of" in r.stderr and "404" in r.stderr
    assert list((tmp_path / "downloads").iterdir()) == []


def test_download_of_the_real_sdist_is_verified_and_kept(tmp_path, http_dir):
    cached = bc.default_cache() / "downloads" / bc.SDIST_FILE
    if not cached.exists():
        pytest.skip("no cached sdist: run `make setup` first")
    www, url = http_dir
    (www / bc.SDIST_FILE).symlink_to(cached)
    r = run_script("--fetch-only", "--cache-dir", str(tmp_path), "--sdist-url", f"{url}/{bc.SDIST_FILE}")
    assert r.returncode == 0, r.stderr
    got = tmp_path / "downloads" / bc.SDIST_FILE
    assert hashlib.sha256(got.read_bytes()).hexdigest() == bc.SDIST_SHA256


def test_failed_compile_reports_the_error_line_and_log(tmp_path):
    src = tmp_path / "src"
    (src / "src" / "caffe").mkdir(parents=True)
    (src / "src" / "caffe" / "a.cpp").write_text("int main() { return }\n")
    (src / "Makefile").write_text("all pycaffe:\n\t@echo CXX src/caffe/a.cpp\n\t@g++ -c src/caffe/a.cpp -o /dev/null\n")
    cfg = bc.Config(gpu=False, py=bc.PythonInfo.probe(sys.executable), jobs=1)
    with pytest.raises(bc.BuildError) as e:
        bc.run_make(src, cfg, tmp_path / "build.log")
    msg = str(e.value)
    assert "compiling Caffe failed" in msg and "error" in msg and str(tmp_path / "build.log") in msg
    assert "\n" not in msg
    assert "expected" in (tmp_path / "build.log").read_text()


def test_incomplete_cache_entries_are_not_trusted(tmp_path):
    entry = tmp_path / "caffe-cpu-x"
    (entry / "bin").mkdir(parents=True)
    (entry / "bin" / "caffe").write_text("")
    assert not bc.is_complete(entry)  # no BUILD_INFO.json: an interrupted build
    (entry / "BUILD_INFO.json").write_text("{}")
    assert bc.is_complete(entry)


def test_missing_debian_packages_are_named():
    missing = bc.missing_apt_packages(["libc6", "fcnkit-no-such-package"])
    assert missing == ["fcnkit-no-such-package"]
