"""tools/build_caffe.py: the GPU configuration (dry run), what only GPU builds change, the container's use of
the recipe, and every failure path stops with one line."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import ROOT
from tool_modules import bc, cg

SCRIPT = ROOT / "tools" / "build_caffe.py"


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
    r = run_script("--gpu", "--dry-run", "--cache-dir", str(tmp_path), "--cuda-dir", str(tmp_path / "no-cuda"))
    assert r.returncode == 0, r.stderr
    cfg = config_values(r.stdout)
    assert cfg["CPU_ONLY"] == "0"
    assert cfg["USE_CUDNN"] == "0"
    assert cfg["CUDA_DIR"] == str(tmp_path / "no-cuda")
    # no toolkit to ask: the newest CUDA's defaults, Turing to Blackwell, PTX for GPUs newer than the list
    sass = re.findall(r"code=sm_(\d+)", cfg["CUDA_ARCH"])
    assert sass == list(bc.CUDA_ARCHS_BY_MAJOR[bc.NEWEST_CUDA_MAJOR]) == ["75", "80", "86", "89", "90", "100", "120"]
    assert re.findall(r"code=compute_(\d+)", cfg["CUDA_ARCH"]) == ["120"]
    assert cfg["USE_LMDB"] == "1" and cfg["USE_OPENCV"] == "1" and cfg["WITH_PYTHON_LAYER"] == "1"
    tag = f"{sys.version_info[0]}{sys.version_info[1]}"
    assert cfg["PYTHON_LIBRARIES"].startswith(f"boost_python{tag} ")
    assert "no toolkit found" in r.stdout
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_default_archs_follow_the_compiling_nvcc():
    cuda12 = bc.CudaInfo(nvcc="12.6.85", headers={}, header_files={})
    assert bc.Config(gpu=True, cuda=cuda12).archs()[:3] == ("60", "61", "70")  # CUDA 12 still builds Pascal/Volta
    assert bc.Config(gpu=True, cuda=cuda12, cuda_archs=("86",)).archs() == ("86",)
    with pytest.raises(bc.BuildError, match="--cuda-archs"):
        bc.Config(gpu=True, cuda=bc.CudaInfo(nvcc="99.0.1", headers={}, header_files={})).archs()


def test_gpu_only_patches_and_toolkit_leave_the_cpu_build_alone(monkeypatch):
    py = bc.PythonInfo.probe(sys.executable)
    cuda = bc.CudaInfo(nvcc="13.0.88", headers={"cudart": "13.0"}, header_files={})
    cpu, gpu = bc.Config(gpu=False, py=py), bc.Config(gpu=True, py=py, cuda=cuda)
    cpu_key, gpu_key, cpu_config = cpu.key(), gpu.key(), cpu.makefile_config()
    monkeypatch.setattr(bc, "CUDA_SOURCE_PATCHES", bc.CUDA_SOURCE_PATCHES[1:])
    assert cpu.key() == cpu_key and cpu.makefile_config() == cpu_config
    patched_key = gpu.key()
    assert patched_key != gpu_key  # the CUDA patches are in the GPU key...
    older = bc.CudaInfo(nvcc="13.0.48", headers={"cudart": "13.0"}, header_files={})
    assert bc.Config(gpu=True, py=py, cuda=older).key() != patched_key  # ...and so is the toolkit
    assert len({rel for rel, *_ in bc.SOURCE_PATCHES} & {rel for rel, *_ in bc.CUDA_SOURCE_PATCHES}) == 0


def test_ci_compiles_the_containers_oldest_target_and_all_compiles_every_one():
    targets = cg.container_archs(cg.release_for(cg.container_cuda_version()))
    assert cg.resolve_archs("ci", targets) == cg.resolve_archs("", targets) == (min(targets, key=int),)
    assert cg.resolve_archs("all", targets) == targets
    assert cg.resolve_archs(f"sm_{targets[-1]},{targets[0]}", targets) == (targets[0], targets[-1])  # PTX: newest
    with pytest.raises(bc.BuildError, match=r"sm_61 is not among the container's targets .* ci or all"):
        cg.resolve_archs("61,75", targets)
    # make test and CI compile the `ci` set: the Makefile's default, not overridden by .ci/run
    assert re.search(r"^CUDA_ARCHS \?= ci$", (ROOT / "Makefile").read_text(), re.M)
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert not any("CUDA_ARCHS" in line for line in ci_commands)


def sdist_members(dest: Path, names: set[str]) -> Path:
    """Extract these files (paths inside the source tree) of the cached sdist into dest; return the tree."""
    sdist = bc.default_cache() / "downloads" / bc.SDIST_FILE
    if not sdist.exists():
        pytest.skip("no cached sdist: run `make setup` first")
    top = f"{bc.SDIST_NAME}-{bc.SDIST_VERSION}"
    with tarfile.open(sdist) as tf:
        tf.extractall(dest, members=[tf.getmember(f"{top}/{n}") for n in sorted(names)], filter="data")
    return dest / top


def test_cuda_patches_apply_and_give_the_cpu_only_layers_the_gpu_methods_their_headers_declare(tmp_path):
    fallbacks = {rel: old[len("STUB_GPU("):-2] for rel, old, *_ in bc.CUDA_SOURCE_PATCHES
                 if old.startswith("STUB_GPU(")}
    headers = {rel: f"include/caffe/layers/{Path(rel).stem}.hpp" for rel in fallbacks}
    src = sdist_members(tmp_path, {rel for rel, *_ in bc.CUDA_SOURCE_PATCHES} | set(headers.values()))
    for rel, layer in fallbacks.items():  # what the sdist declares and leaves undefined outside CPU_ONLY
        declared = re.findall(r"virtual void (\w+_gpu)\(", (src / headers[rel]).read_text())
        assert sorted(declared) == ["Backward_gpu", "Forward_gpu"], (layer, declared)
        assert f"{layer}<Dtype>::Forward_gpu" not in (src / rel).read_text()
    bc.apply_source_patches(src, bc.CUDA_SOURCE_PATCHES)  # every patch matches (else BuildError)
    assert len(fallbacks) == 6
    for rel, layer in fallbacks.items():
        text = (src / rel).read_text()
        gpu_only = text[text.index("#ifdef CPU_ONLY"):]
        gpu_only = gpu_only[gpu_only.index("#else"):gpu_only.index("#endif")]  # the GPU build's branch
        assert f"void {layer}<Dtype>::Forward_gpu(" in gpu_only and "this->Forward_cpu(bottom, top);" in gpu_only
        assert f"void {layer}<Dtype>::Backward_gpu(" in gpu_only
        assert "this->Backward_cpu(top, propagate_down, bottom);" in gpu_only


def process_alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "State:\tZ" not in status.read_text()  # a zombie has finished; only its parent's reaping is left
    except FileNotFoundError:
        return False


def test_an_interrupted_build_stops_make_and_its_compilers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    # a "compiler" that records its pid and would run for two minutes
    (src / "Makefile").write_text("all pycaffe:\n\t@echo CXX src/caffe/a.cpp\n"
                                  "\t@echo $$$$ > compiler.pid; exec sleep 120\n")
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import build_caffe as bc; "
            "cfg = bc.Config(gpu=False, jobs=1); "
            "sys.exit(bc.interruptible(lambda: bc.run_make(Path(sys.argv[2]), cfg, Path(sys.argv[3])), 'build_caffe'))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tools"), str(src), str(tmp_path / "build.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = src / "compiler.pid"
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.time() < deadline:
        time.sleep(0.1)
    compiler = int(pid_file.read_text())
    assert process_alive(compiler)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip() == "build_caffe: interrupted (SIGTERM); no build was kept or installed"
    deadline = time.time() + 10
    while process_alive(compiler) and time.time() < deadline:
        time.sleep(0.1)
    assert not process_alive(compiler), "make's compiler outlived the interrupted build"


def test_cuda_prefixes_come_before_the_toolkit_in_the_gpu_config_only(tmp_path):
    py = bc.PythonInfo.probe(sys.executable)
    cfg = config_values(bc.Config(gpu=True, py=py, cuda_prefixes=(str(tmp_path),)).makefile_config())
    assert cfg["INCLUDE_DIRS"].split()[1] == f"{tmp_path}/include"  # right after Python's, before any system dir
    assert cfg["LIBRARY_DIRS"].split()[1] == f"{tmp_path}/lib"
    cpu = config_values(bc.Config(gpu=False, py=py, cuda_prefixes=(str(tmp_path),)).makefile_config())
    assert str(tmp_path) not in cpu["INCLUDE_DIRS"] + cpu["LIBRARY_DIRS"]


def test_container_installs_exactly_the_recipes_debian_packages():
    text = (ROOT / "Dockerfile.caffe").read_text()
    installs = re.findall(r"apt-get install ([^&\n]*)", text)
    by_hand = {w for line in installs for w in line.split() if not w.startswith("-") and w != "\\"}
    assert by_hand == {"python3"}  # the interpreter that runs the recipe; nothing else listed by hand
    assert "tools/build_caffe.py --gpu --apt-only --python python3" in text
    assert text.index("--apt-only") < text.index("RUN make caffe")


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no distribution python3 on this machine")
def test_a_distribution_interpreter_also_needs_its_headers_and_venv():
    version = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    pkgs = bc.apt_packages("/usr/bin/python3")
    assert pkgs[: len(bc.APT_BUILD_DEPS)] == list(bc.APT_BUILD_DEPS)
    assert pkgs[len(bc.APT_BUILD_DEPS):] == [f"python{version}-dev", f"python{version}-venv"]
    if not sys.base_prefix.startswith("/usr"):  # a self-built interpreter (pyenv, CI) brings both itself
        assert bc.apt_packages(sys.executable) == list(bc.APT_BUILD_DEPS)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH")
def test_fatbin_reader_counts_the_images_nvcc_embeds(tmp_path):
    (tmp_path / "k.cu").write_text("__global__ void k(float* a) { a[threadIdx.x] += 1.f; }\n")
    gencode = ["-gencode", "arch=compute_75,code=sm_75", "-gencode", "arch=compute_90,code=sm_90",
               "-gencode", "arch=compute_90,code=compute_90"]
    subprocess.run(["nvcc", *gencode, "-c", "k.cu", "-o", "k.o"], cwd=tmp_path, check=True, timeout=300)
    assert bc.fatbin_archs(tmp_path / "k.o") == {"sass": {"75": 1, "90": 1}, "ptx": {"90": 1}}
    subprocess.run(["g++", "-c", "-x", "c++", "-", "-o", "host.o"], input="int f() { return 1; }\n", text=True,
                   cwd=tmp_path, check=True)
    assert bc.fatbin_archs(tmp_path / "host.o") == {"sass": {}, "ptx": {}}


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
