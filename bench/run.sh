#!/usr/bin/env bash
# novajoin's benchmark: one command, every figure a ratio measured in the
# same run on this machine (client and servers share its cores, so only
# same-run comparisons mean anything).
#
#   bench/run.sh                 everything (about 5 minutes after the build)
#   BENCH_DURATION=5 bench/run.sh   shorter wrk runs (default 10 s each)
#   BENCH_ROUNDS=5 bench/run.sh     more interleaved rounds (default 3; medians)
#   BENCH_SKIP_BURST=1 bench/run.sh skip the full-size burst test
#   BENCH_QUICK=1 bench/run.sh      only the request/s table (no RSS, start-up, burst)
#   BENCH_PERF=1 bench/run.sh       also record a perf profile of each server
#   BENCH_BASELINE=/tmp/old/novajoin bench/run.sh
#                                   also measure another build (before/after)
#
# It builds release binaries, starts on loopback a real keystone
# (scripts/keystone-env.sh), the IPA double (`ipa-double`), the bare hyper
# baseline (`bare-hyper`) and novajoin servers in several configurations,
# uses the Redis on 127.0.0.1:6379 (unique key prefix, deleted after), runs
# wrk (Debian package) and prints a table. Results also go to
# target/bench/results.md. Every process it starts is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

duration=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-3}
connections=64
threads=2
rss_instances=${BENCH_RSS_INSTANCES:-100000}
export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
work=$here/target/bench
rm -rf "$work"
mkdir -p "$work"
results=$work/results.md

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need wrk "apt-get install wrk, or scripts/install-test-deps.sh"
need curl "apt-get install curl"
need redis-cli "apt-get install redis-server"
redis-cli -h 127.0.0.1 ping >/dev/null || { echo "bench: no Redis on 127.0.0.1:6379" >&2; exit 1; }

pids=()
# shellcheck source=bench/common.sh
. "$here/bench/common.sh"
cleanup() {
  stop_started
  if [ -n "${redis_prefix:-}" ]; then
    redis-cli -h 127.0.0.1 --scan --pattern "${redis_prefix}*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null || true
  fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# ---- build ----
echo "== building release binaries"
# `cargo test --release --no-run` builds target/release/novajoin with the
# same features as the burst test that runs against it below.
cargo test --release --locked --test burst --no-run 2>&1 | tail -1
cargo build --release --locked -p ipa-double --bin ipa-double --example bare-hyper 2>&1 | tail -1
novajoin=$here/target/release/novajoin
bare=$here/target/release/examples/bare-hyper

# ---- the parts around novajoin ----
echo "== starting keystone, the IPA double"
start_keystone
ipa_pw=bench-secret
start_ipa_double

redis_prefix="novajoin-bench:$$:"

noauth_pipeline() { sed 's/filters = \["authtoken", "keystonecontext", "policy", "cache"\]/filters = ["noauth", "policy", "cache"]/' pipeline.toml; }

# Starts novajoin: $1 name, $2 pipeline text, $3 extra join.conf sections.
# Sets $port, $pid and $ready_s (seconds from exec to the first 200 on
# /healthcheck).
start_novajoin() {
  local dir=$work/$1
  mkdir -p "$dir"
  port=$(free_port)
  printf '%s\n' "$2" >"$dir/pipeline.toml"
  write_conf "$dir" "$port" "$3"
  local t0; t0=$(now)
  "${server_binary:-$novajoin}" server --config-file "$dir/join.conf" 2>"$dir/server.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 3000); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/healthcheck"; then
      ready_s=$(python3 -c "print($(now) - $t0)")
      return
    fi
    kill -0 "$pid" 2>/dev/null || { echo "bench: novajoin ($1) exited" >&2; cat "$dir/server.log" >&2; exit 1; }
    sleep 0.005
  done
  echo "bench: novajoin ($1) not ready" >&2
  exit 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

body_file=$work/body.json
python3 - "$body_file" <<'EOF'
import json, sys, uuid
body = {"project-id": None, "instance-id": str(uuid.uuid4()), "image-id": None, "user-data": None,
        "hostname": "bench-hit", "metadata": {"ipa_enroll": "True"}, "boot-roles": "member,reader"}
open(sys.argv[1], "w").write(json.dumps(body))
EOF

# wrk on $1 (URL) with token $2; prints "rps p50_ms p99_ms non2xx".
# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# Prints: requests/s, p50 ms, p99 ms, non-2xx, server CPU us/request,
# client (wrk) CPU us/request. $1 URL, $2 token, $3 server pid.
run_wrk() {
  local out=$work/wrk-$RANDOM.txt server_before server_after client
  server_before=$(cpu_seconds "$3")
  client=$( { TIMEFORMAT='%U %S'; time BENCH_BODY_FILE=$body_file BENCH_TOKEN=$2 \
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s bench/post.lua "$1" >"$out"; } 2>&1 )
  server_after=$(cpu_seconds "$3")
  python3 - "$out" "$server_before" "$server_after" "$client" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
server_cpu = float(sys.argv[3]) - float(sys.argv[2])
client_cpu = sum(float(x) for x in sys.argv[4].split())
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
# The latency distribution lines ("     50%    2.72ms"), not the
# percentage that ends a "Req/Sec" line.
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: (.*)", t)
requests = int(re.search(r"(\d+) requests in", t).group(1))
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {bad.group(1) if bad else 0}{'+socket-errors:' + errs.group(1).replace(' ', '') if errs else ''}"
      f" {server_cpu * 1e6 / requests:.1f} {client_cpu * 1e6 / requests:.1f}")
EOF
}

# First request: enrolls; its answer is what the cache then serves.
prime() {
  local code
  code=$(curl -s -o "$work/$1.answer" -D "$work/$1.headers" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H 'Accept: application/json' ${2:+-H "X-Auth-Token: $2"} \
    --data-binary @"$body_file" "http://127.0.0.1:$port/v1/")
  [ "$code" = 200 ] || { echo "bench: priming $1 got $code: $(cat "$work/$1.answer")" >&2; exit 1; }
}

# Results per configuration and round ("full/2"), then the medians ("full").
declare -A rps p50 p99 bad scpu ccpu server_pid server_port server_token
measure() { # name round
  local name=$1 round=$2 perf_pid=
  if [ -n "${BENCH_PERF:-}" ] && [ "$name" != bare ] && [ "$round" = 1 ]; then
    # A CPU profile of the server under load (software clock: no hardware
    # counters needed): perf report -i target/bench/perf-NAME.data
    perf record -q -F 499 -g -e cpu-clock -p "${server_pid[$name]}" -o "$work/perf-$name.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local k=$name/$round
  read -r "rps[$k]" "p50[$k]" "p99[$k]" "bad[$k]" "scpu[$k]" "ccpu[$k]" < <(run_wrk \
    "http://127.0.0.1:${server_port[$name]}/v1/" "${server_token[$name]}" "${server_pid[$name]}")
  [ -z "$perf_pid" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  echo "   round $round, $name: ${rps[$k]} req/s, p50 ${p50[$k]} ms, p99 ${p99[$k]} ms, non-2xx ${bad[$k]}, CPU per request: server ${scpu[$k]} us, wrk ${ccpu[$k]} us"
}

# Remembers the server just started (start_novajoin's $pid, $port) as $1.
keep_server() { server_pid[$1]=$pid; server_port[$1]=$port; server_token[$1]=$2; }

echo "== cache-hit path, $connections connections, ${duration}s each, $rounds rounds"
start_novajoin full "$(cat pipeline.toml)" ""
prime full "$token"
keep_server full "$token"

start_novajoin noauth "$(noauth_pipeline)" ""
prime noauth ""
keep_server noauth ""

start_novajoin redis "$(cat pipeline.toml)" "[cache]
backend = redis
redis_url = redis://127.0.0.1:6379
secret_key = $(python3 -c 'import secrets; print(secrets.token_hex(32))')
key_prefix = $redis_prefix"
prime redis "$token"
keep_server redis "$token"

# Another build of novajoin (BENCH_BASELINE=path/to/novajoin) in the same
# rounds, for a before/after of a change.
configs=(bare full noauth redis)
if [ -n "${BENCH_BASELINE:-}" ]; then
  server_binary=$BENCH_BASELINE start_novajoin baseline "$(cat pipeline.toml)" ""
  prime baseline "$token"
  keep_server baseline "$token"
  configs+=(baseline)
fi

# The bare server answers the bytes novajoin answered (body and headers).
ctype=$(tr -d '\r' <"$work/full.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: //p')
rid=$(tr -d '\r' <"$work/full.headers" | sed -n 's/^[Xx]-[Oo]pen[Ss]tack-[Rr]equest-[Ii]d: //p')
port=$(free_port)
"$bare" --listen "127.0.0.1:$port" --body-file "$work/full.answer" \
  --header "content-type: $ctype" --header "x-openstack-request-id: $rid" >"$work/bare.out" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do grep -q listening "$work/bare.out" && break; sleep 0.05; done
keep_server bare ""

# Interleaved rounds: a disturbance of the machine hits one round of every
# configuration rather than all rounds of one.
for round in $(seq "$rounds"); do
  for name in "${configs[@]}"; do measure "$name" "$round"; done
done
for name in "${configs[@]}"; do stop_pid "${server_pid[$name]}"; done

# Medians over the rounds (non-2xx: the sum).
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[2:])):.{sys.argv[1]}f}")' "$@"; }
for name in "${configs[@]}"; do
  for field in rps p50 p99 scpu ccpu bad; do
    declare -n table=$field
    values=()
    for round in $(seq "$rounds"); do values+=("${table[$name/$round]%%+*}"); done
    case $field in
      rps) table["$name"]=$(median 0 "${values[@]}");;
      p50|p99) table["$name"]=$(median 3 "${values[@]}");;
      scpu|ccpu) table["$name"]=$(median 1 "${values[@]}");;
      bad) table["$name"]=$(python3 -c 'import sys; print(sum(map(int, sys.argv[1:])))' "${values[@]}");;
    esac
    unset -n table
  done
done

# Median of the same-round ratios a/b, then each round's.
ratio() {
  local r per=()
  for r in $(seq "$rounds"); do per+=("$(python3 -c "print(f'{${rps[$1/$r]} / ${rps[$2/$r]}:.2f}')")"); done
  echo "$(median 2 "${per[@]}") (rounds: ${per[*]})"
}
rates_table() {
  echo "Medians of $rounds interleaved rounds."
  echo
  echo "| configuration | requests/s | p50 ms | p99 ms | non-2xx | server CPU µs/request | wrk CPU µs/request |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for k in "${configs[@]}"; do
    case $k in
      baseline) label="novajoin, full pipeline, memory cache, baseline build ($BENCH_BASELINE)";;
      bare) label="bare hyper, same bytes";;
      full) label="novajoin, full pipeline, memory cache (cache hit)";;
      noauth) label="novajoin, authtoken off (noauth), memory cache";;
      redis) label="novajoin, full pipeline, Redis cache";;
    esac
    echo "| $label | ${rps[$k]} | ${p50[$k]} | ${p99[$k]} | ${bad[$k]} | ${scpu[$k]} | ${ccpu[$k]} |"
  done
  echo
  echo "| ratio | value |"
  echo "|---|---:|"
  echo "| full pipeline / bare hyper (requests/s; goal >= 0.50) | $(ratio full bare) |"
  echo "| authtoken on / off (requests/s) | $(ratio full noauth) |"
  echo "| Redis cache / memory cache (requests/s) | $(ratio redis full) |"
  echo "| full pipeline p99 (ms; goal < 5) | ${p99[full]} |"
  if [ -n "${BENCH_BASELINE:-}" ]; then
    echo "| this build / baseline build, full pipeline (requests/s) | $(ratio full baseline) |"
  fi
}
if [ -n "${BENCH_QUICK:-}" ]; then
  rates_table | tee "$results"
  exit 0
fi

echo "== start-up time to ready (5 starts, full pipeline)"
starts=()
for i in 1 2 3 4 5; do
  start_novajoin "start$i" "$(cat pipeline.toml)" ""
  starts+=("$ready_s")
  stop_pid "$pid"
done
startup_ms=$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:]))*1000:.0f}')" "${starts[@]}")
echo "   median ${startup_ms} ms (${starts[*]} s)"

echo "== RSS idle and after $rss_instances cached instances"
start_novajoin rss "$(cat pipeline.toml)" "[cache]
ttl = 3600
capacity = $((rss_instances * 2))"
sleep 1
rss_idle=$(rss_kb "$pid")
prime rss "$token"
loaded=0
run=0
load_started=$(now)
while [ "$loaded" -lt "$rss_instances" ]; do
  run=$((run + 1))
  out=$work/enroll-$run.txt
  BENCH_TOKEN=$token BENCH_RUN=$run wrk -t"$threads" -c"$connections" -d5s -s bench/enroll.lua \
    "http://127.0.0.1:$port/v1/" >"$out"
  n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
  nb=$(sed -n 's/^ *Non-2xx or 3xx responses: \([0-9]*\)/\1/p' "$out")
  [ -z "$nb" ] || { echo "bench: $nb enrollments failed:" >&2; cat "$out" >&2; exit 1; }
  loaded=$((loaded + n))
  [ "$run" -lt 200 ] || { echo "bench: loading is too slow" >&2; exit 1; }
done
load_s=$(python3 -c "print(f'{$(now) - $load_started:.1f}')")
sleep 1
rss_loaded=$(rss_kb "$pid")
echo "   idle ${rss_idle} kB; after $loaded enrollments (${load_s}s): ${rss_loaded} kB"
stop_pid "$pid"

burst_line="(skipped: BENCH_SKIP_BURST)"
if [ -z "${BENCH_SKIP_BURST:-}" ]; then
  echo "== burst at full size (5,000 instances x 5 polls, cap 16, IPA latency 50 ms)"
  NOVAJOIN_BURST_INSTANCES=5000 NOVAJOIN_BURST_CAP=16 \
    cargo test --release --locked --test burst -- --nocapture >"$work/burst.txt" 2>&1 \
    || { cat "$work/burst.txt" >&2; echo "bench: the full-size burst test failed" >&2; exit 1; }
  burst_line=$(sed -n 's/^burst: //p' "$work/burst.txt")
  echo "   $burst_line"
fi

{
  echo "## novajoin benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$threads -c$connections -d${duration}s)"
  echo
  rates_table
  echo
  echo "| resource | value |"
  echo "|---|---:|"
  echo "| RSS idle (full pipeline) | $((rss_idle / 1024)) MiB |"
  echo "| RSS after $loaded cached instances | $((rss_loaded / 1024)) MiB |"
  echo "| RSS per cached instance | $(python3 -c "print(f'{($rss_loaded - $rss_idle) * 1024 / $loaded:.0f}')") bytes |"
  echo "| enrollment rate while loading (IPA double, no latency) | $(python3 -c "print(f'{$loaded / $load_s:.0f}')") /s |"
  echo "| start-up time to ready (median of 5) | ${startup_ms} ms |"
  echo
  echo "burst: $burst_line"
} | tee "$results"
