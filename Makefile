# portcullis: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo
DATA_DIR ?= ./portcullis-data

.PHONY: run test build lint fmt deps clean

## Build and start the gateway on 127.0.0.1:3080 with its demo node, data kept in ./portcullis-data.
run: deps
	$(CARGO) build --release -p portcullis
	./target/release/portcullis start --data-dir $(DATA_DIR) --demo

## The whole test suite: formatting, lints, unit and integration tests.
test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --workspace

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

## Benchmarks side by side with OpenSSH (bench/run; results in bench/results/, see BENCHMARKS.md).
## REPS=5 CONC_N=1000 for the issue's full figures; SMOKE=1 for a tiny run (CI). Needs root.
.PHONY: bench
bench: deps
	CARGO="$(CARGO)" bench/run
