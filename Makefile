# portcullis: the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo
DATA_DIR ?= ./portcullis-data

.PHONY: run test build lint fmt deps clean ui fuzz

## Build and start the gateway on 127.0.0.1:3080 with its demo node, data kept in ./portcullis-data.
run: deps ui
	$(CARGO) build --release -p portcullis
	./target/release/portcullis start --data-dir $(DATA_DIR) --demo

## The whole test suite: formatting, lints, the web UI's type check, unit, integration and browser tests.
test: deps ui
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd web && npm run check
	$(CARGO) test --workspace
	SMOKE=1 CARGO="$(CARGO)" scripts/fuzz.sh

deps:
	@scripts/install-deps.sh

## Fuzzes every parser in crates/proto for FUZZ_SECONDS each (see docs/security.md);
## `make test` runs each for 10 s. FUZZ_SECONDS=600 for a longer look.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO="$(CARGO)" scripts/fuzz.sh

## The browser UI (web/, Svelte + Vite): installed from the committed lockfile, built into
## web/dist, which the gateway embeds. Rebuilt only when its sources change.
UI_SOURCES := $(shell find web/src web/tests -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/package.json
ui: web/dist/index.html

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

web/dist/index.html: web/node_modules/.package-lock.json $(UI_SOURCES)
	cd web && npm run build
	@touch $@

build: ui
	$(CARGO) build --workspace

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd web && npm run check

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

## Benchmarks side by side with OpenSSH (bench/run; results in bench/results/, see BENCHMARKS.md).
## REPS=5 CONC_N=1000 for the issue's full figures; SMOKE=1 for a tiny run (CI). Needs root.
.PHONY: bench
bench: deps
	CARGO="$(CARGO)" bench/run

## The web terminal next to the SSH path (bench/web-terminal): echo and PTY output of ssh
## direct, ssh via the gateway and the terminal WebSocket in headless Chromium. ~3 min;
## REPS=5 SIZE=64M for a decision, SMOKE=1 for a tiny run (under a minute). Needs root.
## Idle agent tunnels held by one gateway (bench/agents): AGENTS=10000 by default, ~3 min;
## SMOKE=1 for 50. Needs root for the open-files limit.
.PHONY: bench-agents
bench-agents: deps
	CARGO="$(CARGO)" bench/agents

## What CI runs after the tests so the benchmarks cannot rot: every bench at tiny sizes
## (~3 min with the release build). No figure is asserted; a bench that breaks fails.
.PHONY: bench-smoke
bench-smoke: deps ui
	SMOKE=1 WEB=1 CARGO="$(CARGO)" bench/run
	SMOKE=1 CARGO="$(CARGO)" bench/agents

.PHONY: bench-web
bench-web: deps ui
	CARGO="$(CARGO)" bench/web-terminal
