# The two set-up commands of the README: `make run` (the main job on generated data under a
# local mpirun) and `make test` (the whole test suite). Both install what they need first.

SHELL := /bin/bash
# OpenMPI (the system's default mpicc/mpirun) and MPICH (only by its explicit names
# mpicc.mpich/mpiexec.mpich, so the default alternatives stay OpenMPI's). chromium: the
# headless browser tests/history.rs renders `ember history` reports in.
APT_PACKAGES := libopenmpi-dev openmpi-bin libmpich-dev mpich libclang-dev libhwloc-dev pkg-config iproute2 chromium
RANKS ?= 3
# OpenMPI refuses to run as root without these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

## MPI=openmpi or MPI=mpich: the MPI to build and run with. `make build`/`make run` use
## OpenMPI unless told; `make test` runs the suite under both unless told.
MPI ?=
RUN_MPI := $(or $(MPI),openmpi)
TEST_MPIS := $(or $(MPI),openmpi mpich)
# Per MPI: its own target directory (mpi-sys does not rebuild when the MPI changes), how
# to find it (`env` arguments; build-probe-mpi reads MPI_PKG_CONFIG before MPICC, so clear
# it), its launcher.
TARGET_openmpi := target
BUILD_ENV_openmpi :=
MPIRUN_openmpi := mpirun --oversubscribe --bind-to none
TARGET_mpich := target/mpich
BUILD_ENV_mpich := -u MPI_PKG_CONFIG MPICC=mpicc.mpich
MPIRUN_mpich := mpiexec.mpich
ifeq ($(TARGET_$(RUN_MPI)),)
$(error MPI=$(MPI): one of openmpi, mpich)
endif
MPIRUN := $(MPIRUN_$(RUN_MPI))

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
	env $(BUILD_ENV_$(RUN_MPI)) CARGO_TARGET_DIR=$(TARGET_$(RUN_MPI)) cargo build --release --bins

## The main job, WordCount, on built-in generated text under a local mpirun with $(RANKS)
## ranks (rank 0 the driver, the others executors).
run: build
	$(MPIRUN) -n $(RANKS) $(TARGET_$(RUN_MPI))/release/wordcount --generate-lines 1000000

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

## Everything CI checks: formatting, lints, unit and doc tests, mpirun integration tests,
## the tests under each MPI of $(TEST_MPIS) in turn (EMBER_MPI tells the tests which
## launcher to use), each timed. A suite that cannot run here (only Slurm: when its packages
## cannot be installed, or under MPICH) says why in $(SKIPPED); the last line printed is
## always `skipped suites: ...`, each with the MPI it was skipped under. Fails when a test
## fails under either MPI; then the lines before name each failed test and its panic
## (.ci/failures.awk over target/test-MPI.log), so that a log's tail says what failed.
SKIPPED := $(CURDIR)/target/ember-skipped.txt
export EMBER_SKIPPED_FILE := $(SKIPPED)
test: lint
	@mkdir -p $(dir $(SKIPPED)) && : > $(SKIPPED)
	@status=0; times=""; failed=""; \
	for mpi in $(TEST_MPIS); do \
	  case $$mpi in \
	    openmpi) build_env="$(BUILD_ENV_openmpi)"; target=$(TARGET_openmpi) ;; \
	    mpich) build_env="$(BUILD_ENV_mpich)"; target=$(TARGET_mpich) ;; \
	  esac; \
	  echo "=== test suite under $$mpi (CARGO_TARGET_DIR=$$target)"; \
	  start=$$(date +%s); \
	  log=$(dir $(SKIPPED))test-$$mpi.log; \
	  env $$build_env EMBER_MPI=$$mpi CARGO_TARGET_DIR=$$target cargo test --release --no-fail-fast \
	    2>&1 | tee $$log; \
	  [ "$${PIPESTATUS[0]}" -eq 0 ] || { status=1; failed="$$failed $$log"; }; \
	  times="$$times $$mpi $$(( $$(date +%s) - start )) s;"; \
	done; \
	for log in $$failed; do \
	  awk -v mpi=$$(basename $$log .log | sed 's/^test-//') -f .ci/failures.awk $$log; \
	done; \
	echo "suite times:$$times"; \
	if [ -s $(SKIPPED) ]; then \
	  awk '{ i = index($$0, ": "); printf "%s%s (%s)", (NR > 1 ? ", " : "skipped suites: "), \
	    substr($$0, 1, i - 1), substr($$0, i + 2) } END { print "" }' $(SKIPPED); \
	else \
	  echo "skipped suites: none"; \
	fi; \
	exit $$status
