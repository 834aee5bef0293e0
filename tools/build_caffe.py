#!/usr/bin/env python3
"""Build real Caffe (BVLC 1.0 + SSD layers, from the PyPI sdist brocolli-caffe==9.0.2).

One script for both targets, switched by flags:

    python3 tools/build_caffe.py --python .venv/bin/python --install-venv .venv   # CPU (make setup)
    python3 tools/build_caffe.py --gpu --python /usr/bin/python3 ...              # CUDA (Dockerfile.caffe)
    python3 tools/build_caffe.py --gpu --dry-run                                  # print Makefile.config
    python3 tools/build_caffe.py --gpu --apt-only                                 # Debian packages only (Dockerfile)

Steps: check/install Debian build deps -> fetch sdist -> verify sha256 -> extract into a temp dir
-> write Makefile.config + OpenCV 4 compat header -> `make all pycaffe` -> regenerate caffe_pb2.py
with the system protoc -> assemble bin/ lib/ python/ -> smoke-test -> rename into the cache.
A build is only ever visible in the cache once it is complete and has answered `--version`.
With --gpu, BUILD_INFO.json also records the CUDA toolchain and headers it was compiled with and, for
every .cu file, the GPU architectures nvcc put into its object (tools/check_gpu_build.py reads it).

Standard library only: it runs before the project's virtualenv has anything in it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import struct
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
# The same for what only --gpu builds do (hashed into GPU cache keys only, so CPU entries stay valid).
GPU_RECIPE_VERSION = 1

# Source edits applied after extraction: (file, exact text, replacement, why). Every occurrence is replaced
# and each must match at least once, so a different sdist fails loudly instead of building something unpatched.
SOURCE_PATCHES = (
    ("src/caffe/util/io.cpp", "coded_input->SetTotalBytesLimit(536870912);",
     "coded_input->SetTotalBytesLimit(INT_MAX);",
     "this sdist caps binary protos at 512 MiB; VGG-16 (528 MiB) and FCN-8s caffemodels exceed it"),
)


def cpu_fallback_patch(rel: str, layer: str) -> tuple[str, str, str, str]:
    """A GPU-only patch for a layer whose header declares Forward_gpu and Backward_gpu that the sdist never
    defines (no .cu; only the CPU_ONLY stub): in a GPU build they run the layer's CPU code, as Caffe's Layer
    base class does for layers without GPU methods (Blob moves the data between host and device)."""
    stub = f"STUB_GPU({layer});"
    fallback = (
        f"{stub}\n#else  // fcnkit: the sdist has no CUDA code for {layer}; run its CPU code\n"
        f"template <typename Dtype>\nvoid {layer}<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,\n"
        "    const vector<Blob<Dtype>*>& top) {\n  this->Forward_cpu(bottom, top);\n}\n"
        f"template <typename Dtype>\nvoid {layer}<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,\n"
        "    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {\n"
        "  this->Backward_cpu(top, propagate_down, bottom);\n}"
    )
    return (rel, stub, fallback, f"{layer} declares Forward_gpu/Backward_gpu but defines neither: the tools' "
            "link against libcaffe.so fails on the undefined symbols; they now run the CPU code")


# Applied after SOURCE_PATCHES, with --gpu only (and hashed into the GPU cache key only), so the CPU build
# and its cache entry stay exactly as they were. Each is what CUDA 13's nvcc/headers rejected or deprecated,
# or what a GPU build of this sdist cannot compile or link whatever the CUDA version; all compile under CUDA 12.
CUDA_SOURCE_PATCHES = (
    ("src/caffe/common.cpp", "<< prop.clockRate;",
     "<< [&] { int v = 0; cudaDeviceGetAttribute(&v, cudaDevAttrClockRate, device); return v; }();",
     "cudaDeviceProp::clockRate was removed in CUDA 13; `caffe device_query` asks cudaDeviceGetAttribute"),
    ("src/caffe/common.cpp", "<< (prop.deviceOverlap ? \"Yes\" : \"No\");",
     "<< ([&] { int v = 0; cudaDeviceGetAttribute(&v, cudaDevAttrGpuOverlap, device); return v; }()"
     " ? \"Yes\" : \"No\");",
     "cudaDeviceProp::deviceOverlap was removed in CUDA 13"),
    ("src/caffe/common.cpp", "<< (prop.kernelExecTimeoutEnabled ? \"Yes\" : \"No\");",
     "<< ([&] { int v = 0; cudaDeviceGetAttribute(&v, cudaDevAttrKernelExecTimeout, device); return v; }()"
     " ? \"Yes\" : \"No\");",
     "cudaDeviceProp::kernelExecTimeoutEnabled was removed in CUDA 13"),
    ("src/caffe/layers/proposal_layer.cu", "INSTANTIATE_LAYER_GPU_FUNCS(ProposalLayer);",
     "template <typename Dtype>\nvoid ProposalLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,\n"
     "    const vector<bool>& propagate_down, const vector<Blob<Dtype>*>& bottom) {}\n\n"
     "INSTANTIATE_LAYER_GPU_FUNCS(ProposalLayer);",
     "Backward_gpu is declared but never defined (Backward_cpu is empty): g++ rejects instantiating it"),
    ("src/caffe/util/math_functions.cu", "#include <math_functions.h>  // CUDA's, not caffe's, for fabs, signbit",
     "#include <cuda_runtime.h>  // fabs, signbit (CUDA's math_functions.h is internal, slated for removal)",
     "CUDA 12+/13 warn that math_functions.h is internal and will be removed"),
    ("tools/caffe.cpp", "#ifdef USE_NCCL\n    caffe::NCCL<float> nccl(solver);\n"
     "    nccl.Run(gpus, FLAGS_snapshot.size() > 0 ? FLAGS_snapshot.c_str() : NULL);\n#else\n"
     "    LOG(FATAL) << \"Multi-GPU execution not available - rebuild with USE_NCCL\";\n#endif",
     "    caffe::P2PSync<float> sync(solver, NULL, solver->param());\n    sync.Run(gpus);",
     "`caffe train --gpu 0,1`: the tool calls Caffe 1.0's NCCL class, which this sdist's parallel.cpp (rc3's) "
     "lacks; run the P2PSync multi-GPU solver it has (gradients averaged over the GPUs, record i to GPU i mod N)"),
    *(cpu_fallback_patch(f"src/caffe/layers/{stem}_layer.cpp", f"{layer}Layer") for stem, layer in (
        ("relu6", "ReLU6"), ("hardsigmoid", "HardSigmoid"), ("hardswish", "HardSwish"),
        ("maxunpool", "MaxUnPool"), ("pixelshuffle", "PixelShuffle"), ("upsample", "Upsample"))),
    ("src/caffe/internal_thread.cpp", "  CUDA_CHECK(cudaGetDevice(&device));",
     "  if (Caffe::mode() == Caffe::GPU) {\n    CUDA_CHECK(cudaGetDevice(&device));\n  }",
     "the data layers' prefetch thread asked the CUDA driver for the device in CPU mode too: CPU-mode "
     "training aborted on a machine without a GPU (the container run without --gpus)"),
    ("src/caffe/internal_thread.cpp", "  CUDA_CHECK(cudaSetDevice(device));",
     "  if (mode == Caffe::GPU) {\n    CUDA_CHECK(cudaSetDevice(device));\n  }",
     "the same thread's cudaSetDevice: only in GPU mode"),
)

HERE = Path(__file__).resolve().parent
COMPAT_HEADER = HERE / "caffe_build" / "opencv4_compat.h"
# CPU builds: what every translation unit parses anyway (the compat header's OpenCV, Caffe's core headers and
# the generated caffe.pb.h), precompiled once with the Makefile's own flags and force-included in place of the
# compat header. GCC uses the .gch only where the flags match and otherwise reads the header text, so the
# objects are the same either way; measured on 2 busy cores, six of the heaviest units compiled in 35 s with it
# against 65 s without. Bump PCH_VERSION when the list changes (CPU cache key only; GPU builds do not use it).
PCH_VERSION = 1
PCH_INCLUDES = ("<vector>", "<string>", "<map>", '"caffe/common.hpp"', '"caffe/blob.hpp"', '"caffe/layer.hpp"',
                '"caffe/net.hpp"', '"caffe/filler.hpp"', '"caffe/util/math_functions.hpp"',
                '"caffe/proto/caffe.pb.h"')
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
    "ca-certificates": "TLS roots for the sdist download",
}
# SASS targets when --cuda-archs is not given, by the major version of the nvcc that compiles; the last one
# also goes in as PTX, which GPUs newer than the list JIT-compile. CUDA 13 dropped Maxwell, Pascal and Volta
# (sm_50 ... sm_72); CUDA 12 cannot target Blackwell's sm_100/sm_120.
CUDA_ARCHS_BY_MAJOR = {
    12: ("60", "61", "70", "75", "80", "86", "89", "90"),
    13: ("75", "80", "86", "89", "90", "100", "120"),
}
NEWEST_CUDA_MAJOR = max(CUDA_ARCHS_BY_MAJOR)
TOOLS = ("caffe", "upgrade_net_proto_text", "upgrade_net_proto_binary", "compute_image_mean",
         "convert_imageset")


class BuildError(RuntimeError):
    """A failure with a one-line explanation and fix for the user."""


def say(msg: str) -> None:
    print(f"[caffe] {msg}", flush=True)


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(signum)


def interruptible(run, prog: str) -> int:
    """run() with SIGTERM handled like Ctrl-C: the clean-up in `finally` blocks runs (the temp dirs go, make
    is stopped) and the exit status is 128 + the signal, with one line on stderr."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run()
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        print(f"{prog}: interrupted ({signal.Signals(signum).name}); no build was kept or installed",
              file=sys.stderr)
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def usable_cores() -> int:
    """CPU cores this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 2


# Version macros of the CUDA headers the host code compiles against: (library, header, macros).
CUDA_HEADER_VERSIONS = (
    ("cudart", "cuda_runtime_api.h", ("CUDART_VERSION",)),
    ("cublas", "cublas_api.h", ("CUBLAS_VER_MAJOR", "CUBLAS_VER_MINOR", "CUBLAS_VER_PATCH", "CUBLAS_VER_BUILD")),
    ("curand", "curand.h", ("CURAND_VER_MAJOR", "CURAND_VER_MINOR", "CURAND_VER_PATCH", "CURAND_VER_BUILD")),
)


@dataclass
class CudaInfo:
    """The CUDA a GPU build compiles with: nvcc's own version and the versions the headers declare."""

    nvcc: str  # "13.0.88", from `nvcc --version`
    headers: dict[str, str]  # library -> version from its header ("cudart": "13.0", "cublas": "13.1.0.3", ...)
    header_files: dict[str, str]  # library -> the header file that was read (first on the include path)

    @property
    def major(self) -> int:
        return int(self.nvcc.split(".")[0])

    @classmethod
    def probe(cls, cuda_dir: str, prefixes: tuple[str, ...] = ()) -> CudaInfo:
        nvcc = Path(cuda_dir) / "bin" / "nvcc"
        try:
            out = subprocess.run([str(nvcc), "--version"], check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BuildError(f"cannot run {nvcc} ({exc}); install the CUDA toolkit or pass --cuda-dir DIR") from exc
        m = re.search(r"release \S+, V(\d+\.\d+\.\d+)", out)
        if not m:
            raise BuildError(f"{nvcc} --version printed no 'release X, VX.Y.Z' line: {out.strip()[-200:]}")
        include_dirs = [Path(p) / "include" for p in prefixes] + [Path(cuda_dir) / "include"]
        headers, files = {}, {}
        for lib, name, macros in CUDA_HEADER_VERSIONS:
            path = next((d / name for d in include_dirs if (d / name).is_file()), None)
            if path is None:
                raise BuildError(f"{name} ({lib}) not found in {', '.join(map(str, include_dirs))}; "
                                 "install the CUDA toolkit's development headers or pass --cuda-prefix DIR")
            text = path.read_text(errors="replace")
            values = []
            for macro in macros:
                mm = re.search(rf"^#define\s+{macro}\s+(\d+)", text, re.M)
                if not mm:
                    raise BuildError(f"{path}: no #define {macro}; is this a CUDA header?")
                values.append(int(mm.group(1)))
            if lib == "cudart":  # CUDART_VERSION = 1000 * major + 10 * minor
                values = [values[0] // 1000, values[0] % 1000 // 10]
            headers[lib], files[lib] = ".".join(map(str, values)), str(path)
        return cls(nvcc=m.group(1), headers=headers, header_files=files)

    def describe(self) -> str:
        return f"nvcc {self.nvcc}; host headers: " + ", ".join(f"{k} {v}" for k, v in self.headers.items())


@dataclass
class Config:
    gpu: bool = False
    cuda_dir: str = "/usr/local/cuda"
    # Empty: CUDA_ARCHS_BY_MAJOR for the toolkit's nvcc (or the newest major when nothing was probed).
    cuda_archs: tuple[str, ...] = ()
    # Extra CUDA install prefixes (each with include/ and lib/), searched before cuda_dir: e.g. the
    # cuBLAS/cuRAND wheels that tools/check_gpu_build.py pins to the container's CUDA release.
    cuda_prefixes: tuple[str, ...] = ()
    cuda: CudaInfo | None = None
    py: PythonInfo | None = None
    jobs: int = field(default_factory=usable_cores)

    def archs(self) -> tuple[str, ...]:
        if self.cuda_archs:
            return self.cuda_archs
        major = self.cuda.major if self.cuda else NEWEST_CUDA_MAJOR
        if major not in CUDA_ARCHS_BY_MAJOR:
            raise BuildError(f"no default GPU architectures for CUDA {major}; pass --cuda-archs (e.g. 75,80,90)")
        return CUDA_ARCHS_BY_MAJOR[major]

    def cuda_lib_dirs(self) -> list[str]:
        """Where the CUDA runtime libraries are found: the extra prefixes first, then the toolkit."""
        return [str(Path(p) / "lib") for p in self.cuda_prefixes] + [f"{self.cuda_dir}/lib64"]

    def makefile_config(self) -> str:
        """The Makefile.config handed to Caffe's classic Makefile."""
        py = self.py
        assert py is not None
        tag = py.version.replace(".", "")
        lines = [
            "# Generated by tools/build_caffe.py -- do not edit by hand.",
            f"# target: {'CUDA GPU' if self.gpu else 'CPU only'}; Python {py.version}",
        ]
        extra_inc = extra_lib = ""
        if self.gpu:
            archs = " ".join(f"-gencode arch=compute_{a},code=sm_{a}" for a in self.archs())
            last = self.archs()[-1]
            archs += f" -gencode arch=compute_{last},code=compute_{last}"
            lines += [
                "CPU_ONLY := 0",
                "USE_CUDNN := 0  # Caffe 1.0's cuDNN code predates cuDNN 8's API",
                f"CUDA_DIR := {self.cuda_dir}",
                f"CUDA_ARCH := {archs}",
            ]
            # Caffe's Makefile appends CUDA_DIR's include/lib after these, so the prefixes win.
            extra_inc = "".join(f" {p}/include" for p in self.cuda_prefixes)
            extra_lib = "".join(f" {p}/lib" for p in self.cuda_prefixes)
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
            f"INCLUDE_DIRS := $(PYTHON_INCLUDE){extra_inc} /usr/include/hdf5/serial /usr/include/opencv4"
            " /usr/local/include",
            f"LIBRARY_DIRS := $(PYTHON_LIB){extra_lib} /usr/lib/x86_64-linux-gnu/hdf5/serial"
            " /usr/lib/x86_64-linux-gnu /usr/local/lib /usr/lib",
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
        parts = [SDIST_SHA256, str(RECIPE_VERSION), COMPAT_HEADER.read_bytes().hex(), repr(SOURCE_PATCHES),
                 "gpu" if self.gpu else "cpu", ",".join(self.archs()) if self.gpu else "",
                 py.version, py.libdir, py.numpy_major]
        if self.gpu:  # GPU-only parts come last: the CPU key is exactly what it was before they existed
            cuda = self.cuda.describe() if self.cuda else "unprobed"
            parts += [str(GPU_RECIPE_VERSION), repr(CUDA_SOURCE_PATCHES), cuda]
        else:
            parts += [f"pch{PCH_VERSION}", repr(PCH_INCLUDES)]
        for part in parts:
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


def apt_packages(python: str) -> list[str]:
    """Every Debian package the recipe needs for this interpreter. A distribution interpreter (base prefix
    /usr, like the container's python3) also needs its headers (pycaffe) and venv module (`make setup`);
    a self-built one (pyenv, as on CI) brings both."""
    pkgs = list(APT_BUILD_DEPS)
    code = "import sys; print('%d.%d' % sys.version_info[:2], sys.base_prefix)"
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if r.returncode == 0:
        version, base_prefix = r.stdout.split(maxsplit=1)
        if base_prefix.strip() == "/usr":
            pkgs += [f"python{version}-dev", f"python{version}-venv"]
    return pkgs


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
def apply_source_patches(src: Path, patches=SOURCE_PATCHES) -> None:
    for rel, old, new, why in patches:
        path = src / rel
        text = path.read_text()
        count = text.count(old)
        if count == 0:
            raise BuildError(f"patch for {rel} does not apply (expected {old!r}); is this the {SDIST_VERSION} sdist?")
        path.write_text(text.replace(old, new))
        say(f"patched {rel} ({count}x): {why}")


def cu_sources(src: Path) -> list[str]:
    """Every CUDA file under the source tree's src/ (tests included), relative to the tree."""
    return sorted(str(p.relative_to(src)) for p in (src / "src").rglob("*.cu"))


def make_goals(src: Path, cfg: Config) -> list[list[str]]:
    """The make invocations of a build, in order. `make all` leaves out the CUDA test kernels
    (src/caffe/test/test_*.cu, part of Caffe's gtest binary): a GPU build compiles their objects too, in a
    second run, so that every .cu file of the sdist goes through nvcc."""
    goals = [["all", "pycaffe"]]
    if cfg.gpu:
        tests = [f".temp_release/cuda/{rel[:-3]}.o" for rel in cu_sources(src) if "/test/" in rel]
        if tests:
            goals.append(tests)
    return goals


def precompile_header(src: Path, log) -> Path:
    """Build the CPU build's precompiled header (see PCH_INCLUDES); return the header to force-include.

    caffe.pb.h is generated first (Caffe's own rule), and the .gch is compiled with the exact flags Caffe's
    Makefile gives an object (read from `make -n`). On any failure the plain compat header is returned, with
    a note: the build is then only slower."""
    header = src / ".fcnkit_pch" / "caffe_pch.hpp"
    obj = ".temp_release/src/caffe/blob.o"
    make = ["make", f"FCNKIT_COMPAT_HEADER={COMPAT_HEADER}"]
    try:
        subprocess.run([*make, ".temp_release/src/caffe/proto/caffe.pb.h"], cwd=src, check=True, stdout=log,
                       stderr=subprocess.STDOUT)
        dry = subprocess.run([*make, "-n", obj], cwd=src, check=True, capture_output=True, text=True).stdout
        line = next(ln for ln in dry.splitlines() if ln.lstrip().startswith(("g++", "c++")) and " -c " in ln)
        flags = [f for f in shlex.split(line.split(" 2>", 1)[0])[1:]
                 if f not in ("-MMD", "-MP", "-c", "src/caffe/blob.cpp", "-o", obj)]
        if "-include" in flags:  # the compat header: the precompiled header includes it itself
            i = flags.index("-include")
            del flags[i:i + 2]
        header.parent.mkdir(exist_ok=True)
        header.write_text("// Generated by tools/build_caffe.py: precompiled once, force-included in every unit.\n"
                          f'#include "{COMPAT_HEADER}"\n' + "".join(f"#include {h}\n" for h in PCH_INCLUDES))
        subprocess.run([line.split()[0], "-x", "c++-header", str(header), *flags, "-o", f"{header}.gch"], cwd=src,
                       check=True, stdout=log, stderr=subprocess.STDOUT)
        return header
    except (subprocess.CalledProcessError, StopIteration, OSError) as exc:
        say(f"note: no precompiled header ({exc}); compiling without it")
        return COMPAT_HEADER


def run_make(src: Path, cfg: Config, log_path: Path) -> list[str]:
    """Run Caffe's Makefile, showing a [n/total] line per compiled unit, full log to a file.

    Returns the .cu files nvcc compiled, in the order make reported them."""
    exts = ("*.cpp", "*.cu") if cfg.gpu else ("*.cpp",)
    units = sum(1 for e in exts for p in src.glob(f"src/caffe/**/{e}") if "/test/" not in str(p))
    units += sum(1 for _ in (src / "tools").glob("*.cpp")) + 2  # + caffe.pb.cc, _caffe.cpp
    goals = make_goals(src, cfg)
    units += sum(len(g) for g in goals[1:])
    say(f"compiling (~{units} units, {cfg.jobs} jobs; log: {log_path})")
    done = 0
    compiled_cu: list[str] = []
    t0 = time.time()
    with open(log_path, "w") as log:
        force_include = COMPAT_HEADER
        if not cfg.gpu:
            say("precompiling the headers every unit includes")
            force_include = precompile_header(src, log)
        for goal in goals:
            cmd = ["make", f"-j{cfg.jobs}", *goal, f"FCNKIT_COMPAT_HEADER={force_include}"]
            # make and its compilers get a session of their own, stopped as a whole if this process is interrupted
            proc = subprocess.Popen(cmd, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            assert proc.stdout is not None
            first_err = last_err = ""
            try:
                for line in proc.stdout:
                    log.write(line)
                    s = line.strip()
                    if re.match(r"^(CXX|NVCC|LD|AR|PROTOC|CXX/LD)\b", s):
                        done += s.startswith(("CXX ", "NVCC ")) or "_caffe.cpp" in s
                        if s.startswith("NVCC "):
                            compiled_cu.append(s.split(None, 1)[1])
                        print(f"[caffe] [{done:>3}/{units}] {int(time.time() - t0):>4}s {s}", flush=True)
                    elif ": error:" in s and not first_err:
                        first_err = s  # the compiler's own message, not make's summary
                    elif "error" in s.lower():
                        last_err = s
                rc = proc.wait()
            except BaseException:
                stop_session(proc)
                raise
            if rc != 0:
                why = first_err or last_err or "see log"
                raise BuildError(f"compiling Caffe failed (make exit {rc}): {why} -- full log: {log_path}")
    return compiled_cu


def stop_session(proc: subprocess.Popen) -> None:
    """SIGTERM to every process of proc's session (make and the compilers it runs), SIGKILL after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


# ------------------------------------------------------------------------------ GPU record
FATBIN_MAGIC = 0xBA55ED50
FATBIN_KINDS = {1: "ptx", 2: "sass"}


def fatbin_archs(binary: Path) -> dict[str, dict[str, int]]:
    """Count the device images nvcc embedded in an object or shared library, by kind and architecture:
    {"sass": {"75": 1, ...}, "ptx": {"120": 1}}. Reads the .nv_fatbin section (objcopy) and walks the
    fatbinary headers: a 16-byte header (magic, version, header size, payload size) per object, then one
    entry per image whose header holds its kind (1 PTX, 2 ELF/SASS) and, at byte 28, the SM version."""
    counts: dict[str, dict[str, int]] = {"sass": {}, "ptx": {}}
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "fatbin"
        r = subprocess.run(["objcopy", "-O", "binary", "--only-section=.nv_fatbin", str(binary), str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"objcopy could not read {binary}: {r.stderr.strip()}")
        data = out.read_bytes() if out.exists() else b""
    pos = 0
    while pos + 16 <= len(data):
        magic, _, header, size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # blobs of successive objects are 8-byte aligned
            continue
        entry, end = pos + header, pos + header + size
        while entry + 32 <= end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
            (arch,) = struct.unpack_from("<I", data, entry + 28)
            if kind in FATBIN_KINDS:
                by_arch = counts[FATBIN_KINDS[kind]]
                by_arch[str(arch)] = by_arch.get(str(arch), 0) + 1
            entry += entry_header + payload
        pos = end
    return counts


def cuda_record(src: Path, cfg: Config, compiled: list[str]) -> dict:
    """What a GPU build compiled: every .cu file of the source tree with the images in its object, and the
    images linked into libcaffe.so."""
    units = {}
    for rel in cu_sources(src):
        obj = src / ".temp_release" / "cuda" / f"{rel[:-3]}.o"
        units[rel] = {"compiled": rel in compiled, "object": obj.is_file(),
                      "linked": "/test/" not in rel, **(fatbin_archs(obj) if obj.is_file() else {})}
    lib = next(p for p in (src / ".temp_release" / "lib").glob("libcaffe.so.*") if not p.is_symlink())
    return {"toolkit": cfg.cuda.__dict__ if cfg.cuda else None, "cuda_dir": cfg.cuda_dir,
            "cuda_prefixes": list(cfg.cuda_prefixes), "archs": list(cfg.archs()), "ptx_arch": cfg.archs()[-1],
            "cu_units": units, "libcaffe_images": fatbin_archs(lib)}


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
    cuda = f":{cfg.cuda_dir}/lib64" if cfg.gpu else ""  # --cuda-prefix libs: LD_LIBRARY_PATH (runtime_env)
    fixes = [(stage / "python" / "caffe" / "_caffe.so", "$ORIGIN/../../lib")]
    fixes += [(stage / "bin" / t, "$ORIGIN/../lib") for t in TOOLS]
    fixes += [(p, "$ORIGIN") for p in (stage / "lib").glob("libcaffe.so.*") if not p.is_symlink()]
    for path, rpath in fixes:
        r = subprocess.run(["patchelf", "--set-rpath", f"{rpath}:{pylib}{cuda}", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"patchelf failed on {path.name}: {r.stderr.strip()}")


def runtime_env(cfg: Config, base: dict | None = None) -> dict:
    """Environment that runs a build: with --cuda-prefix, the CUDA libraries come from those prefixes."""
    env = dict(os.environ if base is None else base)
    if cfg.gpu and cfg.cuda_prefixes:
        dirs = [str(Path(p) / "lib") for p in cfg.cuda_prefixes]
        env["LD_LIBRARY_PATH"] = ":".join(dirs + [d for d in [env.get("LD_LIBRARY_PATH", "")] if d])
    return env


def smoke_test(stage: Path, cfg: Config) -> str:
    r = subprocess.run([str(stage / "bin" / "caffe"), "--version"], capture_output=True, text=True,
                       env=runtime_env(cfg))
    version = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or "caffe version" not in version:
        raise BuildError(f"built caffe binary does not run: {version[-300:]}")
    if cfg.py:
        env = dict(runtime_env(cfg), PYTHONPATH=str(stage / "python"), GLOG_minloglevel="2")
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
            # The "data" filter exists from Python 3.11.4 on; Debian 12's python3 (the container's) is 3.11.2.
            # The sdist's checksum was verified above either way.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(tmp_root, **safe)
        src = tmp_root / f"{SDIST_NAME}-{SDIST_VERSION}"
        apply_source_patches(src)
        if cfg.gpu:
            apply_source_patches(src, CUDA_SOURCE_PATCHES)
        (src / "Makefile.config").write_text(cfg.makefile_config())
        (src / "python" / "caffe" / "proto" / "caffe_pb2.py").unlink(missing_ok=True)
        t0 = time.time()
        compiled_cu = run_make(src, cfg, cache / f"{final.name}.build.log")
        regenerate_proto(src)
        stage = tmp_root / "stage"
        assemble(src, stage, cfg)
        version = smoke_test(stage, cfg)
        info = {"key": final.name, "sdist_sha256": SDIST_SHA256, "version": version, "gpu": cfg.gpu,
                "python": cfg.py.version if cfg.py else None, "build_seconds": round(time.time() - t0, 1),
                "jobs": cfg.jobs, "makefile_config": cfg.makefile_config()}
        if cfg.gpu:
            info["cuda"] = cuda_record(src, cfg, compiled_cu)
            info["multi_gpu"] = "P2PSync"  # `caffe train --gpu 0,1` (the tools/caffe.cpp patch above)
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
    p.add_argument("--cuda-dir", default="/usr/local/cuda", help="CUDA toolkit root (bin/nvcc, include, lib64)")
    p.add_argument("--cuda-archs", default="",
                   help="comma-separated SM versions (default by nvcc's major: "
                   + "; ".join(f"CUDA {k}: {','.join(v)}" for k, v in CUDA_ARCHS_BY_MAJOR.items()) + ")")
    p.add_argument("--cuda-prefix", action="append", default=[], metavar="DIR",
                   help="extra CUDA prefix (DIR/include, DIR/lib) searched before --cuda-dir; repeatable")
    p.add_argument("--python", default=sys.executable, help="interpreter pycaffe is built for")
    p.add_argument("--install-venv", type=Path, help="install pycaffe and the caffe tools into this venv")
    p.add_argument("--cache-dir", type=Path, default=default_cache())
    p.add_argument("--sdist", help="use this local sdist file instead of downloading")
    p.add_argument("--sdist-url", help="download the sdist from this URL instead of via pip")
    p.add_argument("--jobs", type=int, default=usable_cores(), help="parallel compile jobs (default: cores)")
    p.add_argument("--skip-apt", action="store_true", help="do not check/install Debian packages")
    p.add_argument("--apt-only", action="store_true",
                   help="install the Debian packages the build needs for --python, then stop (Dockerfile.caffe)")
    p.add_argument("--dry-run", action="store_true", help="print the Makefile.config and plan; build nothing")
    p.add_argument("--fetch-only", action="store_true", help="download and verify the sdist, then stop")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace, probe: bool = True) -> Config:
    """The build configuration, with the interpreter and (for --gpu) the CUDA toolkit probed.

    probe=False (dry runs) tolerates a missing toolkit: the architectures then default to the newest CUDA."""
    cfg = Config(gpu=a.gpu, cuda_dir=a.cuda_dir.rstrip("/"), jobs=a.jobs,
                 cuda_archs=tuple(x.strip() for x in a.cuda_archs.split(",") if x.strip()),
                 cuda_prefixes=tuple(str(Path(p).resolve()) for p in a.cuda_prefix))
    if cfg.gpu:
        try:
            cfg.cuda = CudaInfo.probe(cfg.cuda_dir, cfg.cuda_prefixes)
        except BuildError:
            if probe:
                raise
    if probe:
        cfg.py = PythonInfo.probe(a.python)
    return cfg


def main(argv=None) -> int:
    return interruptible(lambda: build_main(parse_args(argv)), "build_caffe")


def build_main(a: argparse.Namespace) -> int:
    try:
        if a.apt_only:
            ensure_apt_packages(apt_packages(a.python))
            return 0
        if a.fetch_only:
            fetch_sdist(a.cache_dir, a.python, a.sdist, a.sdist_url)
            return 0
        cfg = config_from_args(a, probe=not a.dry_run)
        if a.dry_run:
            try:
                cfg.py = PythonInfo.probe(a.python)
            except BuildError:  # a dry run must work before numpy exists (e.g. inside CI lint steps)
                v = f"{sys.version_info[0]}.{sys.version_info[1]}"
                cfg.py = PythonInfo(a.python, v, f"/usr/include/python{v}", "/usr/lib/x86_64-linux-gnu",
                                    "<numpy.get_include()>", "2")
            print(f"# cache entry: {a.cache_dir / cfg.key()}")
            print(f"# make -j{cfg.jobs} all pycaffe   (sdist {SDIST_FILE}, sha256 {SDIST_SHA256})")
            if cfg.gpu:
                print(f"# CUDA: {cfg.cuda.describe() if cfg.cuda else f'no toolkit found in {cfg.cuda_dir}'}"
                      "; then make the CUDA test-kernel objects (src/caffe/test/test_*.cu)")
            print(cfg.makefile_config(), end="")
            return 0
        a.cache_dir.mkdir(parents=True, exist_ok=True)
        final = a.cache_dir / cfg.key()
        if is_complete(final):
            say(f"cached build found: {final}")
        else:
            if final.exists():  # incomplete leftovers are never trusted
                shutil.rmtree(final)
            if not a.skip_apt:
                ensure_apt_packages(apt_packages(a.python))
            sdist = fetch_sdist(a.cache_dir, a.python, a.sdist, a.sdist_url)
            final = build(cfg, a.cache_dir, sdist)
        if a.install_venv:
            install_into_venv(final, a.install_venv, cfg.py)
        return 0
    except BuildError as exc:
        print(f"build_caffe: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
