#!/usr/bin/env bash
# The boot-storm benchmark: N instances boot over T seconds against an IPA
# shaped like IPA (the double with a fixed cost per call and a cost per
# command), with cross-request batching on and off in the same run, with
# one novajoin replica and with two sharing a Redis cache.
#
#   bench/storm.sh                              10,000 instances over 10 s
#   BENCH_STORM_INSTANCES=2000 BENCH_STORM_OVER=2 bench/storm.sh
#   BENCH_STORM_CONFIGS="1:50 1:1" bench/storm.sh   replicas:batch_max pairs
#
# Every instance gets nova's six config-drive POSTs at once and two guest
# reads later; the load generator (bench/storm_load.rs) runs the IPA double
# in its own process, starts the novajoin replicas (release build, noauth
# pipeline, loopback) and checks each instance's answers against IPA.
# IPA cost: BENCH_STORM_CALL_MS (30) per call + BENCH_STORM_ITEM_MS (5) per
# command, at most BENCH_STORM_CAP (16) calls in flight per replica. Needs
# Redis on 127.0.0.1:6379 for the two-replica runs (unique key prefix,
# deleted after). Results: target/bench/storm.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

instances=${BENCH_STORM_INSTANCES:-10000}
over=${BENCH_STORM_OVER:-10}
call_ms=${BENCH_STORM_CALL_MS:-30}
item_ms=${BENCH_STORM_ITEM_MS:-5}
cap=${BENCH_STORM_CAP:-16}
deadline=${BENCH_STORM_QUEUE_DEADLINE:-4}
configs=${BENCH_STORM_CONFIGS:-"1:50 1:1 2:50 2:1"}
target=${CARGO_TARGET_DIR:-$here/target}
work=$target/bench/storm
rm -rf "$work"
mkdir -p "$work"
results=$target/bench/storm.md

if [[ " $configs " == *" 2:"* ]]; then
  redis-cli -h 127.0.0.1 ping >/dev/null || { echo "storm: no Redis on 127.0.0.1:6379" >&2; exit 1; }
fi
cleanup() {
  redis-cli -h 127.0.0.1 --scan --pattern "novajoin-storm:*" 2>/dev/null | xargs -r redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== building release binaries"
cargo build --release --locked --bin novajoin --example storm-load 2>&1 | tail -1

# Each run opens thousands of connections.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

lines=()
for c in $configs; do
  replicas=${c%%:*}
  batch=${c##*:}
  label="r${replicas}-b${batch}"
  echo "== $instances instances over ${over}s, $replicas replica(s), batch_max $batch"
  line=$("$target/release/examples/storm-load" --novajoin "$target/release/novajoin" \
    --work "$work" --label "$label" --instances "$instances" --over "$over" \
    --replicas "$replicas" --cap "$cap" --batch-max "$batch" --queue-deadline "$deadline" \
    --call-cost-ms "$call_ms" --item-cost-ms "$item_ms" | grep '^RESULT') || {
    echo "storm: run $label failed" >&2
    exit 1
  }
  echo "   $line"
  lines+=("$line")
done

{
  echo "Boot storm: $instances instances over ${over} s; IPA double ${call_ms} ms per call + ${item_ms} ms"
  echo "per command, at most $cap calls in flight per replica; [ipa] queue_deadline = $deadline s;"
  echo "6 config-drive POSTs per instance at once + 2 guest reads; nova's 5 s read timeout."
  echo
  echo "| replicas | batch_max | enrolled | IPA calls / instance | p50 ms | p99 ms | max ms | answered after 5 s | shed (503) | duplicate OTPs | OTP not IPA's | last enrolled s | enrollments/s | bound 1 call/instance | bound batched |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for l in "${lines[@]}"; do
    python3 - "$l" <<'EOF'
import sys
kv = dict(p.split("=", 1) for p in sys.argv[1].split()[1:])
print(f"| {kv['replicas']} | {kv['batch_max']} | {kv['enrolled']}/{kv['instances']} | {kv['calls_per_instance']} "
      f"| {kv['p50_ms']} | {kv['p99_ms']} | {kv['max_ms']} | {kv['answered_after_5s']} | {kv['shed']} "
      f"| {kv['duplicate_otps']} | {kv['otp_not_ipas']} | {kv['last_enrolled_s']} | {kv['enroll_rate']} "
      f"| {kv['bound_single']} | {kv['bound_batched']} |")
EOF
  done
} | tee "$results"
echo "== results in $results"
