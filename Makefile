# The two set-up commands of the README: `make run` (the main job on generated data under a
# local mpirun) and `make test` (the whole test suite). Both install what they need first.

SHELL := /bin/bash
APT_PACKAGES := libopenmpi-dev openmpi-bin libclang-dev libhwloc-dev pkg-config iproute2
RANKS ?= 3
# OpenMPI refuses to run as root without these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
MPIRUN := mpirun --oversubscribe --bind-to none

.PHONY: deps build run test lint

## Install the Debian packages ember builds against, if any is missing.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

build: deps
	cargo build --release --bins

## The main job, WordCount, on built-in generated text under a local mpirun with $(RANKS)
## ranks (rank 0 the driver, the others executors).
run: build
	$(MPIRUN) -n $(RANKS) target/release/wordcount --generate-lines 1000000

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

## Everything CI checks: formatting, lints, unit and doc tests, mpirun integration tests.
## A suite that cannot run here (only Slurm, when its packages cannot be installed) says why
## in $(SKIPPED); the last line printed is always `skipped suites: ...`. Fails when a test
## fails.
SKIPPED := $(CURDIR)/target/ember-skipped.txt
export EMBER_SKIPPED_FILE := $(SKIPPED)
test: lint
	@mkdir -p $(dir $(SKIPPED)) && : > $(SKIPPED)
	@status=0; cargo test --release || status=$$?; \
	if [ -s $(SKIPPED) ]; then \
	  awk '{ i = index($$0, ": "); printf "%s%s (%s)", (NR > 1 ? ", " : "skipped suites: "), \
	    substr($$0, 1, i - 1), substr($$0, i + 2) } END { print "" }' $(SKIPPED); \
	else \
	  echo "skipped suites: none"; \
	fi; \
	exit $$status
