# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both first set up: system packages (graphviz's dot), then .venv with chronum installed editable.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.chronum-installed
KERNEL := $(VENV)/.chronum-kernel

.PHONY: setup system demo test lint typecheck bench reliability clean

setup: system $(STAMP) $(KERNEL)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@# compat mode: a plain .pth path entry; the default import hook costs ~20 ms per start.
	@# Chronum with every user extra, plus the developers' tools (pyproject's dependency group `dev`).
	@$(PY) -m pip install --quiet -e '.[notebook,dask,serve,parquet]' --group dev --config-settings editable_mode=compat
	@touch $(STAMP)

# The notebooks (nbval, the browser test) run on the venv's python: its kernelspec goes into the
# venv (--sys-prefix), never into the user's home.
$(KERNEL): $(STAMP)
	@$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(KERNEL)

demo: setup
	@cd examples && ../$(VENV)/bin/chronum run chronum.yaml --db ../.chronum/demo.db; \
	 ../$(VENV)/bin/chronum history --db ../.chronum/demo.db --limit 5

lint: setup
	$(VENV)/bin/ruff check chronum tests benchmarks reliability
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(VENV)/bin/pytest

# W0-W4 as whole `chronum run` processes, interleaved with doit 0.37 (installed by the bench into
# a venv in its scratch folder, deleted afterwards) and a floor; a table with budget verdicts.
# `$(PY) benchmarks/run.py --quick` is a smoke run; `--json PATH` writes the numbers. Then
# benchmarks/choices.py: what each less plain construct in chronum/ saves of W0 (kept at >= 5 %).
bench: setup
	$(PY) benchmarks/run.py
	$(PY) benchmarks/choices.py

# Crash, concurrency, process, resource and fuzz checks at full size, then a table.
# `$(PY) reliability/run.py --quick` runs the small sizes of `make test`.
reliability: setup
	$(PY) reliability/run.py --full

clean:
	rm -rf $(VENV) build .chronum .pytest_cache .mypy_cache .ruff_cache
