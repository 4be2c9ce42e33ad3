#!/usr/bin/env bash
# DEMO ONLY: runs novajoin on this machine the way a newcomer would try it.
#
#   scripts/demo.sh          run the demo, keep everything running until Ctrl-C
#   scripts/demo.sh --check  the same, then check the answer and stop (CI)
#
# It builds what it runs (novajoin and ipa-double), then starts, all on
# 127.0.0.1:
#   * a real keystone (scripts/keystone-env.sh, sqlite, test users),
#   * the IPA TEST DOUBLE (crate ipa-double: NOT a FreeIPA server; it keeps
#     hosts and OTPs in memory so you can see what novajoin does),
#   * `novajoin server` with the repository's pipeline.toml (authtoken,
#     policy and cache included) and a demo join.conf in target/demo/.
# Then it enrolls one instance with the exact request nova sends and prints
# the answer.
#
# --check then proves, as a client of IPA would, that the answer's `ipaotp`
# is the host's one-time password in IPA: logged in with the demo password,
# `host_show` says the host has a password and no keytab; the double's
# test-only `POST /ipa/test/join` (what `ipa-join -w OTP` does) refuses a
# wrong OTP and enrolls the host with the answer's; `host_show` then says
# keytab and no password. It exits 0 only when all of that holds.
#
# Either way, everything it started is stopped when it exits.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

check=
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h | --help)
    sed -n '2,24p' "$0"
    exit 0
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
template=${NOVAJOIN_KEYSTONE_TEMPLATE:-$here/target/keystone-template-v1}
demo=$here/target/demo
mkdir -p "$demo"
scripts/install-test-deps.sh
# --workspace: a plain `cargo build --bins` here builds only novajoin's.
cargo build --quiet --bins --workspace

pids=()
ks_pid=
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/keystone-env.sh stop "$demo/keystone" >/dev/null 2>&1 || true
  if [ -n "$ks_pid" ]; then
    for _ in $(seq 60); do kill -0 "$ks_pid" 2>/dev/null || break; sleep 0.25; done
  fi
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "demo: FAILED: $*" >&2
  echo "demo: logs: $demo/novajoin.log $demo/ipa-double.log $demo/keystone/keystone.log" >&2
  exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Prints the value at a dotted path (e.g. result.result.has_keytab) of the
# JSON document on stdin: strings as they are, other values as JSON, and
# nothing when the document is not JSON or has no such value.
json_get() {
  python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
if v is not None:
    print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

ks_port=$(free_port)
scripts/keystone-env.sh start "$demo/keystone" "$ks_port" fernet
ks_pid=$(cat "$demo/keystone/keystone.pid")
creds=$template/credentials.json
nova_pw=$(python3 -c "import json,sys; print(json.load(open('$creds'))['users']['nova']['password'])")
novajoin_pw=$(python3 -c "import json,sys; print(json.load(open('$creds'))['users']['novajoin']['password'])")

ipa_port=$(free_port)
ipa_password="demo-ipa-password"
IPA_DOUBLE_PASSWORD=$ipa_password target/debug/ipa-double --listen "127.0.0.1:$ipa_port" >"$demo/ipa-double.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q 'ipa-double listening on' "$demo/ipa-double.log" && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "ipa-double exited: $(cat "$demo/ipa-double.log")"
  sleep 0.1
done
grep -q 'ipa-double listening on' "$demo/ipa-double.log" || fail "ipa-double did not start within 10 s"

port=$(free_port)
cat >"$demo/join.conf" <<CONF
# DEMO configuration: the IPA server here is the in-memory test double.
[DEFAULT]
join_listen = 127.0.0.1
join_listen_port = $port
domain = example.test
url = http://127.0.0.1:$ipa_port/ipa/json
api_paste_config = $here/pipeline.toml

[ipa]
auth_method = password
username = admin
password = $ipa_password
server = ipa.example.test
realm = EXAMPLE.TEST

[service_credentials]
auth_type = password
auth_url = http://127.0.0.1:$ks_port/v3
username = nova
password = $nova_pw
project_name = service
user_domain_name = Default
project_domain_name = Default

[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$ks_port
auth_url = http://127.0.0.1:$ks_port/v3
auth_type = password
username = novajoin
password = $novajoin_pw
project_name = service
user_domain_name = Default
project_domain_name = Default
CONF
target/debug/novajoin server --config-file "$demo/join.conf" 2>"$demo/novajoin.log" &
pids+=($!)
ready=
for _ in $(seq 100); do
  if curl -fs "http://127.0.0.1:$port/healthcheck" >/dev/null; then ready=1; break; fi
  kill -0 "${pids[-1]}" 2>/dev/null || fail "novajoin server exited"
  sleep 0.2
done
[ -n "$ready" ] || fail "novajoin server did not answer /healthcheck within 20 s"

token=$(curl -fsi -H 'Content-Type: application/json' "http://127.0.0.1:$ks_port/v3/auth/tokens" -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"nova\", \"domain\": {\"id\": \"default\"}, \"password\": \"$nova_pw\"}}}, \"scope\": {\"project\": {\"name\": \"service\", \"domain\": {\"id\": \"default\"}}}}}" | awk 'tolower($1)=="x-subject-token:" {print $2}' | tr -d '\r') || true
[ -n "$token" ] || fail "keystone gave nova no token"

echo
echo "== DEMO: nova asks novajoin for vm1's vendordata (POST /v1/) =="
reply=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' -H "X-Auth-Token: $token" "http://127.0.0.1:$port/v1/" \
  -d '{"project-id": null, "instance-id": "5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c", "image-id": "", "user-data": null, "hostname": "vm1", "metadata": {"ipa_enroll": "True"}, "boot-roles": "member"}') || true
status=${reply##*$'\n'}
answer=${reply%$'\n'*}
echo "$answer"
echo

if [ -z "$check" ]; then
  echo
  echo "novajoin:   http://127.0.0.1:$port  (log: $demo/novajoin.log, config: $demo/join.conf)"
  echo "keystone:   http://127.0.0.1:$ks_port/v3"
  echo "IPA DOUBLE: http://127.0.0.1:$ipa_port/ipa/json (test double, not FreeIPA)"
  echo "Press Ctrl-C to stop everything."
  wait
  exit 0
fi

# ---- --check: is the answer's OTP the one IPA holds for the host? ----
[ "$status" = 200 ] || fail "novajoin answered HTTP $status: $answer"
otp=$(json_get ipaotp <<<"$answer")
fqdn=$(json_get hostname <<<"$answer")
[ -n "$otp" ] || fail "the answer carries no ipaotp: $answer"
[ -n "$fqdn" ] || fail "the answer carries no hostname: $answer"

ipa=http://127.0.0.1:$ipa_port
referer=https://ipa.example.test/ipa
cookie=$(curl -s -o /dev/null -D - -H "Referer: $referer" --data-urlencode user=admin \
  --data-urlencode "password=$ipa_password" "$ipa/ipa/session/login_password" |
  awk -F'[:;] *' 'tolower($1)=="set-cookie" && $2 ~ /^ipa_session=/ {print $2}' | tr -d '\r') || true
[ -n "$cookie" ] || fail "cannot log in to the IPA double as admin"

# host_show as a client of IPA's JSON-RPC; prints "has_password has_keytab".
host_state() {
  local out err
  out=$(curl -s -H "Referer: $referer" -H 'Content-Type: application/json' -H "Cookie: $cookie" \
    "$ipa/ipa/session/json" \
    -d "{\"method\": \"host_show\", \"params\": [[\"$fqdn\"], {\"version\": \"2.254\"}], \"id\": 0}") || true
  err=$(json_get error <<<"$out")
  [ -z "$err" ] || fail "host_show $fqdn: $err"
  echo "$(json_get result.result.has_password <<<"$out") $(json_get result.result.has_keytab <<<"$out")"
}
# The double's test-only enrollment with an OTP (ipa-join -w OTP); prints
# the HTTP status.
join() {
  curl -s -o "$demo/join.out" -w '%{http_code}' --data-urlencode "fqdn=$fqdn" \
    --data-urlencode "otp=$1" "$ipa/ipa/test/join" || true
}

state=$(host_state)
[ "$state" = "true false" ] ||
  fail "before enrollment IPA should show $fqdn with a password and no keytab; has_password has_keytab: $state"
code=$(join "not-$otp")
[ "$code" = 401 ] || fail "the IPA double accepted a wrong OTP for $fqdn (HTTP $code: $(cat "$demo/join.out"))"
code=$(join "$otp")
[ "$code" = 200 ] || fail "enrolling $fqdn with the answer's ipaotp failed (HTTP $code: $(cat "$demo/join.out"))"
state=$(host_state)
[ "$state" = "false true" ] ||
  fail "after enrollment IPA should show $fqdn with a keytab and no password; has_password has_keytab: $state"

echo "demo --check: OK: novajoin answered an ipaotp for $fqdn; IPA showed the host with a password" \
  "and no keytab, refused a wrong OTP, and enrolled the host with the answer's OTP."
