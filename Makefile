# fcnkit -- the two commands a user needs are `make demo` and `make test`; both run `make setup` first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Extra flags for tools/build_caffe.py (e.g. CAFFE_FLAGS=--gpu inside Dockerfile.caffe).
CAFFE_FLAGS ?=
DEPS_STAMP := $(VENV)/.fcnkit-deps

.PHONY: setup deps caffe browser test lint demo prototxt fidelity clean-venv

setup: deps caffe browser

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
	@python3 tools/setup_browser.py

test: setup
	@$(PY) -m pytest -q

lint: deps
	@$(PY) -m ruff check .

demo: setup
	@$(PY) -m fcnkit demo

prototxt: caffe
	@$(PY) -m fcnkit generate

fidelity: caffe
	@$(PY) -m fcnkit fidelity

clean-venv:
	rm -rf $(VENV)
