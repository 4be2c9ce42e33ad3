#!/usr/bin/env bash
# Where the cache-hit path spends its work: runs the release server under
# valgrind's callgrind, answers nova's repeated request a few thousand
# times, and prints instructions per request for each layer. Instruction
# counts do not depend on what else the machine is doing, so before/after
# comparisons of a change are exact (unlike requests/s).
#
#   bench/profile.sh                 the shipped pipeline.toml
#   bench/profile.sh my-pipeline.toml
#   PROFILE_SECONDS=30 bench/profile.sh
#
# Needs valgrind (apt-get install valgrind) and what bench/run.sh needs.
# The full profile stays in target/profile/callgrind.out for
# callgrind_annotate. Note: SHA-256 runs in software under valgrind (no
# SHA-NI), so hashing is overstated compared with a native run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
pipeline=$(realpath "${1:-pipeline.toml}")
seconds=${PROFILE_SECONDS:-15}
export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
work=$here/target/profile
rm -rf "$work"
mkdir -p "$work"
command -v valgrind >/dev/null || { echo "profile: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "profile: wrk is missing (apt-get install wrk)" >&2; exit 1; }

cargo build --release --locked -p novajoin --bin novajoin 2>&1 | tail -1
cargo build --release --locked -p ipa-double --bin ipa-double 2>&1 | tail -1

pids=()
# shellcheck source=bench/common.sh
. "$here/bench/common.sh"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_keystone
}
trap cleanup EXIT

start_keystone
ipa_pw=profile-secret
start_ipa_double
port=$(free_port)
cp "$pipeline" "$work/pipeline.toml"
write_conf "$work" "$port" ""
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  target/release/novajoin server --config-file "$work/join.conf" 2>"$work/server.log" &
server=$!
pids+=("$server")
for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthcheck" && break; sleep 0.1; done

python3 - "$work/body.json" <<'EOF'
import json, sys, uuid
json.dump({"project-id": None, "instance-id": str(uuid.uuid4()), "image-id": None, "user-data": None,
           "hostname": "profile-hit", "metadata": {"ipa_enroll": "True"}, "boot-roles": "member,reader"},
          open(sys.argv[1], "w"))
EOF
curl -sf -o /dev/null -H 'Content-Type: application/json' -H "X-Auth-Token: $token" \
  --data-binary @"$work/body.json" "http://127.0.0.1:$port/v1/" || { echo "profile: the first request failed" >&2; exit 1; }
BENCH_BODY_FILE=$work/body.json BENCH_TOKEN=$token \
  wrk -t1 -c4 -d"${seconds}s" -s bench/post.lua "http://127.0.0.1:$port/v1/" >"$work/wrk.txt"
kill -TERM "$server"
wait "$server" || true
requests=$(grep -c '"path":"/v1/"' "$work/server.log")

callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null | python3 -c '
import re, sys
requests = int(sys.argv[1])
# (label, function-name prefix, whether the line must be our own source);
# callgrind_annotate lists the largest inclusive cost first, so the first
# match of each is the whole of it.
wanted = [
    ("access log line", "novajoin::logging::access_log::record", True),
    ("http_proxy_to_wsgi and inward", "<novajoin::pipeline::http_proxy_to_wsgi::ProxyHeaders as", True),
    ("authtoken and inward", "<novajoin::pipeline::authtoken::AuthToken as", True),
    ("  token cache lookup", "novajoin::keystone::validator::TokenValidator::validate", True),
    ("  identity headers", "novajoin::pipeline::authtoken::decorate_user", True),
    ("keystonecontext (own work: hands the inner future on)", "<novajoin::pipeline::keystonecontext::KeystoneContext as", True),
    ("  context_is_admin check", "novajoin::pipeline::keystonecontext::context_for", True),
    ("policy (own work: hands the inner future on)", "<novajoin::pipeline::policy::PolicyService as", True),
    ("  policy target (context_dict)", "novajoin::policy::context::context_dict", True),
    ("cache and inward", "<novajoin::pipeline::cache::CacheService as", True),
    ("  cache key (remembered by body bytes)", "novajoin::cache::key_memo::KeyMemo::key", True),
]
rows, total = {}, None
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+?):(.*?)(\s+\[[^\]]*\])?$", line)
    if not m:
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
        continue
    n, file, fn = int(m.group(1).replace(",", "")), m.group(2), m.group(3).strip()
    own = "/.cargo/" not in file and not file.startswith("/rustc/")
    for label, prefix, needs_own in wanted:
        if label not in rows and fn.startswith(prefix) and (own or not needs_own):
            rows[label] = n
print(f"{requests} requests; instructions per request (inclusive of what each calls):")
whole = "whole process"
print(f"  {whole:40} {total / requests:>10,.0f}")
for label, _, _ in wanted:
    if label in rows:
        print(f"  {label:40} {rows[label] / requests:>10,.0f}")
' "$requests"
