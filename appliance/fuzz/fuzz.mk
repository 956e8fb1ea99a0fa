# Fuzzing and soak. Included at the END of the top-level Makefile (it appends to
# APT_PACKAGES and adds `fuzz` to `test`):  include appliance/fuzz/fuzz.mk
#
#   make fuzz        every cargo-fuzz target for FUZZ_SECONDS each (default 60), seeded from the
#                    shared captures; a crash fails the target and leaves its input under
#                    appliance/fuzz/artifacts/TARGET/ (turn it into a regression test)
#   make soak        perf/soak.sh: weir run on a looping capture with flow churn for SOAK_SECONDS
#                    (default 600), VmRSS flat within 5% after warm-up; then a valgrind leak check
#   make leakcheck   only the valgrind run
#
# Needs: a nightly toolchain (`rustup toolchain install nightly`, for -Zsanitizer) and
# cargo-fuzz (`cargo install cargo-fuzz`), both installed here when missing; valgrind (apt).

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := parse flow_table capture config packet_view dns
FUZZ_DIR := appliance/fuzz
SOAK_SECONDS ?= 600
APT_PACKAGES += valgrind

# CI: `make test` also fuzzes every target for FUZZ_SECONDS (at least 60 s each).
test: fuzz

.PHONY: fuzz fuzz-tools fuzz-build fuzz-corpus soak leakcheck $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz-corpus:
	@python3 $(FUZZ_DIR)/seeds.py $(FUZZ_DIR)/corpus

# The plugins are built (release) so the flow_table target can run them on fuzzed packets.
fuzz-build: fuzz-tools apt
	$(CARGO) build --release --workspace
	cd appliance && cargo +nightly fuzz build --fuzz-dir fuzz

# One target after the other (prerequisites run in order without -j).
fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: fuzz-build fuzz-corpus
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/artifacts/$* build
	@echo "fuzz $* for $(FUZZ_SECONDS) s (log: build/fuzz-$*.log)"
	@cd appliance && WEIR_FUZZ_PLUGIN_DIR=$(abspath target/release) \
	    cargo +nightly fuzz run --fuzz-dir fuzz $* fuzz/corpus/$* -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65600 \
	    -print_final_stats=1 >../build/fuzz-$*.log 2>&1; rc=$$?; \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)|ERROR|SUMMARY|panicked' \
	        ../build/fuzz-$*.log; exit $$rc

soak: build apt
	SOAK_SECONDS=$(SOAK_SECONDS) perf/soak.sh target/release/weir
	perf/leakcheck.sh target/release/weir

leakcheck: build apt
	perf/leakcheck.sh target/release/weir
