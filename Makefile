# wgf — experiment runner for Wasserstein gradient flows.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: help install test test-full lint docs bench reproduce clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): pyproject.toml setup.py wgf_cli/gdelt/_fastread.c | $(PY)
	@# torch first, pinned: a CPU wheel of it is on these machines; an open range
	@# with no torch installed would pull several GB of CUDA packages.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[dev,gdelt]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv (if missing) and install torch, then wgf in editable mode

test: install  ## the fast suite (no slow tests); what CI runs
	$(PY) -m pytest -m "not slow" -q

test-full: install  ## every test, slow ones included
	$(PY) -m pytest -q

lint: install  ## ruff, then the import-linter contracts of the layers (pyproject.toml)
	$(VENV)/bin/ruff check wgf_cli tests benchmarks
	$(VENV)/bin/lint-imports

docs: install  ## the docs site (mkdocs-material, --strict) into site/
	$(PY) -c "import mkdocs, material, mkdocstrings" 2>/dev/null || $(PIP) install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: install  ## benchmarks; tables printed, JSON written to benchmarks/results/
	$(PY) benchmarks/run_all.py

PROFILE ?= quick
reproduce: install  ## every preset (PROFILE=quick|full), its claims, the report: outputs/report/index.html
	$(PY) -m wgf_cli.reproduce --profile $(PROFILE) --out outputs/reproduce --report outputs/report

clean:  ## remove the virtual environment and caches (outputs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache *.egg-info site build
