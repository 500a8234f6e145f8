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
# The local Kubernetes control plane of the tests in tests/kube/cluster (tests/e2e/cluster/up.sh).
CLUSTER        := .cluster
CLUSTER_DIR    := tests/e2e/cluster
KIND           ?= kind
KIND_DIR       := .kind
KIND_NAME      := meta-e2e
# build.sh one at a time per cache; tests/kube/cluster/conftest.py takes the same lock.
CLUSTER_CACHE  := $${META_CACHE_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/meta-orchestrator}
# crds/ is created before the controller manager starts: its garbage collector then knows MetaFlows.
space          := $() $()
CLUSTER_CRDS   := $(subst $(space),:,$(abspath $(wildcard crds/*.yaml)))
CLUSTER_BUILD  := mkdir -p "$(CLUSTER_CACHE)" && flock "$(CLUSTER_CACHE)/build.lock" $(CLUSTER_DIR)/build.sh | tail -n 1
IMAGES_BUILD   := tests/e2e/images/build.sh | tail -n 1

.PHONY: venv .venv demo lint test bench clean cluster-up cluster-down kind-e2e images tools deploy-manifests

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
# The slowest tests are listed at the end: the suite must stay well under 30 minutes in CI.
test: $(STAMP) lint
	$(BIN)/python -m pytest tests $(PLUGINS)/tests --durations=25 --durations-min=5

# bench_peers_kube.py (Argo Workflows side by side, about 45 minutes, root) runs only when named:
# `make bench SKIP=`.
SKIP ?= benchmarks/bench_peers_kube.py
bench: $(STAMP)
	shopt -s nullglob; \
	for f in benchmarks/bench_*.py; do \
	  case " $(SKIP) " in *" $$f "*) echo "== $$f skipped (make bench SKIP=)"; continue;; esac; \
	  echo "== $$f"; \
	  $(BIN)/python "$$f"; \
	done

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (one fake node,
# kwok-node-0) on 127.0.0.1, and a real node (meta-node-0: kubelet, kube-proxy, containerd, a CNI
# bridge, in a network namespace of its own; root needed) with an image registry, to which the
# images of `make images` are pushed and from which the node pulls them; then the API server and
# the registry listen on the host's end of the node's link. State in .cluster/. The first build
# takes 10-25 minutes. `make cluster-up NODE=kwok` leaves out the real node.
NODE ?= real
cluster-up: $(STAMP)
	export META_CLUSTER_NODE=$(NODE); \
	bin="$$($(CLUSTER_BUILD))"; \
	META_CLUSTER_BIN="$$bin" META_CLUSTER_CRDS="$(CLUSTER_CRDS)" $(CLUSTER_DIR)/up.sh $(CLUSTER) >/dev/null
	if [ "$(NODE)" = real ]; then $(MAKE) --no-print-directory images >/dev/null; fi
	@echo "export KUBECONFIG=$(CURDIR)/$(CLUSTER)/kubeconfig"

cluster-down:
	$(CLUSTER_DIR)/down.sh $(CLUSTER)

# tests/kube/cluster against a kind cluster (Docker and kind needed; not run in CI), with kwok and its
# fake node added by up.sh. The cluster is deleted afterwards, whatever the result.
kind-e2e: $(STAMP)
	bin="$$($(CLUSTER_BUILD))"; \
	mkdir -p $(KIND_DIR); \
	$(KIND) create cluster --name $(KIND_NAME) --config tests/e2e/kind.yaml --kubeconfig $(KIND_DIR)/kubeconfig; \
	rc=0; \
	META_CLUSTER_BIN="$$bin" META_CLUSTER_KUBECONFIG=$(KIND_DIR)/kubeconfig META_CLUSTER_PYTHON=$(BIN)/python \
	  $(CLUSTER_DIR)/up.sh $(KIND_DIR)/kwok >/dev/null || rc=$$?; \
	if [ $$rc -eq 0 ]; then \
	  KUBECONFIG=$(CURDIR)/$(KIND_DIR)/kubeconfig META_E2E=required $(BIN)/python -m pytest tests/kube/cluster || rc=$$?; \
	fi; \
	$(CLUSTER_DIR)/down.sh $(KIND_DIR)/kwok || true; \
	$(KIND) delete cluster --name $(KIND_NAME) || true; \
	exit $$rc

# The e2e container images, built without Docker (as root; the first build takes about three
# minutes): prints the path of their archive, for tests/e2e/images/load.sh SOCKET ARCHIVE. When
# the registry of `make cluster-up` answers, they are pushed to it too (as library/NAME:TAG, where
# its node looks for docker.io's images first).
images: $(STAMP)
	archive="$$($(IMAGES_BUILD))"; \
	echo "$$archive"; \
	registry="$$(cat $(CLUSTER)/registry/address 2>/dev/null || true)"; \
	if [ -n "$$registry" ] && curl -sf --max-time 2 "http://$$registry/v2/" >/dev/null; then \
	  tests/e2e/images/push.sh "$$registry" "$$archive" >/dev/null; \
	  echo "pushed to $$registry" >&2; \
	fi

# kubectl and helm, built from Go modules (cached by version); prints their bin directory.
TOOLS_BUILD := mkdir -p "$(CLUSTER_CACHE)" && flock "$(CLUSTER_CACHE)/build.lock" $(CLUSTER_DIR)/build-tools.sh | tail -n 1
tools:
	$(TOOLS_BUILD)

# deploy/: the chart's default rendering, for `kubectl apply -k deploy/` without Helm.
deploy-manifests:
	bin="$$($(TOOLS_BUILD))"; \
	{ echo "# Rendered from charts/meta-orchestrator by \`make deploy-manifests\`: do not edit."; \
	  "$$bin/helm" template meta-orchestrator charts/meta-orchestrator --namespace meta-system; \
	} >deploy/meta-orchestrator.yaml

clean:
	rm -rf $(VENV) $(DEMO) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
