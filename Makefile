# heady-operator. The two commands a newcomer needs:
#   make run    bring up the embedded default (kwok cluster + operator + samples)
#   make test   install what is missing, lint, type-check and run every test
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
BENCHMARKS := attention_latency pgvector_search simulate recurrence scale shards realnode_resize rollout_resize

.PHONY: help setup tools cluster-up cluster-down run stop lint test test-unit test-e2e bench-quick bench \
	kind-setup image kind-up kind-down test-kind

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: ## create .venv, install redis-server and build the cluster tools (cached)
	hack/setup.sh

tools: ## build/cache kube-apiserver, etcd, kwok, kubectl, helm at pinned versions
	hack/tools.sh

cluster-up: tools ## start the local kwok cluster and write its kubeconfig
	python3 hack/cluster.py up

cluster-down: ## stop and delete the local kwok cluster
	python3 hack/cluster.py down

kind-setup: setup ## podman/buildah/mmdebstrap (Debian), kind + node binaries (Go), every kind-tier image (cached)
	hack/kind-setup.sh

image: setup ## the operator image from the Dockerfile with buildah (no Docker); prints its reference
	hack/kind-setup.sh --packages-only
	python3 hack/images.py operator

kind-up: kind-setup ## a kind cluster "heady": real kubelet + containerd, local images loaded, kubeconfig written
	python3 hack/cluster.py --kind up

kind-down: ## delete the kind cluster and exactly what kind-up created
	python3 hack/cluster.py --kind down

run: ## the embedded default: cluster + CRDs + operator + samples
	hack/run.sh

stop: ## stop the operator started by `make run` and the cluster
	-@pid=$$(cat $${HEADY_CACHE:-$$HOME/.cache/heady}/run/operator.pid 2>/dev/null) && kill $$pid 2>/dev/null; true
	python3 hack/cluster.py down

lint: setup ## ruff (lint + format check) and mypy --strict
	.venv/bin/ruff check operator tests benchmarks hack
	.venv/bin/ruff format --check operator tests benchmarks hack
	.venv/bin/mypy -p heady_operator
	.venv/bin/lint-imports

# The kwok clusters `make test` starts (e2e tests, quick benchmarks): stopped when it exits, pass
# or fail, unless HEADY_KEEP_CLUSTERS=1 (then it says what it left running and how to stop it).
TEST_CLUSTERS ?= $${HEADY_E2E_CLUSTER:-heady-e2e} heady-bench heady-scale-quick heady-shards-quick

# The kind tier's cluster (heady-e2e) is up for the tests and the benchmarks, and deleted after
# them when this run created it (pass or fail).
KIND_RUN := HEADY_KIND_CLUSTER=heady-e2e python3 hack/kind_cluster.py run --

test: setup lint kind-setup ## everything: unit, storage, ingest, e2e (kwok) and kind tests, then each benchmark in quick mode
	@status=0; \
	$(KIND_RUN) bash -c '.venv/bin/pytest -ra tests && $(MAKE) bench-quick' || status=$$?; \
	python3 hack/cluster.py stop-test-clusters $(TEST_CLUSTERS); \
	exit $$status

test-unit: setup ## fast tests only (no cluster)
	.venv/bin/pytest -ra tests/unit

test-e2e: setup ## e2e tests on the kwok cluster
	.venv/bin/pytest -ra tests/e2e

test-kind: kind-setup ## the kind tier (real kubelet + containerd) and its benchmark in quick mode
	$(KIND_RUN) bash -c '.venv/bin/pytest -ra tests/kind && $(PY) benchmarks/realnode_resize.py --quick'

bench-quick: ## every benchmark in its tiny CI mode
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py --quick"; $(PY) benchmarks/$$b.py --quick || exit 1; done

bench: ## full benchmark runs (by hand; results go to benchmarks/results/)
	@for b in $(BENCHMARKS); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done
