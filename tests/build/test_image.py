"""tools/container_build.py (`make image`, `make image-test`): every bad-input path stops in one line with exit
status 2, run for real on this machine (no Docker daemon, no buildah on PATH, not root, a bad build argument),
and an interrupted build tags nothing and leaves no working container (where buildah and root are). The
image itself is checked from inside by `make image-test` (CI runs it when its cache is warm; see .ci/run)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from tool_modules import load_tool

SCRIPT = ROOT / "tools" / "container_build.py"
cb = load_tool("container_build")
ROOTFUL_BUILDAH = os.geteuid() == 0 and all(shutil.which(t) for t in ("buildah", "podman", "debootstrap"))


def run_tool(*args, env=None, prefix=(), timeout=120):
    return subprocess.run([*prefix, sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def one_error_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("container_build: error: "), r.stderr
    return lines[0]


def bare_path(tmp_path) -> dict:
    """An environment whose PATH holds no container tool at all (only what the script itself needs: none)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    return dict(os.environ, PATH=str(empty))


def test_an_architecture_the_container_does_not_target_is_refused_before_anything_runs():
    line = one_error_line(run_tool("test", "--cuda-archs", "61"))
    assert "sm_61 is not among the container's targets" in line and "sm_75" in line


def test_a_cuda_release_without_pinned_wheels_is_refused():
    line = one_error_line(run_tool("image", "--cuda-version", "11.8.0"))
    assert "CUDA 11.8.0" in line and "CUDA_RELEASES" in line


def test_a_nonpositive_job_count_is_refused():
    assert "--jobs -1" in one_error_line(run_tool("image", "--jobs", "-1"))


def test_image_with_neither_docker_nor_buildah_names_both_and_the_fix(tmp_path):
    line = one_error_line(run_tool("image", env=bare_path(tmp_path)))
    assert "neither Docker (no docker command) nor buildah" in line and "apt-get install -y buildah" in line


def test_image_test_without_the_container_tools_names_them_and_the_fix(tmp_path):
    line = one_error_line(run_tool("test", env=bare_path(tmp_path)))
    assert "buildah and podman and debootstrap not found" in line
    assert "apt-get install -y buildah podman debootstrap" in line


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker command on this machine")
def test_docker_without_its_daemon_is_named():
    if cb._docker_works()[0]:
        pytest.skip("this machine's Docker daemon answers")
    line = one_error_line(run_tool("image", "--engine", "docker"))
    assert "daemon does not answer" in line and "--engine buildah" in line


@pytest.mark.skipif(not (os.geteuid() == 0 and shutil.which("buildah") and shutil.which("setpriv")),
                    reason="needs root (to drop it), buildah and setpriv")
def test_buildah_as_a_normal_user_is_refused_in_one_line():
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    line = one_error_line(run_tool("test", prefix=nobody, env=dict(os.environ, HOME="/tmp")))
    assert "needs root" in line


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="this machine has an NVIDIA driver")
def test_without_a_driver_the_gpu_count_is_an_answer_not_an_abort():
    from fcnkit.caffenet.pycaffe import cuda_device_count

    count, why = cuda_device_count()
    assert count == 0 and "libcuda.so.1 not found" in why


@pytest.mark.slow
@pytest.mark.skipif(not ROOTFUL_BUILDAH, reason="needs root with buildah, podman and debootstrap (make setup)")
def test_an_interrupted_build_tags_nothing_and_leaves_no_working_container(tmp_path):
    tag = "localhost/fcnkit-interrupt-check:test"
    subprocess.run(["buildah", "rmi", tag], capture_output=True)
    before = cb._working_containers()
    log = tmp_path / "build.log"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "test", "--tag", tag, "--log", str(log)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600  # a cold machine bootstraps the base first (~1-2 min)
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and "STEP 9/" in log.read_text(errors="replace"):  # into the build, past its first steps
            break
        time.sleep(0.5)
    if proc.poll() is not None:
        out, err = proc.communicate()
        if "another image build is running" in err:
            pytest.skip("another image build holds the lock")
        pytest.fail(f"the build ended before it could be interrupted: {proc.returncode} {err[-500:]}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert err.strip().splitlines()[-1].startswith("container_build: interrupted (SIGINT)")
    assert subprocess.run(["buildah", "inspect", "--type", "image", tag], capture_output=True).returncode != 0
    assert cb._working_containers() <= before


def test_if_warm_without_the_tools_skips_in_one_line_and_succeeds(tmp_path):
    r = run_tool("test", "--if-warm", env=bare_path(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [
        "[image] image-test SKIPPED: buildah and podman and debootstrap not found; install with "
        "`apt-get install -y buildah podman debootstrap` (as root; `make setup` does it)"]


@pytest.mark.skipif(not ROOTFUL_BUILDAH, reason="needs root with buildah, podman and debootstrap (make setup)")
def test_if_warm_with_a_cold_cache_skips_and_says_why(tmp_path):
    env = dict(os.environ, FCNKIT_CACHE=str(tmp_path))  # no stamp of any earlier build
    r = run_tool("test", "--if-warm", "--tag", "localhost/fcnkit-never-built:test", env=env)
    assert r.returncode == 0, r.stderr
    assert "image-test SKIPPED: its build cache is cold (no successful image build on this machine yet)" in r.stdout


def test_the_cache_key_follows_the_recipe_and_the_build_args_not_the_code():
    args = {"CUDA_VERSION": "13.0.2", "CUDA_ARCHS": "75"}
    assert cb.cache_key(args) == cb.cache_key(dict(args))
    assert cb.cache_key(args) != cb.cache_key({**args, "CUDA_ARCHS": "75,90"})
    assert "tools/build_caffe.py" in cb.CACHE_INPUTS and not any(p.startswith("python/fcnkit/caffe/")
                                                                  for p in cb.CACHE_INPUTS)


def test_install_toolkit_refuses_an_existing_folder_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "check_gpu_build.py"), "--install-toolkit",
                        str(tmp_path), "--cuda-version", "13.0.2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"check_gpu_build: error: --install-toolkit {tmp_path}: already exists; remove it first"]
    assert list(tmp_path.iterdir()) == []  # nothing installed into it
