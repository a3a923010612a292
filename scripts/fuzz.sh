#!/usr/bin/env bash
# Fuzzes the parsers in crates/proto with libFuzzer on the stable toolchain (no cargo-fuzz,
# no nightly, no sanitizer): builds fuzz/ with coverage instrumentation, then runs each
# target for FUZZ_SECONDS (default 60) from its committed seeds in fuzz/corpus/<target>.
#
# Usage: scripts/fuzz.sh [TARGET...]     (default: every target in fuzz/Cargo.toml)
#   FUZZ_SECONDS=600 scripts/fuzz.sh sftp   a longer run of one target
#   SMOKE=1 scripts/fuzz.sh                 10 s each, as `make test` runs it
#   scripts/fuzz.sh config                  the gateway's config loader (builds the whole gateway;
#                                           FUZZ_CONFIG=1 adds it to the default list)
#
# Inputs the fuzzer finds interesting go to fuzz/target/corpus/<target> (kept between runs,
# not committed). A crash stops that target, is saved under fuzz/artifacts/<target>/, and
# makes the script exit non-zero after the other targets ran; the input's path and bytes are
# printed. docs/security.md says how to turn one into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
if [ "${SMOKE:-0}" = 1 ]; then
  seconds=${FUZZ_SECONDS:-10}
else
  seconds=${FUZZ_SECONDS:-60}
fi

# What `cargo fuzz build -s none` passes: edge coverage with inline 8-bit counters, a PC
# table and comparison tracing for libFuzzer, stack depth, `cfg(fuzzing)`; plus debug
# assertions and overflow checks (fuzz/Cargo.toml's release profile).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
# An explicit --target keeps these flags off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^portcullis-fuzz$\|^config$')
  [ "${FUZZ_CONFIG:-0}" = 1 ] && targets+=(config)
fi
# The config target needs the gateway crate, behind the `config` feature.
features=()
for target in "${targets[@]}"; do
  [ "$target" = config ] && features=(--features config)
done

# Its own target dir whatever the caller's CARGO_TARGET_DIR: the instrumented build must
# neither land elsewhere nor invalidate the main build's cache.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
start=$SECONDS
(cd fuzz && $CARGO build --release --target "$host" "${features[@]}" --bins)
echo "fuzz: built in $((SECONDS - start)) s; ${#targets[@]} targets, ${seconds} s each"

bin=fuzz/target/$host/release
failed=()
for target in "${targets[@]}"; do
  [ -x "$bin/$target" ] || { echo "fuzz: no target $target (see fuzz/Cargo.toml)" >&2; exit 2; }
  work=fuzz/target/corpus/$target
  artifacts=fuzz/artifacts/$target
  log=fuzz/target/logs/$target.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")" "fuzz/corpus/$target"
  # New inputs go to the first directory; the committed seeds are only read.
  if "$bin/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$target" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz: $target ok: ${runs:-?} runs in ${seconds} s, ${cov:-cov: ?}"
  else
    failed+=("$target")
    echo "fuzz: $target FAILED (whole log: $log):" >&2
    { grep -A6 'panicked at' "$log" | head -20; grep 'ERROR: libFuzzer\|^SUMMARY' "$log"; } >&2
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ -n "$crash" ]; then
      echo "fuzz: crashing input: $crash ($(wc -c <"$crash") bytes); reproduce: $bin/$target $crash" >&2
      od -An -c "$crash" | head -20 >&2
    fi
  fi
done

echo "fuzz: $((SECONDS - start)) s in all${failed[*]:+; crashes in ${failed[*]}}"
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
