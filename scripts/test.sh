#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this kind: installs what the
# tests need (Debian packages, the Python venv with the real keystone,
# oslo.policy and oslo.messaging), builds, and runs every test. The tests
# start the real keystone, KDC and Apache themselves (tests/support/), and
# use the RabbitMQ and Redis this machine runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$PWD/target/test-venv}
# A CI clone builds once: incremental state would only take disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

scripts/install-test-deps.sh

# Services this kind of machine runs; start them if a previous run stopped them.
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || \
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
rabbitmqctl -q status >/dev/null 2>&1 || rabbitmq-server -detached
for _ in $(seq 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && break; sleep 1; done
rabbitmqctl -q start_app >/dev/null 2>&1 || true

# Every dependency declared is used (cargo-machete, installed by
# install-test-deps.sh), the code is formatted, and the [lints] table of
# Cargo.toml (clippy, unreachable_pub, missing_docs) holds for every target.
cargo machete
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo build --all-targets --locked
cargo test --all-targets --locked "$@"

# The README's first command on this clone: scripts/demo.sh builds what it
# runs, enrolls one instance, and --check proves the answer's OTP is the one
# the IPA double holds, then stops everything it started.
scripts/demo.sh --check

# Fuzzing (fuzz/run.sh: libFuzzer on the stable toolchain, no cargo-fuzz
# needed): each target for NOVAJOIN_FUZZ_SECONDS (default 60) without a
# crash. The first build of the instrumented targets takes several
# minutes. NOVAJOIN_SKIP_FUZZ=1 skips this step.
if [ -z "${NOVAJOIN_SKIP_FUZZ:-}" ]; then
  fuzz/run.sh "${NOVAJOIN_FUZZ_SECONDS:-60}"
fi
