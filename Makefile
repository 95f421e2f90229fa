# lifecycle-jobs. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

REPO        := $(abspath .)
LOCAL       := $(REPO)/.local-cluster
# The local cluster's kubeconfig, when it is up.
LOCAL_KUBECONFIG := $(LOCAL)/kubeconfig
CARGO       ?= cargo

.PHONY: help
help: ## This list.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Release binaries: lifecycle-webhook, lifecycle-agent, kubectl-lifecycle.
	$(CARGO) build --release --locked -p lifecycle-webhook -p lifecycle-agent -p kubectl-lifecycle

.PHONY: run
run: ## Install and run the product: current kube context, else a local cluster.
	scripts/run.sh

.PHONY: test
test: unit cluster-test e2e ## Every test: unit tests, the cluster scripts' test, then the end-to-end suite on the real local cluster.

.PHONY: unit
unit: ## Unit tests of every crate.
	$(CARGO) test --locked --workspace --exclude lifecycle-e2e

.PHONY: lint
lint: lint-chart lint-workflows ## rustfmt and clippy (warnings are errors), the chart, the workflows.
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	python3 scripts/code-map.py --check

.PHONY: lint-chart
lint-chart: ## The Helm chart renders what manifests/ does; helm lint/template of every values file.
	charts/test-render.sh

.PHONY: lint-workflows
lint-workflows: ## actionlint on .github/workflows (actionlint built from the Go module proxy, cached).
	"$$(tests/tools/build-tools.sh | tail -n1)/actionlint" -no-color

.PHONY: cluster-up
cluster-up: ## Start the local cluster (builds Kubernetes once, cached in ~/.cache).
	tests/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster; leaves no process or mount behind.
	tests/cluster/down.sh

.PHONY: cluster-test
cluster-test: ## Test the cluster scripts (up x3, a second checkout refused, down x2); restarts a running cluster.
	tests/cluster/test-idempotent.sh

.PHONY: images
images: ## OCI image tars of the webhook, the agent and the examples' job images (no Docker engine needed).
	tests/cluster/images.sh

.PHONY: deploy
deploy: ## Install the product from manifests/ into the current kube context.
	scripts/deploy.sh

.PHONY: uninstall
uninstall: ## Remove lifecycle-jobs from the current kube context (no webhook left behind).
	scripts/uninstall.sh

.PHONY: e2e
e2e: ## End-to-end suite; brings the local cluster up and deploys the product.
	tests/run-e2e.sh

.PHONY: screenshots
screenshots: ## The web view's pages as PNG in docs/images/ (its e2e test in headless Chromium, with LJ_SCREENSHOTS=1).
	LJ_SCREENSHOTS=1 tests/run-e2e.sh ui::ui_shows_and_drives_the_example_environment

.PHONY: scale-test
scale-test: ## The server at scale on the local cluster (ENVS, TEMPLATES): RSS, idle leader CPU, admission p50/p99.
	tests/scale/scale-test.sh

.PHONY: bench
bench: ## Admission over TLS, HTTP/1.1 and HTTP/2 (h2load), the logic alone, agent size and idle footprint.
	bench/run.sh

.PHONY: bench-cluster
bench-cluster: ## Cost per pod through the real API server (local cluster with the product deployed; BENCH_PODS).
	bench/cluster.sh

.PHONY: bench-lifecycle
bench-lifecycle: ## Lifecycle speed: stage handoff, gate release, apply to Ready, pod starts per replica (local cluster; ENVS).
	@bench/lifecycle.sh

.PHONY: bench-ui
bench-ui: ## The web view with many environments (ENVS, default 100): first contentful paint of the list, the plugin's RSS (local cluster, headless Chromium).
	@bench/ui.sh
