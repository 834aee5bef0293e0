#!/usr/bin/env python3
"""`make check-gpu-build`: compile the CUDA container's Caffe on a machine with neither Docker nor a GPU.

Dockerfile.caffe builds Caffe with `tools/build_caffe.py --gpu` on nvidia/cuda:<CUDA_VERSION>-devel. This
runs the same recipe here, with the same CUDA:

- device code: every .cu file of the sdist through the nvcc on PATH, which must be the nvcc release of the
  container's CUDA, for the architectures --cuda-archs names: `ci` (the default; what `make test` and CI
  compile) is the container's oldest target alone, `all` every architecture the container targets;
  objects linked into libcaffe.so;
- host code: against the CUDA runtime, cuBLAS and cuRAND headers of the container's CUDA release, taken
  from PyPI wheels pinned to it (installed once into the build cache, next to the builds).

The build is cached like the CPU build (~/.cache/fcnkit/caffe-gpu-*); a warm run takes seconds. The
summary (.cu files compiled, nvcc version and architectures, header versions) comes from the build's
BUILD_INFO.json. tests/build/test_gpu_build.py then runs the build's pycaffe (CPU mode, CUDA libraries from
the wheels) against the CPU build.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import build_caffe as bc  # noqa: E402  (a sibling script, not a package)

DOCKERFILE = ROOT / "Dockerfile.caffe"
# The container's CUDA release (Dockerfile.caffe's ARG CUDA_VERSION) -> the nvcc it ships and the PyPI wheels
# holding its cudart/cuBLAS/cuRAND headers and libraries (component versions from NVIDIA's release notes and
# the nvidia/cuda image's NV_*_VERSION variables), plus the prefix inside the wheels.
CUDA_RELEASES = {
    "13.0.2": {
        "nvcc": "13.0.88",
        "wheels": {"cudart": "nvidia-cuda-runtime==13.0.96", "cublas": "nvidia-cublas==13.1.0.3",
                   "curand": "nvidia-curand==10.4.0.35"},
        "prefix": "nvidia/cu13",
        # The rest of the toolkit the container's build needs (nvcc, its front end and back end, the CUDA
        # C++ core headers); Dockerfile.caffe installs these plus the wheels above (--install-toolkit).
        "toolkit": ("nvidia-cuda-nvcc==13.0.88", "nvidia-cuda-crt==13.0.88", "nvidia-nvvm==13.0.88",
                    "nvidia-cuda-cccl==13.0.85"),
    },
}


# --cuda-archs sets. A cold compile costs ~1 min of CPU per .cu file and architecture on top of ~25 min of host
# code, so CI compiles every .cu file for one architecture the container targets: the oldest, Turing's sm_75
# (T4), whose SASS plus compute_75 PTX also runs on every newer GPU. `all` is the container's whole list.
ARCH_SETS = ("ci", "all")


def say(msg: str) -> None:
    print(f"[gpu-check] {msg}", flush=True)


def container_cuda_version(dockerfile: Path = DOCKERFILE) -> str:
    m = re.search(r"^ARG CUDA_VERSION=(\S+)", dockerfile.read_text(), re.M)
    if not m:
        raise bc.BuildError(f"{dockerfile}: no `ARG CUDA_VERSION=X.Y.Z` line; the check compiles for that release")
    return m.group(1)


def release_for(version: str) -> dict:
    if version not in CUDA_RELEASES:
        raise bc.BuildError(f"Dockerfile.caffe uses CUDA {version}, which tools/check_gpu_build.py does not know; "
                            "add its nvcc version and cudart/cuBLAS/cuRAND wheel pins to CUDA_RELEASES")
    return CUDA_RELEASES[version]


def container_archs(release: dict) -> tuple[str, ...]:
    """The SASS targets of the container's build: build_caffe.py's defaults for its nvcc's major version."""
    return bc.CUDA_ARCHS_BY_MAJOR[int(release["nvcc"].split(".")[0])]


def resolve_archs(spec: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    """`ci` (or empty): the container's oldest target; `all`: every target; else a comma list of targets
    ("75,sm_90"), returned in the container's order (the last one also goes in as PTX)."""
    if spec in ("", "ci"):
        return targets[:1]
    if spec == "all":
        return targets
    wanted = {a.strip().removeprefix("sm_") for a in spec.split(",") if a.strip()}
    unknown = sorted(wanted - set(targets))
    if unknown or not wanted:
        raise bc.BuildError(f"--cuda-archs {spec}: {', '.join('sm_' + a for a in unknown) or 'nothing'} is not "
                            f"among the container's targets (sm_{', sm_'.join(targets)}); "
                            f"use {' or '.join(ARCH_SETS)} or a comma list of those")
    return tuple(a for a in targets if a in wanted)


def toolkit_root() -> Path:
    """The CUDA toolkit of the nvcc on PATH (nvcc may be a wrapper script, so ask nvcc itself)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise bc.BuildError("nvcc is not on PATH; the check compiles the device code with the container's nvcc")
    r = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", "/dev/null", "-o", "/dev/null"],
                       capture_output=True, text=True)
    m = re.search(r"^#\$ TOP=(.+)$", r.stdout + r.stderr, re.M)
    if not m:
        raise bc.BuildError(f"{nvcc} --dryrun did not name its toolkit (no '#$ TOP=' line)")
    return Path(m.group(1).strip()).resolve()


def wheels_dir(cache: Path, version: str, release: dict) -> Path:
    tag = hashlib.sha256(repr(sorted(release["wheels"].values())).encode()).hexdigest()[:12]
    return cache / f"cuda-{version}-wheels-{tag}"


def pip_install(python: str, pins: list[str], target: Path, prefix: str) -> None:
    """pip-install the pinned wheels (no dependencies, binaries only) into target, and give target/prefix/lib's
    versioned libraries their unversioned names, which the linker's -lcublas needs."""
    cmd = [python, "-m", "pip", "install", "--no-deps", "--only-binary", ":all:", "--no-compile",
           "--disable-pip-version-check", "--progress-bar", "off", "-q", "--target", str(target), *pins]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = [line for line in r.stderr.strip().splitlines() if "is ignored" not in line] or ["no output"]
        raise bc.BuildError(f"pip could not install {' '.join(pins)} ({tail[-1]}); check access to PyPI")
    lib = target / prefix / "lib"
    for so in sorted(lib.glob("lib*.so.*")):
        plain = lib / (so.name.split(".so.")[0] + ".so")
        if not plain.exists():
            plain.symlink_to(so.name)


def ensure_wheels(cache: Path, version: str, release: dict, python: str) -> Path:
    """Install the pinned wheels into the cache (once; temp dir + rename) and return their CUDA prefix."""
    final = wheels_dir(cache, version, release)
    prefix = final / release["prefix"]
    if (final / "WHEELS.json").is_file():
        return prefix
    if final.exists():  # incomplete leftovers are never trusted
        shutil.rmtree(final)
    cache.mkdir(parents=True, exist_ok=True)
    pins = list(release["wheels"].values())
    say(f"installing the CUDA {version} wheels (headers + libraries, ~0.5 GB): {' '.join(pins)}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        pip_install(python, pins, tmp, release["prefix"])
        (tmp / "WHEELS.json").write_text(json.dumps({"cuda": version, "wheels": pins}, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the libraries from other users of a shared cache
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return prefix


def install_toolkit(dest: Path, version: str, python: str) -> None:
    """The CUDA toolkit a GPU build needs, from the pinned PyPI wheels alone, laid out like /usr/local/cuda
    (bin/nvcc, include, lib, lib64, nvvm, targets/x86_64-linux), into dest (temp dir + rename; the
    container's build stage runs this). Standard library + pip only."""
    release = release_for(version)
    if dest.exists():
        raise bc.BuildError(f"--install-toolkit {dest}: already exists; remove it first")
    pins = [*release["toolkit"], *release["wheels"].values()]
    say(f"installing the CUDA {version} toolkit from PyPI: {' '.join(pins)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        pip_install(python, pins, tmp, release["prefix"])
        top = tmp / release["prefix"]
        (top / "lib64").symlink_to("lib")
        target = top / "targets" / "x86_64-linux"  # nvcc.profile's include/lib paths
        target.mkdir(parents=True)
        (target / "include").symlink_to("../../include")
        (target / "lib").symlink_to("../../lib")
        (top / "TOOLKIT.json").write_text(json.dumps({"cuda": version, "wheels": pins}, indent=2) + "\n")
        top.chmod(0o755)
        top.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"CUDA {version} toolkit in {dest}")


@dataclass
class Check:
    """Everything the check and its tests need to find the GPU build."""

    version: str  # the container's CUDA release
    release: dict
    argv: list[str]  # tools/build_caffe.py arguments: the container's recipe, pointed at this machine's CUDA
    cfg: bc.Config
    build_dir: Path
    cuda_prefix: Path

    def runtime_env(self, base: dict | None = None) -> dict:
        return bc.runtime_env(self.cfg, base)

    def record(self) -> dict:
        return json.loads((self.build_dir / "BUILD_INFO.json").read_text())


def prepare(python: str = sys.executable, cache: Path | None = None, archs: str = "ci", jobs: int | None = None,
            install_wheels: bool = True) -> Check:
    """Resolve the container's CUDA release, the architectures (`archs`: see resolve_archs), this machine's
    toolkit and the wheels; verify that they match."""
    cache = cache or bc.default_cache()
    version = container_cuda_version()
    release = release_for(version)
    selected = resolve_archs(archs, container_archs(release))
    root = toolkit_root()
    prefix = (ensure_wheels(cache, version, release, python) if install_wheels
              else wheels_dir(cache, version, release) / release["prefix"])
    if not prefix.is_dir():
        raise bc.BuildError(f"the CUDA {version} wheels are not installed in {prefix.parent.parent}; "
                            "run `make check-gpu-build`")
    argv = ["--gpu", "--cuda-dir", str(root), "--cuda-prefix", str(prefix), "--python", python,
            "--cache-dir", str(cache), "--cuda-archs", ",".join(selected)]
    argv += ["--jobs", str(jobs)] if jobs else []
    cfg = bc.config_from_args(bc.parse_args(argv))
    assert cfg.cuda is not None
    if cfg.cuda.nvcc != release["nvcc"]:
        raise bc.BuildError(f"nvcc on PATH is {cfg.cuda.nvcc} ({root}); CUDA {version}, the container's, ships "
                            f"nvcc {release['nvcc']}: install that nvcc or change Dockerfile.caffe's CUDA_VERSION")
    for lib, pin in release["wheels"].items():
        want = pin.split("==")[1]
        got = cfg.cuda.headers[lib]
        if not want.startswith(got):  # cudart's header only says major.minor
            raise bc.BuildError(f"{cfg.cuda.header_files[lib]} declares {lib} {got}, not {want} from {pin}")
    return Check(version, release, argv, cfg, Path(cache) / cfg.key(), prefix)


def summary(check: Check) -> list[str]:
    """The CI log's account of what was compiled, read back from the build's own record."""
    info = check.record()
    cuda = info["cuda"]
    units = cuda["cu_units"]
    compiled = [u for u, r in units.items() if r["compiled"] and r["object"]]
    linked = [u for u in compiled if units[u]["linked"]]
    archs = cuda["archs"]
    targets = container_archs(check.release)
    images = cuda["libcaffe_images"]
    tk = cuda["toolkit"]
    return [
        f"container CUDA {check.version}: nvcc {tk['nvcc']} ({cuda['cuda_dir']}/bin/nvcc), "
        f"SASS for sm_{', sm_'.join(archs)} + compute_{cuda['ptx_arch']} PTX "
        f"({len(archs)} of the container's {len(targets)} architectures: sm_{', sm_'.join(targets)})",
        f"device code: {len(compiled)} of {len(units)} .cu files under the sdist's src/ compiled by nvcc; "
        f"{len(linked)} linked into libcaffe.so, {len(compiled) - len(linked)} CUDA test-kernel object(s)",
        "libcaffe.so device images: " + ", ".join(f"sm_{a} x{n}" for a, n in sorted(images["sass"].items(),
                                                                                   key=lambda kv: int(kv[0])))
        + "; PTX " + ", ".join(f"compute_{a} x{n}" for a, n in images["ptx"].items()),
        "host headers: " + ", ".join(f"{lib} {v}" for lib, v in tk["headers"].items())
        + f" (wheels: {', '.join(check.release['wheels'].values())})",
        f"build: {info['key']} ({info['version']}, compiled in {info['build_seconds']:.0f}s with "
        f"{info.get('jobs', '?')} jobs)",
    ]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default=sys.executable, help="interpreter pycaffe is built for (the venv's)")
    p.add_argument("--cache-dir", type=Path, default=None, help="build cache (default: build_caffe.py's)")
    p.add_argument("--cuda-archs", default="ci",
                   help="ci (default; CI's: the container's oldest target, sm_75), all (every architecture the "
                   "container targets), or a comma list of those (e.g. 75,90)")
    p.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: cores)")
    p.add_argument("--install-toolkit", type=Path, metavar="DIR",
                   help="only install the container's CUDA toolkit (nvcc, headers, cudart/cuBLAS/cuRAND) from its "
                   "pinned PyPI wheels into DIR, then stop (Dockerfile.caffe's build stage)")
    p.add_argument("--cuda-version", default=None,
                   help="with --install-toolkit: the CUDA release (default: Dockerfile.caffe's ARG CUDA_VERSION)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    return bc.interruptible(lambda: check_main(parse_args(argv)), "check_gpu_build")


def check_main(a: argparse.Namespace) -> int:
    t0 = time.time()
    try:
        if a.install_toolkit:
            install_toolkit(a.install_toolkit, a.cuda_version or container_cuda_version(), a.python)
            return 0
        check = prepare(a.python, a.cache_dir, a.cuda_archs, a.jobs)
        say(f"recipe: tools/build_caffe.py {' '.join(check.argv)}")
        rc = bc.build_main(bc.parse_args(check.argv))
        if rc != 0:
            return rc
        lines = summary(check)
        for line in lines:
            say(line)
        units = check.record()["cuda"]["cu_units"]
        missing = [u for u, r in units.items() if not (r["compiled"] and r["object"])]
        if missing:
            raise bc.BuildError(f"{len(missing)} .cu file(s) were not compiled: {', '.join(missing)}")
        say(f"done in {time.time() - t0:.0f}s")
        return 0
    except bc.BuildError as exc:
        print(f"check_gpu_build: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
