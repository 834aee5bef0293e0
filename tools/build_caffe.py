#!/usr/bin/env python3
"""Build real Caffe (BVLC 1.0 + SSD layers, from the PyPI sdist brocolli-caffe==9.0.2).

One script for both targets, switched by flags:

    python3 tools/build_caffe.py --python .venv/bin/python --install-venv .venv   # CPU (make setup)
    python3 tools/build_caffe.py --gpu --python /usr/bin/python3 ...              # CUDA (Dockerfile.caffe)
    python3 tools/build_caffe.py --gpu --dry-run                                  # print Makefile.config

Steps: check/install Debian build deps -> fetch sdist -> verify sha256 -> extract into a temp dir
-> write Makefile.config + OpenCV 4 compat header -> `make all pycaffe` -> regenerate caffe_pb2.py
with the system protoc -> assemble bin/ lib/ python/ -> smoke-test -> rename into the cache.
A build is only ever visible in the cache once it is complete and has answered `--version`.

Standard library only: it runs before the project's virtualenv has anything in it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SDIST_NAME = "brocolli-caffe"
SDIST_VERSION = "9.0.2"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a"
# Bump when the recipe below changes in a way that changes the built artefacts.
RECIPE_VERSION = 2

# Source edits applied after extraction: (file, exact text, replacement, why). Each must match exactly
# once, so a different sdist fails loudly instead of building something unpatched.
SOURCE_PATCHES = (
    ("src/caffe/util/io.cpp", "coded_input->SetTotalBytesLimit(536870912);",
     "coded_input->SetTotalBytesLimit(INT_MAX);",
     "this sdist caps binary protos at 512 MiB; VGG-16 (528 MiB) and FCN-8s caffemodels exceed it"),
)

HERE = Path(__file__).resolve().parent
COMPAT_HEADER = HERE / "caffe_build" / "opencv4_compat.h"
# Caffe forks' messages and fields, merged into the converter's schema (see merge_fork_schema).
FORK_SCHEMA = HERE.parent / "python" / "fcnkit" / "convert" / "caffe_forks.proto"

# Debian/Ubuntu packages needed to compile and link Caffe (name -> what it provides).
APT_BUILD_DEPS = {
    "g++": "C++ compiler",
    "make": "GNU make",
    "patchelf": "rpath fix-up of the installed binaries",
    "libboost-system-dev": "boost_system",
    "libboost-thread-dev": "boost_thread",
    "libboost-filesystem-dev": "boost_filesystem",
    "libboost-regex-dev": "boost_regex (SSD code)",
    "libboost-python-dev": "boost_python (pycaffe)",
    "libgoogle-glog-dev": "glog",
    "libgflags-dev": "gflags",
    "libprotobuf-dev": "protobuf C++ runtime",
    "protobuf-compiler": "protoc",
    "libhdf5-dev": "HDF5",
    "liblmdb-dev": "LMDB",
    "libsnappy-dev": "snappy",
    "libopenblas-dev": "OpenBLAS",
    "libopencv-dev": "OpenCV",
}
# Hopper included; compute_90 PTX lets newer GPUs JIT.
DEFAULT_CUDA_ARCHS = ("60", "61", "70", "75", "80", "86", "89", "90")
TOOLS = ("caffe", "upgrade_net_proto_text", "upgrade_net_proto_binary", "compute_image_mean",
         "convert_imageset")


class BuildError(RuntimeError):
    """A failure with a one-line explanation and fix for the user."""


def say(msg: str) -> None:
    print(f"[caffe] {msg}", flush=True)


# ----------------------------------------------------------------------------------- config
@dataclass
class PythonInfo:
    executable: str
    version: str  # "3.11"
    include: str
    libdir: str
    numpy_include: str
    numpy_major: str

    @classmethod
    def probe(cls, python: str) -> PythonInfo:
        code = (
            "import json, sys, sysconfig\n"
            "try:\n import numpy\nexcept ImportError:\n numpy = None\n"
            "print(json.dumps({'version': '%d.%d' % sys.version_info[:2],"
            " 'include': sysconfig.get_paths()['include'],"
            " 'libdir': sysconfig.get_config_var('LIBDIR') or '',"
            " 'numpy_include': numpy.get_include() if numpy else '',"
            " 'numpy_major': numpy.__version__.split('.')[0] if numpy else ''}))"
        )
        try:
            out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BuildError(f"cannot run Python interpreter {python!r} ({exc}); pass --python PATH") from exc
        d = json.loads(out)
        if not d["numpy_include"]:
            raise BuildError(f"numpy is not installed for {python}; run: {python} -m pip install numpy")
        return cls(executable=python, **d)


@dataclass
class Config:
    gpu: bool = False
    cuda_dir: str = "/usr/local/cuda"
    cuda_archs: tuple[str, ...] = DEFAULT_CUDA_ARCHS
    py: PythonInfo | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 2)

    def makefile_config(self) -> str:
        """The Makefile.config handed to Caffe's classic Makefile."""
        py = self.py
        assert py is not None
        tag = py.version.replace(".", "")
        lines = [
            "# Generated by tools/build_caffe.py -- do not edit by hand.",
            f"# target: {'CUDA GPU' if self.gpu else 'CPU only'}; Python {py.version}",
        ]
        if self.gpu:
            archs = " ".join(f"-gencode arch=compute_{a},code=sm_{a}" for a in self.cuda_archs)
            last = self.cuda_archs[-1]
            archs += f" -gencode arch=compute_{last},code=compute_{last}"
            lines += [
                "CPU_ONLY := 0",
                "USE_CUDNN := 0  # Caffe 1.0's cuDNN code predates cuDNN 8's API",
                f"CUDA_DIR := {self.cuda_dir}",
                f"CUDA_ARCH := {archs}",
            ]
        else:
            lines += ["CPU_ONLY := 1"]
        lines += [
            "USE_LMDB := 1",
            "USE_LEVELDB := 0",
            "USE_OPENCV := 1",
            "OPENCV_VERSION := 3  # also links opencv_imgcodecs/videoio (true for OpenCV 4)",
            "BLAS := open",
            "BLAS_INCLUDE := /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas",
            "WITH_PYTHON_LAYER := 1",
            f"PYTHON_LIBRARIES := boost_python{tag} python{py.version}",
            f"PYTHON_INCLUDE := {py.include} {py.numpy_include}",
            f"PYTHON_LIB := {py.libdir}",
            "INCLUDE_DIRS := $(PYTHON_INCLUDE) /usr/include/hdf5/serial /usr/include/opencv4 /usr/local/include",
            "LIBRARY_DIRS := $(PYTHON_LIB) /usr/lib/x86_64-linux-gnu/hdf5/serial /usr/lib/x86_64-linux-gnu"
            " /usr/local/lib /usr/lib",
            "CXXFLAGS += -include $(FCNKIT_COMPAT_HEADER) -Wno-deprecated-declarations",
            "Q ?= @",
            "",
        ]
        return "\n".join(lines)

    def key(self) -> str:
        """Cache key: everything that changes the artefacts, nothing that is only a path."""
        py = self.py
        assert py is not None
        h = hashlib.sha256()
        for part in (SDIST_SHA256, str(RECIPE_VERSION), COMPAT_HEADER.read_bytes().hex(), repr(SOURCE_PATCHES),
                     "gpu" if self.gpu else "cpu", ",".join(self.cuda_archs) if self.gpu else "",
                     py.version, py.libdir, py.numpy_major):
            h.update(part.encode())
            h.update(b"\0")
        return f"caffe-{'gpu' if self.gpu else 'cpu'}-py{py.version}-{h.hexdigest()[:12]}"


# ------------------------------------------------------------------------------ apt deps
def missing_apt_packages(pkgs) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []  # not a Debian system: trust the compiler to say what is missing
    missing = []
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def ensure_apt_packages(pkgs=tuple(APT_BUILD_DEPS)) -> None:
    missing = missing_apt_packages(pkgs)
    if not missing:
        say(f"Debian build dependencies: all {len(pkgs)} present")
        return
    say(f"installing {len(missing)} missing Debian packages: {' '.join(missing)}")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BuildError("missing Debian packages " + " ".join(missing)
                         + "; install them with: sudo apt-get install -y " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BuildError(f"'{' '.join(cmd[:2])}' failed ({tail}); install by hand: apt-get install "
                             + " ".join(missing))


# ------------------------------------------------------------------------------ sdist
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_url(url: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"download of {url} failed ({exc}); check the network or pass --sdist FILE") from exc
    tmp.replace(dest)


def download_with_pip(python: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(dir=dest.parent) as td:
        cmd = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--no-build-isolation", "-q", "-d", td, f"{SDIST_NAME}=={SDIST_VERSION}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(td) / SDIST_FILE
        if r.returncode != 0 or not got.exists():
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"pip could not download {SDIST_NAME}=={SDIST_VERSION} ({tail}); "
                             "check access to PyPI or pass --sdist FILE")
        got.replace(dest)


def fetch_sdist(cache: Path, python: str, sdist: str | None, url: str | None) -> Path:
    """Return a path to the verified sdist, downloading it into the cache if needed."""
    dl = cache / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    if sdist:
        path = Path(sdist)
        if not path.is_file():
            raise BuildError(f"--sdist {sdist}: no such file")
    else:
        path = dl / SDIST_FILE
        if not path.exists():
            say(f"downloading {SDIST_FILE} from {url or 'PyPI (pip download)'}")
            download_url(url, path) if url else download_with_pip(python, path)
    digest = sha256_of(path)
    if digest != SDIST_SHA256:
        if not sdist:
            path.unlink()  # never keep a bad download that a later run would trust
        raise BuildError(f"checksum mismatch for {path.name}: sha256 {digest}, expected {SDIST_SHA256}; "
                         "the download is corrupt or not the 9.0.2 sdist -- delete it and re-run")
    say(f"sdist verified: {path.name} sha256 {digest[:16]}...")
    return path


# ------------------------------------------------------------------------------ build
def apply_source_patches(src: Path) -> None:
    for rel, old, new, why in SOURCE_PATCHES:
        path = src / rel
        text = path.read_text()
        count = text.count(old)
        if count == 0:
            raise BuildError(f"patch for {rel} does not apply (expected {old!r}); is this the {SDIST_VERSION} sdist?")
        path.write_text(text.replace(old, new))
        say(f"patched {rel} ({count}x): {why}")


def run_make(src: Path, cfg: Config, log_path: Path) -> None:
    """Run Caffe's Makefile, showing a [n/total] line per compiled unit, full log to a file."""
    exts = ("*.cpp", "*.cu") if cfg.gpu else ("*.cpp",)
    units = sum(1 for e in exts for p in src.glob(f"src/caffe/**/{e}") if "/test/" not in str(p))
    units += sum(1 for _ in (src / "tools").glob("*.cpp")) + 2  # + caffe.pb.cc, _caffe.cpp
    cmd = ["make", f"-j{cfg.jobs}", "all", "pycaffe", f"FCNKIT_COMPAT_HEADER={COMPAT_HEADER}"]
    say(f"compiling (~{units} units, {cfg.jobs} jobs; log: {log_path})")
    done = 0
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        first_err = last_err = ""
        for line in proc.stdout:
            log.write(line)
            s = line.strip()
            if re.match(r"^(CXX|NVCC|LD|AR|PROTOC|CXX/LD)\b", s):
                done += s.startswith(("CXX ", "NVCC ")) or "_caffe.cpp" in s
                print(f"[caffe] [{done:>3}/{units}] {int(time.time() - t0):>4}s {s}", flush=True)
            elif ": error:" in s and not first_err:
                first_err = s  # the compiler's own message, not make's summary
            elif "error" in s.lower():
                last_err = s
        rc = proc.wait()
    if rc != 0:
        why = first_err or last_err or "see log"
        raise BuildError(f"compiling Caffe failed (make exit {rc}): {why} -- full log: {log_path}")


def regenerate_proto(src: Path) -> None:
    """The sdist ships a stale caffe_pb2.py that protobuf >= 4 rejects; regenerate it."""
    out = src / "python" / "caffe" / "proto"
    r = subprocess.run(["protoc", "--proto_path=src/caffe/proto", f"--python_out={out}",
                        "src/caffe/proto/caffe.proto"], cwd=src, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"protoc failed on caffe.proto: {r.stderr.strip()}; is protobuf-compiler installed?")


def assemble(src: Path, stage: Path, cfg: Config) -> None:
    """Copy the artefacts into stage/{bin,lib,python,include} and make them relocatable."""
    rel = src / ".temp_release"
    (stage / "lib").mkdir(parents=True)
    (stage / "bin").mkdir()
    for so in (rel / "lib").glob("libcaffe.so*"):
        shutil.copy2(so, stage / "lib" / so.name, follow_symlinks=False)
    for tool in TOOLS:
        shutil.copy2(rel / "tools" / f"{tool}.bin", stage / "bin" / tool)
    shutil.copytree(src / "python" / "caffe", stage / "python" / "caffe",
                    ignore=shutil.ignore_patterns("test", "__pycache__", "*.cpp", "imagenet"))
    shutil.copy2(src / "src" / "caffe" / "proto" / "caffe.proto", stage / "caffe.proto")
    # $ORIGIN-relative rpaths (plus the interpreter's libdir for libpython) make the tree movable.
    pylib = cfg.py.libdir if cfg.py else ""
    cuda = f":{cfg.cuda_dir}/lib64" if cfg.gpu else ""
    fixes = [(stage / "python" / "caffe" / "_caffe.so", "$ORIGIN/../../lib")]
    fixes += [(stage / "bin" / t, "$ORIGIN/../lib") for t in TOOLS]
    fixes += [(p, "$ORIGIN") for p in (stage / "lib").glob("libcaffe.so.*") if not p.is_symlink()]
    for path, rpath in fixes:
        r = subprocess.run(["patchelf", "--set-rpath", f"{rpath}:{pylib}{cuda}", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"patchelf failed on {path.name}: {r.stderr.strip()}")


def smoke_test(stage: Path, cfg: Config) -> str:
    r = subprocess.run([str(stage / "bin" / "caffe"), "--version"], capture_output=True, text=True)
    version = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or "caffe version" not in version:
        raise BuildError(f"built caffe binary does not run: {version[-300:]}")
    if cfg.py:
        env = dict(os.environ, PYTHONPATH=str(stage / "python"), GLOG_minloglevel="2")
        code = "import caffe; caffe.set_mode_cpu(); from caffe.proto import caffe_pb2; caffe_pb2.NetParameter()"
        r = subprocess.run([cfg.py.executable, "-c", code], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise BuildError(f"built pycaffe does not import: {tail}")
    return version


def build(cfg: Config, cache: Path, sdist: Path) -> Path:
    final = cache / cfg.key()
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        say(f"extracting {sdist.name}")
        with tarfile.open(sdist) as tf:
            tf.extractall(tmp_root, filter="data")
        src = tmp_root / f"{SDIST_NAME}-{SDIST_VERSION}"
        apply_source_patches(src)
        (src / "Makefile.config").write_text(cfg.makefile_config())
        (src / "python" / "caffe" / "proto" / "caffe_pb2.py").unlink(missing_ok=True)
        t0 = time.time()
        run_make(src, cfg, cache / f"{final.name}.build.log")
        regenerate_proto(src)
        stage = tmp_root / "stage"
        assemble(src, stage, cfg)
        version = smoke_test(stage, cfg)
        info = {"key": final.name, "sdist_sha256": SDIST_SHA256, "version": version, "gpu": cfg.gpu,
                "python": cfg.py.version if cfg.py else None, "build_seconds": round(time.time() - t0, 1),
                "makefile_config": cfg.makefile_config()}
        (stage / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")
        if final.exists():  # a concurrent build won the race; keep theirs
            return final
        stage.rename(final)
        say(f"built {version} in {info['build_seconds']:.0f}s -> {final}")
        return final
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def is_complete(path: Path) -> bool:
    return (path / "BUILD_INFO.json").is_file() and (path / "bin" / "caffe").is_file()


# ------------------------------------------------------------------------------ install
def install_into_venv(build_dir: Path, venv: Path, py: PythonInfo) -> None:
    """pycaffe via a .pth file, `caffe` (and the other tools) as wrappers in venv/bin."""
    site = subprocess.run([py.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    pth = Path(site) / "caffe.pth"
    tmp = pth.with_suffix(".pth.tmp")
    tmp.write_text(str(build_dir / "python") + "\n")
    tmp.replace(pth)
    write_standalone_schema(build_dir / "caffe.proto", Path(site))
    for tool in TOOLS:
        # A wrapper, not a symlink: the embedded Python of `caffe train` (Python layers) needs the
        # venv's site-packages on its path.
        wrapper = venv / "bin" / tool
        tmp = wrapper.with_name(f".{tool}.tmp")
        tmp.write_text("#!/bin/sh\n# installed by tools/build_caffe.py\n"
                       f'PYTHONPATH="{site}:{build_dir / "python"}${{PYTHONPATH:+:$PYTHONPATH}}" '
                       f'exec "{build_dir / "bin" / tool}" "$@"\n')
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    say(f"installed into {venv}: import caffe, {venv}/bin/caffe")


def _top_level_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """(keyword, name, start, end) of each top-level `message`/`enum` block; end is just past its `}`.
    Braces inside // comments are ignored."""
    code = re.sub(r"//[^\n]*", lambda m: " " * len(m.group()), text)
    blocks = []
    for m in re.finditer(r"^(message|enum)\s+(\w+)\s*\{", code, flags=re.M):
        depth, i = 0, m.end() - 1
        while True:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
            if depth == 0:
                break
            if i >= len(code):
                raise BuildError(f"unbalanced braces in {m.group(1)} {m.group(2)}")
        blocks.append((m.group(1), m.group(2), m.start(), i))
    return blocks


def merge_fork_schema(base: str, extra: str) -> str:
    """Caffe's schema plus the forks' (python/fcnkit/convert/caffe_forks.proto): a message the base
    already has gains the fragment's fields, every other block is appended."""
    existing = {name: (start, end) for kw, name, start, end in _top_level_blocks(base) if kw == "message"}
    inserts: list[tuple[int, str]] = []
    appended = []
    for kw, name, start, end in _top_level_blocks(extra):
        block = extra[start:end]
        if kw == "message" and name in existing:
            body = block[block.index("{") + 1: block.rindex("}")]
            inserts.append((existing[name][1] - 1, body.rstrip() + "\n"))
        else:
            appended.append(block)
    for pos, body in sorted(inserts, reverse=True):
        base = base[:pos] + body + base[pos:]
    return base.rstrip() + "\n\n" + "\n\n".join(appended) + "\n"


def write_standalone_schema(proto: Path, site: Path) -> None:
    """Compile Caffe's schema, plus the forks' fields the converter reads, as module `fcnkit_caffe_pb2`
    (protobuf package `fcnkit_caffe`).

    The converter reads prototxt/caffemodel files with it, without importing pycaffe. Renaming the
    protobuf package keeps its descriptors apart from pycaffe's own caffe_pb2 in the same process;
    the wire format does not depend on the package name.
    """
    with tempfile.TemporaryDirectory() as td:
        text = proto.read_text()
        renamed = re.sub(r"^package caffe;", "package fcnkit_caffe;", text, count=1, flags=re.M)
        if renamed == text:
            raise BuildError(f"{proto}: no `package caffe;` line; is this Caffe's caffe.proto?")
        if FORK_SCHEMA.is_file():
            renamed = merge_fork_schema(renamed, FORK_SCHEMA.read_text())
        (Path(td) / "fcnkit_caffe.proto").write_text(renamed)
        r = subprocess.run(["protoc", f"--proto_path={td}", f"--python_out={td}", "fcnkit_caffe.proto"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"protoc failed on the converter schema: {r.stderr.strip()}")
        shutil.copy2(Path(td) / "fcnkit_caffe_pb2.py", site / ".fcnkit_caffe_pb2.py.tmp")
        (site / ".fcnkit_caffe_pb2.py.tmp").replace(site / "fcnkit_caffe_pb2.py")


# ------------------------------------------------------------------------------ main
def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("FCNKIT_CACHE", Path(base) / "fcnkit"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="build with CUDA (default: CPU_ONLY)")
    p.add_argument("--cuda-dir", default="/usr/local/cuda")
    p.add_argument("--cuda-archs", default=",".join(DEFAULT_CUDA_ARCHS),
                   help="comma-separated SM versions (default: Pascal..Hopper)")
    p.add_argument("--python", default=sys.executable, help="interpreter pycaffe is built for")
    p.add_argument("--install-venv", type=Path, help="install pycaffe and the caffe tools into this venv")
    p.add_argument("--cache-dir", type=Path, default=default_cache())
    p.add_argument("--sdist", help="use this local sdist file instead of downloading")
    p.add_argument("--sdist-url", help="download the sdist from this URL instead of via pip")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--skip-apt", action="store_true", help="do not check/install Debian packages")
    p.add_argument("--dry-run", action="store_true", help="print the Makefile.config and plan; build nothing")
    p.add_argument("--fetch-only", action="store_true", help="download and verify the sdist, then stop")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        cfg = Config(gpu=a.gpu, cuda_dir=a.cuda_dir, jobs=a.jobs,
                     cuda_archs=tuple(x.strip() for x in a.cuda_archs.split(",") if x.strip()))
        if a.dry_run:
            try:
                cfg.py = PythonInfo.probe(a.python)
            except BuildError:  # a dry run must work before numpy exists (e.g. inside CI lint steps)
                v = f"{sys.version_info[0]}.{sys.version_info[1]}"
                cfg.py = PythonInfo(a.python, v, f"/usr/include/python{v}", "/usr/lib/x86_64-linux-gnu",
                                    "<numpy.get_include()>", "2")
            print(f"# cache entry: {a.cache_dir / cfg.key()}")
            print(f"# make -j{cfg.jobs} all pycaffe   (sdist {SDIST_FILE}, sha256 {SDIST_SHA256})")
            print(cfg.makefile_config(), end="")
            return 0
        if a.fetch_only:
            fetch_sdist(a.cache_dir, a.python, a.sdist, a.sdist_url)
            return 0
        cfg.py = PythonInfo.probe(a.python)
        a.cache_dir.mkdir(parents=True, exist_ok=True)
        final = a.cache_dir / cfg.key()
        if is_complete(final):
            say(f"cached build found: {final}")
        else:
            if final.exists():  # incomplete leftovers are never trusted
                shutil.rmtree(final)
            if not a.skip_apt:
                ensure_apt_packages()
            sdist = fetch_sdist(a.cache_dir, a.python, a.sdist, a.sdist_url)
            final = build(cfg, a.cache_dir, sdist)
        if a.install_venv:
            install_into_venv(final, a.install_venv, cfg.py)
        return 0
    except BuildError as exc:
        print(f"build_caffe: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build_caffe: interrupted; nothing was installed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
