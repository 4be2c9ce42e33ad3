#!/usr/bin/env bash
# Builds novajoin's fuzz targets with libFuzzer on the *stable* toolchain
# and runs each for a bounded time. Equivalent to `cargo fuzz run -s none`
# (same instrumentation, same corpus and artifact directories), without
# needing cargo-fuzz or nightly.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 60 s each, every target
#   fuzz/run.sh --build-only
#
# A crash stops the run (exit code 1) and leaves the input in
# fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ so that
# tests/fuzz_regressions.rs replays it in every `cargo test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
all=(vendordata_request policy_rule policy_file notification_envelope)

build_only=false
seconds=60
if [ "${1:-}" = "--build-only" ]; then build_only=true; shift; fi
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes with `-s none`: SanitizerCoverage for libFuzzer's
# feedback (inline 8-bit counters, PC table, comparison tracing) and
# --cfg fuzzing. All stable codegen options. `--target` keeps them off
# build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares ${NOVAJOIN_FUZZ_RUSTFLAGS:-}"
export CARGO_TARGET_DIR=${NOVAJOIN_FUZZ_TARGET_DIR:-$here/target}
cargo build --release --locked --manifest-path "$here/Cargo.toml" --target "$triple" --bins
$build_only && exit 0

for t in "${targets[@]}"; do
  corpus="$here/corpus/$t"
  artifacts="$here/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzzing $t for ${seconds}s"
  # The seeds and saved regressions are read-only inputs; new finds go to
  # the working corpus.
  extra=("$here/seeds/$t")
  [ -d "$here/regressions/$t" ] && extra+=("$here/regressions/$t")
  "$CARGO_TARGET_DIR/$triple/release/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" "${extra[@]}"
done
