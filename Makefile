# fcnkit -- the two commands a user needs are `make demo` (venv + Caffe, then the chain) and `make test` (`make setup` first).
# `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra flags for tools/build_caffe.py (e.g. CAFFE_FLAGS=--gpu inside Dockerfile.caffe).
CAFFE_FLAGS ?=
# Extra flags for tools/check_gpu_build.py (e.g. GPU_CHECK_FLAGS="--jobs 1" on a busy machine).
GPU_CHECK_FLAGS ?=
# GPU architectures `make gpu-build` compiles the container's Caffe for: ci (sm_75 only), all, or e.g. 75,90.
CUDA_ARCHS ?= ci
DEPS_STAMP := $(VENV)/.fcnkit-deps
# `make demo` measured on 2 otherwise idle cores (README, "make demo"): cold (empty cache) and warm, minutes.
DEMO_COLD_MIN := 11
DEMO_WARM_MIN := 4.5

.PHONY: demo-estimate setup deps caffe browser container-tools gpu-build check-gpu-build image image-test gpu-check test lint \
	demo prototxt fidelity clean-venv help

setup: deps caffe browser container-tools

# Python deps are (re)installed only when pyproject.toml changes, so a warm `make setup` takes seconds.
$(DEPS_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "setup: error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 2; }
	@test -x $(PY) || { echo "[setup] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "[setup] installing Python dependencies into $(VENV) (torch==2.13.0 CPU build, numpy, protobuf, ...)"
	@set -o pipefail; { $(PY) -m pip install --progress-bar off -q --upgrade pip setuptools wheel && \
	  $(PY) -m pip install --progress-bar off -q -e '.[dev]'; } 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $@

deps: $(DEPS_STAMP)

caffe: deps
	@$(PY) tools/build_caffe.py --python $(PY) --install-venv $(VENV) $(CAFFE_FLAGS)

# Debian's chromium + chromium-driver for the page test (apt-get as root; otherwise a note and the test skips).
browser:
	@python3 tools/setup_apt.py browser

# buildah + podman + debootstrap for `make image-test` (apt-get as root; otherwise a note and its tests skip).
container-tools:
	@python3 tools/setup_apt.py container

# The CUDA container (Dockerfile.caffe). `make image`: docker where its daemon answers, else buildah (root);
# IMAGE_CUDA_ARCHS=all (default: every architecture the container targets) | ci | 75,90. `make image-test`:
# build it here from a locally bootstrapped Debian base (buildah, root) for CUDA_ARCHS=ci and run the checks
# inside it (see the README's container section for what and how long). IMAGE_FLAGS: e.g. "--jobs 1",
# "--local-base" (make image without a registry), "--log FILE".
IMAGE ?= caffe-gpu
IMAGE_CUDA_ARCHS ?= all
IMAGE_FLAGS ?=
image:
	@python3 tools/container_build.py image --tag $(IMAGE) --cuda-archs $(IMAGE_CUDA_ARCHS) $(IMAGE_FLAGS)

image-test:
	@python3 tools/container_build.py test --cuda-archs $(CUDA_ARCHS) $(IMAGE_FLAGS)

# On a machine with an NVIDIA GPU (and docker + the NVIDIA container toolkit): the image on the GPU.
gpu-check:
	@tools/gpu_check.sh $(IMAGE)

# The CUDA container's Caffe, compiled here by its own recipe (real nvcc, container's CUDA headers; no GPU
# or Docker needed), cached like the CPU build. CUDA_ARCHS=ci (default, what `make test` and CI compile): every
# .cu file for the container's oldest target, sm_75; CUDA_ARCHS=all: for every architecture the container
# targets (sm_75 ... sm_120); or a comma list of those. Times: see the README's container section.
gpu-build: deps
	@$(PY) tools/check_gpu_build.py --cuda-archs $(CUDA_ARCHS) $(GPU_CHECK_FLAGS)

check-gpu-build: setup gpu-build
	@FCNKIT_CUDA_ARCHS=$(CUDA_ARCHS) $(PY) -m pytest -q tests/build

test: setup gpu-build
	@FCNKIT_CUDA_ARCHS=$(CUDA_ARCHS) $(PY) -m pytest -q

lint: deps
	@$(PY) -m ruff check .

# The demo needs the venv and Caffe only (not the test suite's browser and container tools); on a cold machine
# the Caffe build is most of its time, so say so before it starts.
DEMO_ENGINE ?= caffe
demo: demo-estimate deps caffe
	@$(PY) -m fcnkit demo --engine $(DEMO_ENGINE)

demo-estimate:
	@echo "[demo] a first run takes ~$(DEMO_COLD_MIN) min on 2 cores: Python packages, the Caffe build (cached in"
	@echo "[demo] ~/.cache/fcnkit, once), then the chain; a warm run ~$(DEMO_WARM_MIN) min (README, make demo)"

prototxt: caffe
	@$(PY) -m fcnkit generate

fidelity: caffe
	@$(PY) -m fcnkit fidelity

clean-venv:
	rm -rf $(VENV)

help:
	@echo "make setup            .venv + the CPU Caffe build (cached in ~/.cache/fcnkit; first time ~6 min)"
	@echo "                      + the test suite's browser and container tools"
	@echo "make demo             .venv + Caffe, then the tiny FCN-32s -> 16s -> 8s chain in real Caffe"
	@echo "                      (~$(DEMO_COLD_MIN) min cold, ~$(DEMO_WARM_MIN) min warm on 2 cores)"
	@echo "                      (DEMO_ENGINE=torch: the same chain in the torch engine)"
	@echo "make test             setup + gpu-build, then the whole test suite (what CI runs)"
	@echo "make check-gpu-build  compile the CUDA container's Caffe here (every .cu through nvcc, container's"
	@echo "                      CUDA headers; cached) and run tests/build: its pycaffe vs the CPU build"
	@echo "                      CUDA_ARCHS=ci (default, CI's: sm_75 only) | all (every container arch) | 75,90"
	@echo "make gpu-build        only the compile part of check-gpu-build (also CUDA_ARCHS, GPU_CHECK_FLAGS)"
	@echo "make image            build the CUDA container (docker, else buildah as root); IMAGE=caffe-gpu,"
	@echo "                      IMAGE_CUDA_ARCHS=all (default) | ci | 75,90; IMAGE_FLAGS=\"--local-base --jobs N\""
	@echo "make image-test       build it here from a debootstrapped base (buildah, root) and run the checks"
	@echo "                      inside: solve/convert/remove-bg on the CPU, --gpu refusal (cold ~1 h, warm minutes)"
	@echo "make gpu-check        on a GPU machine: device_query, solve --gpu 0, torch on cuda vs CPU (< 10 min)"
	@echo "make lint             ruff"
	@echo "make clean-venv       remove .venv (the Caffe builds stay cached)"
