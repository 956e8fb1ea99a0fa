# weir: the two commands a user needs are `make demo` and `make test`.
# Both install what is missing first (Debian/Ubuntu packages, a Python venv), so they work on a
# fresh machine. Nothing here downloads anything but packages from the distribution, crates.io
# and PyPI.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := build/.stamp
# Debian packages the build, the tests and the demo need.
APT_PACKAGES := dpdk dpdk-dev libdpdk-dev libclang-dev clang pkg-config libpcap-dev \
                python3-venv python3-dev tshark tcpreplay iproute2 shellcheck gcc make \
                openjdk-17-jre-headless nfdump
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DATA := appliance/tests/data/nfstream
DEMO_CAPTURE := $(DATA)/pcaps/instagram.pcap
DEMO_MODEL := build/models/demo
CAPTURES := $(sort $(wildcard $(DATA)/pcaps/*))
RECORDS := $(patsubst $(DATA)/pcaps/%,build/records/%.csv,$(CAPTURES))

.PHONY: help deps apt venv build demo demo-model explore records test test-rust test-python lint fmt bench clean-build

help:
	@echo "make demo   install what is missing, build, extract and score the flows of a bundled capture"
	@echo "make test   install what is missing and run the whole test suite"
	@echo "make lint   cargo fmt --check and cargo clippy -D warnings"
	@echo "make bench  the performance harness (perf/bench.sh), see perf/RESULTS.md"

deps: apt venv

# Install only the packages that are missing (dpkg -s is the check).
apt: $(STAMP)/apt
$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | $(SUDO) debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

venv: $(STAMP)/venv
$(STAMP)/venv: models/requirements.txt models/requirements-mlflow.txt deploy/requirements-test.txt \
              python/pyproject.toml python/weir/__init__.py
	@mkdir -p $(STAMP)
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r models/requirements.txt -r models/requirements-mlflow.txt \
	    -r deploy/requirements-test.txt
	# The Python API (python/), as a user installs it.
	$(PY) -m pip install -q --no-deps ./python
	@touch $@

# The MLflow tracking server models/tests runs on loopback, in a venv of its own (full mlflow
# needs pyarrow<26; see models/requirements-mlflow-server.txt).
MLFLOW_SERVER_VENV := build/mlflow-server-venv
$(MLFLOW_SERVER_VENV)/.ok: models/requirements-mlflow-server.txt
	@mkdir -p build
	@[ -x $(MLFLOW_SERVER_VENV)/bin/python ] || python3 -m venv $(MLFLOW_SERVER_VENV)
	$(MLFLOW_SERVER_VENV)/bin/python -m pip install -q -r models/requirements-mlflow-server.txt
	@touch $@

build: apt
	$(CARGO) build --release --workspace --bins --lib --examples

test: deps
	$(MAKE) --no-print-directory test-rust test-python lint

# The plugins are cdylibs no test depends on: build the workspace first so the tests find them
# next to the weir binary.
test-rust: build
	WEIR_PYTHON=$(abspath $(PY)) $(CARGO) test --workspace --release --no-fail-fast

test-python: $(MLFLOW_SERVER_VENV)/.ok build
	@if ls models/tests/test_*.py >/dev/null 2>&1; then \
	  WEIR_MLFLOW_SERVER=$(abspath $(MLFLOW_SERVER_VENV))/bin/mlflow $(PY) -m pytest -q models/tests; fi
	$(PY) -m pytest -q python/tests

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# weir's own records of every bundled capture (one extract per capture: each has its own clock).
records: $(RECORDS)
build/records/%.csv: $(DATA)/pcaps/% | build
	@mkdir -p build/records
	@target/release/weir extract $< --out $@ --quiet --no-progress

# The demo model: a RandomForest trained on weir's records of the bundled captures, labelled with
# nDPI's application category from NFStream's records (joined on the flow key).
demo-model: $(DEMO_MODEL)/model.json
$(DEMO_MODEL)/model.json: $(STAMP)/venv models/train.py models/weir_records.py models/weir_export.py | build
	$(MAKE) --no-print-directory records
	$(PY) models/train.py build/records --labels $(DATA)/expected \
	    --label-column application_category_name --name demo --version 1 \
	    --n-estimators 50 --max-depth 16 --out $(DEMO_MODEL)

# Accuracy against cost per feature set (models/explore.py), on the bundled captures.
explore: deps build
	$(PY) models/explore.py $(DATA)/pcaps --labels $(DATA)/expected --out build/explore

demo: deps build
	$(MAKE) --no-print-directory demo-model
	target/release/weir extract $(DEMO_CAPTURE) --config deploy/examples/demo.toml --model $(DEMO_MODEL) \
	    --out build/demo-flows.csv --alerts build/demo-alerts.jsonl
	@echo
	@$(PY) models/demo_summary.py build/demo-flows.csv build/demo-alerts.jsonl

# NFStream, the peer the benchmark compares with, in a venv of its own.
NFVENV := build/nfvenv
$(NFVENV)/.ok:
	@mkdir -p build
	python3 -m venv $(NFVENV)
	$(NFVENV)/bin/pip install -q nfstream
	@touch $@

bench: deps build $(NFVENV)/.ok
	$(MAKE) --no-print-directory demo-model
	perf/bench.sh

clean-build:
	rm -rf build

# Fuzzing, soak and leak check (issue 9): `make fuzz`, `make soak`, `make leakcheck`; `make test`
# also fuzzes every target for FUZZ_SECONDS.
include appliance/fuzz/fuzz.mk
