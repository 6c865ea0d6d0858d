# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TS_STAMP := tests/ts/node_modules/.installed
RESTATE_CLI_VERSION := 1.7.12
CLI_STAMP := .tooling/restate-cli/.installed-$(RESTATE_CLI_VERSION)
CHROMIUM := /usr/bin/chromium

.PHONY: run dev-cluster test test-workers test-cluster lint bench proto clean prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,cluster]'
	touch $(STAMP)

# The TypeScript-SDK test services (Node and npm come with the machine).
$(TS_STAMP): tests/ts/package.json tests/ts/package-lock.json
	cd tests/ts && npm ci --no-audit --no-fund --ignore-scripts --silent
	touch $(TS_STAMP)

# The official restate CLI, for tests/integration/test_cli.py (git-ignored tooling dir).
$(CLI_STAMP):
	mkdir -p .tooling/restate-cli
	npm install --prefix .tooling/restate-cli --no-audit --no-fund --ignore-scripts --silent @restatedev/restate@$(RESTATE_CLI_VERSION)
	touch $(CLI_STAMP)

# Debian's Chromium for the web UI's browser tests (Playwright drives it; it never downloads one).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# A real Prometheus for tests/integration/test_metrics.py: Debian's package, when apt-get can install
# it (the test skips, saying so, where it cannot).
prometheus:
	@command -v prometheus >/dev/null || { \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) \
		>/dev/null 2>&1 || echo "prometheus could not be installed with apt-get: its metrics test will be skipped"; }

run: $(STAMP)
	$(PY) -m quill serve

# A local 3-server NATS JetStream + 3-node quill cluster (cluster mode); Ctrl-C stops it all.
dev-cluster: $(STAMP)
	$(PY) -m quill dev-cluster

# Lint and type gates: ruff (E,F,I,B,UP) and mypy strict, generated protobuf code excluded.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) $(TS_STAMP) $(CLI_STAMP) $(CHROMIUM) prometheus lint
	$(PY) -m pytest -q -n 2 --ignore=tests/cluster
	$(MAKE) test-workers
	$(MAKE) test-cluster

# The integration suite again, every quill with two worker processes (--workers 2), but for what a
# worker process does alone whatever their number: the wheel's packaging, the in-process test
# harness, the browser UI, the ingress fuzzer and input rules, protocol version negotiation.
WORKERS_PASS_SKIPS := packaging harness ui ingress_fuzz payload_rules protocol_versions
test-workers: $(STAMP) $(TS_STAMP) $(CLI_STAMP) prometheus
	QUILL_TEST_WORKERS=2 $(PY) -m pytest -q -n 2 tests/integration $(WORKERS_PASS_SKIPS:%=--ignore=tests/integration/test_%.py)

# Cluster mode's log against real 3-server NATS JetStream clusters (nats-server from the cluster extra).
test-cluster: $(STAMP)
	$(PY) -m pytest -q -n 2 tests/cluster

bench: $(STAMP)
	$(PY) -m benchmarks.run --target quill --handler noop --concurrency 32 --duration 15

proto: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	sh engine/protocol/regenerate.sh

clean:
	rm -rf $(VENV) quill-data
