# Build scaffolding for meta-orchestrator. Only python3 is needed on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := .demo-run

# Lint only the source folders that exist (benchmarks/ may not be there yet).
LINT_PATHS := $(wildcard meta generators tests benchmarks plugins)
# Outside plugin distributions kept in this repository: installed into the venv, tested by make test.
PLUGINS := plugins/meta-tableschema

.PHONY: venv .venv demo lint test bench clean

venv .venv: $(STAMP)

# The stamp depends on pyproject.toml, so editing it reinstalls into the venv.
$(STAMP): pyproject.toml $(PLUGINS)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install -e $(PLUGINS)
	touch $@

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/meta run samples/tree-sum/tree-sum.flow.yaml --workdir $(DEMO) --report $(DEMO)/report.json
	@echo "Result of the root unit:"
	@$(BIN)/python -c 'import json, pathlib, sys; \
	report = pathlib.Path(sys.argv[1]); \
	out = pathlib.Path(json.loads(report.read_text())["outputs"]); \
	out = out if out.is_absolute() or out.exists() else report.parent / out; \
	[print(f"{f.name}: {f.read_text().rstrip()}") for f in sorted(out.iterdir()) if f.is_file()]' \
	$(DEMO)/report.json

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest exits 5 when no tests are collected; make treats any non-zero exit as a
# failure, so an empty test run fails this target. Do not add `|| true`, `-` or
# anything else that would swallow that exit code.
test: $(STAMP) lint
	$(BIN)/python -m pytest tests $(PLUGINS)/tests

bench: $(STAMP)
	shopt -s nullglob; \
	for f in benchmarks/bench_*.py; do \
	  echo "== $$f"; \
	  $(BIN)/python "$$f"; \
	done

clean:
	rm -rf $(VENV) $(DEMO) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
