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
                openjdk-17-jre-headless nfdump tcpdump libndpi-dev libndpi-bin
# (libndpi-dev: the ndpi plugin links it, built only when pkg-config finds it; libndpi-bin: its
# ndpiReader is the oracle of appliance/tests/plugins/ndpi_parity.rs and a peer in perf/e2e.sh.)
# What `make bench` adds: the flow meters perf/e2e.sh compares with, and /usr/bin/time.
BENCH_APT_PACKAGES := time nfdump softflowd argus-server libndpi-bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DATA := appliance/tests/data/nfstream
DEMO_CAPTURE := $(DATA)/pcaps/instagram.pcap
DEMO_MODEL := build/models/demo
CAPTURES := $(sort $(wildcard $(DATA)/pcaps/*))
RECORDS := $(patsubst $(DATA)/pcaps/%,build/records/%.csv,$(CAPTURES))
# The ndpi plugin, when the build made it (libndpi present): the demo then trains on its labels.
NDPI_PLUGIN := target/release/libweir_ndpi.so

.PHONY: help deps apt apt-bench venv build demo demo-model explore records test test-rust test-python lint fmt bench clean-build install deb

help:
	@echo "make demo   install what is missing, build, extract and score the flows of a bundled capture"
	@echo "make test   install what is missing and run the whole test suite"
	@echo "make lint   cargo fmt --check and cargo clippy -D warnings"
	@echo "make bench  the performance harness (perf/bench.sh), see perf/RESULTS.md"
	@echo "make install [PREFIX=/usr/local] [DESTDIR=]  install weir, its plugins, header, units, docs"
	@echo "make deb    a Debian package (build/weir_VERSION_ARCH.deb) with the files of PREFIX=/usr"

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
build/records/%.csv: $(DATA)/pcaps/% $(wildcard $(NDPI_PLUGIN)) | build
	@mkdir -p build/records
	@target/release/weir extract $< --out $@ --quiet --no-progress

# The demo model: a RandomForest trained on weir's records of the bundled captures, labelled with
# nDPI's application category: from weir's own records when the ndpi plugin is built (its
# application_category_name column), else from NFStream's records (joined on the flow key).
demo-model: $(DEMO_MODEL)/model.json
$(DEMO_MODEL)/model.json: $(STAMP)/venv models/train.py models/weir_records.py models/weir_export.py \
                          $(wildcard $(NDPI_PLUGIN)) | build
	$(MAKE) --no-print-directory records
	@if [ -f $(NDPI_PLUGIN) ]; then \
	  echo "demo model: labels from weir's own records (the ndpi plugin's application_category_name)"; \
	  labels=""; \
	else \
	  echo "demo model: the ndpi plugin is not built (no libndpi); labels from NFStream's records"; \
	  labels="--labels $(DATA)/expected"; \
	fi; \
	$(PY) models/train.py build/records $$labels \
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
	@$(PY) models/demo_summary.py build/demo-flows.csv build/demo-alerts.jsonl $(DEMO_MODEL)

# NFStream, the peer the benchmark compares with, in a venv of its own.
NFVENV := build/nfvenv
$(NFVENV)/.ok:
	@mkdir -p build
	python3 -m venv $(NFVENV)
	$(NFVENV)/bin/pip install -q nfstream
	@touch $@

# The peers' packages, installed only when missing (dpkg -s is the check), as `apt` does.
apt-bench: $(STAMP)/apt-bench
$(STAMP)/apt-bench: Makefile
	@mkdir -p $(STAMP)
	@missing=""; for p in $(BENCH_APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# perf/bench.sh (weir run against testpmd and NFStream), then perf/e2e.sh (weir extract against
# nfpcapd, softflowd, argus, ndpiReader and NFStream end to end, and `weir cost` on a 200 k-flow
# and a 10 k-flow trace). BENCH_RUNS sets the rounds of each.
BENCH_RUNS ?= 3
bench: deps apt-bench build $(NFVENV)/.ok
	$(MAKE) --no-print-directory demo-model
	perf/bench.sh --runs $(BENCH_RUNS)
	perf/e2e.sh --runs $(BENCH_RUNS)

clean-build:
	rm -rf build

# ---- install and package ----------------------------------------------------------------------
# `make install` builds (unless SKIP_BUILD=1) and copies: bin/weir, the shipped plugins in
# lib/weir/plugins (where PREFIX/bin/weir finds them with no flags), include/weir/weir_plugin.h,
# the systemd unit, the example configs and docs in share/doc/weir, shell completions (bash, zsh,
# fish) and man pages generated from the binary (`weir completions`, `weir man`).
PREFIX ?= /usr/local
DESTDIR ?=
WEIR_BIN ?= target/release/weir
PLUGIN_BUILD_DIR ?= $(dir $(WEIR_BIN))
SHIPPED_PLUGINS := flowstats splt tcp entropy
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
DEB_ARCH = $(shell dpkg --print-architecture)
DEB_OUT ?= build
ROOT := $(DESTDIR)$(PREFIX)

install:
	@[ "$(SKIP_BUILD)" = 1 ] || $(MAKE) --no-print-directory build
	install -D -m 0755 $(WEIR_BIN) $(ROOT)/bin/weir
	for p in $(SHIPPED_PLUGINS); do \
	  install -D -m 0644 $(PLUGIN_BUILD_DIR)libweir_$$p.so $(ROOT)/lib/weir/plugins/libweir_$$p.so || exit 1; done
	# The ndpi plugin exists only when the build found libndpi (it says so otherwise).
	if [ -f $(PLUGIN_BUILD_DIR)libweir_ndpi.so ]; then \
	  install -D -m 0644 $(PLUGIN_BUILD_DIR)libweir_ndpi.so $(ROOT)/lib/weir/plugins/libweir_ndpi.so; \
	else echo "ndpi plugin not built (libndpi-dev missing): not installed"; fi
	install -D -m 0644 plugin-api/include/weir_plugin.h $(ROOT)/include/weir/weir_plugin.h
	install -d $(ROOT)/lib/systemd/system
	sed -e 's#/usr/bin/weir#$(PREFIX)/bin/weir#g' -e 's#/usr/share/doc/weir#$(PREFIX)/share/doc/weir#g' \
	    deploy/systemd/weir.service > $(ROOT)/lib/systemd/system/weir.service
	chmod 0644 $(ROOT)/lib/systemd/system/weir.service
	install -D -m 0644 -t $(ROOT)/share/doc/weir/examples deploy/examples/*.toml
	install -D -m 0644 README.md $(ROOT)/share/doc/weir/README.md
	install -D -m 0644 deploy/docs/config.md $(ROOT)/share/doc/weir/config.md
	install -D -m 0644 deploy/README.md $(ROOT)/share/doc/weir/deploy.md
	install -D -m 0755 deploy/scripts/setup-host.sh $(ROOT)/share/weir/setup-host.sh
	mkdir -p $(ROOT)/share/bash-completion/completions $(ROOT)/share/zsh/vendor-completions \
	    $(ROOT)/share/fish/vendor_completions.d $(ROOT)/share/man/man1
	$(WEIR_BIN) completions bash > $(ROOT)/share/bash-completion/completions/weir
	$(WEIR_BIN) completions zsh > $(ROOT)/share/zsh/vendor-completions/_weir
	$(WEIR_BIN) completions fish > $(ROOT)/share/fish/vendor_completions.d/weir.fish
	$(WEIR_BIN) man $(ROOT)/share/man/man1
	gzip -n -9 -f $(ROOT)/share/man/man1/*.1

# The package holds exactly what `make install PREFIX=/usr` installs; its weir finds its
# plugins in /usr/lib/weir/plugins with no flags.
deb:
	@[ "$(SKIP_BUILD)" = 1 ] || $(MAKE) --no-print-directory build
	rm -rf $(DEB_OUT)/deb-root && mkdir -p $(DEB_OUT)/deb-root/DEBIAN
	$(MAKE) --no-print-directory install SKIP_BUILD=1 PREFIX=/usr DESTDIR=$(abspath $(DEB_OUT)/deb-root)
	{ echo "Package: weir"; echo "Version: $(VERSION)"; echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: weir developers <weir@localhost>"; echo "Section: net"; echo "Priority: optional"; \
	  if [ -f $(DEB_OUT)/deb-root/usr/lib/weir/plugins/libweir_ndpi.so ]; then \
	    echo "Depends: dpdk (>= 22.11), $$(dpkg -S $$(readlink -f $$(pkg-config --variable=libdir libndpi)/libndpi.so) | cut -d: -f1)"; \
	  else echo "Depends: dpdk (>= 22.11)"; fi; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_OUT)/deb-root | cut -f1)"; \
	  echo "Description: DPDK network traffic analysis appliance"; \
	  echo " Flow records, plugins, scoring and alerts from live ports or captures."; \
	} > $(DEB_OUT)/deb-root/DEBIAN/control
	dpkg-deb --root-owner-group -Zgzip --build $(DEB_OUT)/deb-root $(DEB_OUT)/weir_$(VERSION)_$(DEB_ARCH).deb

# Fuzzing, soak and leak check: `make fuzz`, `make soak`, `make leakcheck`; `make test`
# also fuzzes every target for FUZZ_SECONDS.
include appliance/fuzz/fuzz.mk
