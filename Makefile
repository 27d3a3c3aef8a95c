# Two commands: `make up` runs the whole platform on embedded defaults, `make test` runs the suite.
# Needs only Python 3.11+ and make: the first target bootstraps uv into .tools/ and the workspace into .venv/.

PYTHON_BOOT ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up down test test-fast fuzz screenshots bench lint migrate schemas release-schemas browser-deps tls-deps sbom pin-images clean

$(UV):
	$(PYTHON_BOOT) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --all-packages --locked --quiet
	@touch $@

install: $(STAMP) ## create .venv with every service, lib and the dev group (embedded runtime, test tools; uv.lock)

up: install ## start PostgreSQL, the broker, the five services, SMTP sink and fake Twilio; Ctrl-C stops
	$(PY) -m dunning_kit.devstack up

down: ## stop what `make up` started
	@if [ -x $(PY) ]; then $(PY) -m dunning_kit.devstack down; else echo "nothing to stop"; fi

browser-deps: ## Debian's chromium for the self-service page's browser test (root + apt only)
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: browser tests will be skipped"; \
	fi

tls-deps: ## Debian's stunnel4, the TLS terminator in front of the embedded broker in the Kafka security tests
	@if ! command -v stunnel4 >/dev/null && ! command -v stunnel >/dev/null; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			echo "installing stunnel4 for the Kafka TLS tests"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4 >/dev/null) \
			|| { echo "stunnel4 could not be installed with apt-get; the Kafka TLS tests need it"; exit 1; }; \
		else \
			echo "the Kafka TLS tests need Debian's stunnel4: run 'apt-get install -y stunnel4' as root"; exit 1; \
		fi; \
	fi

# The suite mostly waits (on sockets, consumer group joins, subprocesses), so it runs in more workers than cores;
# each worker starts its own PostgreSQL and brokers. Tests are handed out one at a time, the long ones first
# (root conftest.py).
TEST_WORKERS ?= 6
PARALLEL := -n $(TEST_WORKERS) --dist loadgroup

# The process-kill tests (`slow`) run afterwards, SLOW_WORKERS at a time: a SIGKILL'd notifier must be ready within
# 5 s, which a machine busy with the parallel workers did not give it (ready in 9-21 s); two process platforms side
# by side on 2 cores do (the part takes ~85 s instead of ~135 s alone). Both parts run; either failing fails.
SLOW_WORKERS ?= 2
test: install browser-deps tls-deps ## the whole suite on real PostgreSQL and the real broker, TEST_WORKERS in parallel
	@$(PY) -m pytest $(PARALLEL) -m "not slow"; parallel=$$?; \
	$(PY) -m pytest -n $(SLOW_WORKERS) -m slow; alone=$$?; \
	exit $$(( parallel || alone ))

test-fast: install tls-deps ## the suite without the slow fault-injection tests and the fuzz run
	$(PY) -m pytest $(PARALLEL) -m "not slow and not fuzz"

FUZZ_SECONDS ?= 300
FUZZ_SEED ?= 20261205
fuzz: install ## schemathesis against every service's OpenAPI, FUZZ_SECONDS each (make test: a fixed case count each)
	DUNNING_FUZZ_SECONDS=$(FUZZ_SECONDS) DUNNING_FUZZ_SEED=$(FUZZ_SEED) $(PY) -m pytest -m fuzz tests/fuzz --timeout=0

screenshots: install browser-deps ## the workspace's main pages as docs/screenshots/*.png, taken by its browser test
	WORKSPACE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/browser/test_workspace_day.py

bench: install ## benchmarks: figures and ratios to raws measured in the same run, into .bench/results.json
	$(PY) -m tests.bench.run

lint: install ## ruff (lint + format check), mypy over the libs and the services (strict on libs/events), event schemas compatible with the release
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m dunning_events.compat

migrate: install ## run every service's migrations (embedded PostgreSQL unless DATABASE_URL is set)
	$(PY) -m dunning_kit.devstack migrate

schemas: install ## regenerate the committed JSON Schemas and AsyncAPI document
	$(PY) -m dunning_events.schema_export
	$(PY) -m dunning_kit.openapi_export

# The event schemas `make lint` checks compatibility against (dunning_events.compat): run when a release is cut.
release-schemas: schemas ## snapshot the event schemas as released (libs/events/schemas/released/)
	$(PY) -m dunning_events.compat --release

SBOM_DIR ?= build/sbom
IMAGES := ledger-sync policy-engine notifier promise-tracker insights workspace
sbom: $(UV) ## CycloneDX 1.5 SBOM of each image, from uv.lock, runtime dependencies only: $(SBOM_DIR)/<service>.cdx.json
	@mkdir -p $(SBOM_DIR)
	@for s in $(IMAGES); do \
		$(UV) export --frozen --no-dev --package $$s --format cyclonedx1.5 --quiet -o $(SBOM_DIR)/$$s.cdx.json || exit 1; \
		echo "$(SBOM_DIR)/$$s.cdx.json"; \
	done

pin-images: ## re-pin deploy/Dockerfile's base images to their tags' current digests (docker buildx + registry access)
	deploy/pin-base-images.sh deploy/Dockerfile

clean: ## remove the environment and local state
	rm -rf $(TOOLS) $(VENV) .run .bench
