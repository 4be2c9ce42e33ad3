#!/usr/bin/env bash
# Before/after of two novajoin builds under the same machine state.
#
#   bench/ab.sh OLD_BINARY [NEW_BINARY]   NEW defaults to target/release/novajoin
#   AB_ROUNDS=6 AB_SECONDS=6 bench/ab.sh /tmp/old/novajoin
#
# bench/run.sh measures configurations one after another; on a machine
# whose speed drifts for seconds at a time (docs/PERFORMANCE.md, "Noise")
# a before/after of one change then needs many rounds. Here both builds
# serve the cache-hit path at once, each loaded by its own wrk (-t1 -c32),
# so a slow moment hits both: the build that needs less CPU per request
# answers more of the requests. Prints each round's requests/s and the
# new/old ratio, then the median ratio. Needs what bench/run.sh needs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
old=${1:?usage: bench/ab.sh OLD_BINARY [NEW_BINARY]}
new=${2:-$here/target/release/novajoin}
rounds=${AB_ROUNDS:-6}
seconds=${AB_SECONDS:-6}
export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
work=$here/target/bench-ab
rm -rf "$work"
mkdir -p "$work"
for b in "$old" "$new"; do
  [ -x "$b" ] || { echo "ab: $b is not an executable novajoin build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "ab: wrk is missing (apt-get install wrk)" >&2; exit 1; }
cargo build --release --locked -p ipa-double --bin ipa-double 2>&1 | tail -1

pids=()
# shellcheck source=bench/common.sh
. "$here/bench/common.sh"
trap stop_started EXIT

start_keystone
ipa_pw=ab-secret
start_ipa_double
# One instance per build: both builds share the IPA double, and a host
# belongs to the instance that created it.
for b in old new; do
  python3 - "$work/body-$b.json" "ab-hit-$b" <<'EOF'
import json, sys, uuid
json.dump({"project-id": None, "instance-id": str(uuid.uuid4()), "image-id": None, "user-data": None,
           "hostname": sys.argv[2], "metadata": {"ipa_enroll": "True"}, "boot-roles": "member,reader"},
          open(sys.argv[1], "w"))
EOF
done

# Starts build $2 as $1 with the shipped pipeline and primes its cache;
# sets $port.
start() {
  local dir=$work/$1
  mkdir -p "$dir"
  port=$(free_port)
  cp pipeline.toml "$dir/pipeline.toml"
  write_conf "$dir" "$port" ""
  "$2" server --config-file "$dir/join.conf" 2>"$dir/server.log" &
  pids+=($!)
  for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthcheck" && break
    sleep 0.05
  done
  curl -sf -o /dev/null -H 'Content-Type: application/json' -H "X-Auth-Token: $token" \
    --data-binary @"$work/body-$1.json" "http://127.0.0.1:$port/v1/" \
    || { echo "ab: $1 ($2) did not answer" >&2; cat "$dir/server.log" >&2; exit 1; }
}
start old "$old"
old_port=$port
start new "$new"
new_port=$port

load() { # port output build
  BENCH_BODY_FILE=$work/body-$3.json BENCH_TOKEN=$token \
    wrk -t1 -c32 -d"${seconds}s" -s bench/post.lua "http://127.0.0.1:$1/v1/" >"$2"
}
rps() { sed -n 's/^Requests\/sec: *//p' "$1"; }

echo "== old: $old"
echo "== new: $new"
echo "== both loaded at once, wrk -t1 -c32 -d${seconds}s each, $rounds rounds"
ratios=()
for round in $(seq "$rounds"); do
  load "$old_port" "$work/old.txt" old &
  old_load=$!
  load "$new_port" "$work/new.txt" new
  wait "$old_load"
  ratio=$(python3 -c "print(f'{$(rps "$work/new.txt") / $(rps "$work/old.txt"):.2f}')")
  ratios+=("$ratio")
  printf '   round %s: old %.0f, new %.0f requests/s, new/old %s\n' \
    "$round" "$(rps "$work/old.txt")" "$(rps "$work/new.txt")" "$ratio"
done
python3 -c 'import statistics, sys; print(f"new / old (median of {len(sys.argv) - 1} rounds): {statistics.median(map(float, sys.argv[1:])):.2f}")' "${ratios[@]}"
