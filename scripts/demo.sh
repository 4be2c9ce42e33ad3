#!/usr/bin/env bash
# DEMO ONLY: runs novajoin on this machine the way a newcomer would try it.
#
# It starts, all on 127.0.0.1:
#   * a real keystone (scripts/keystone-env.sh, sqlite, test users),
#   * the IPA TEST DOUBLE (crate ipa-double: NOT a FreeIPA server; it keeps
#     hosts and OTPs in memory so you can see what novajoin does),
#   * `novajoin server` with the repository's pipeline.toml (authtoken,
#     policy and cache included) and a demo join.conf in target/demo/.
# Then it enrolls one instance with the exact request nova sends, prints the
# answer, and leaves everything running until you press Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export NOVAJOIN_TEST_VENV=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
demo=$here/target/demo
mkdir -p "$demo"
scripts/install-test-deps.sh
cargo build --quiet --bins

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/keystone-env.sh stop "$demo/keystone" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ks_port=$(free_port)
scripts/keystone-env.sh start "$demo/keystone" "$ks_port" fernet
creds=$(ls -d "$here"/target/keystone-template*/credentials.json | head -1)
nova_pw=$(python3 -c "import json,sys; print(json.load(open('$creds'))['users']['nova']['password'])")
novajoin_pw=$(python3 -c "import json,sys; print(json.load(open('$creds'))['users']['novajoin']['password'])")

ipa_port=$(free_port)
IPA_DOUBLE_PASSWORD=demo-ipa-password target/debug/ipa-double --listen "127.0.0.1:$ipa_port" >"$demo/ipa-double.log" 2>&1 &
pids+=($!)

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
password = demo-ipa-password
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
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthcheck" >/dev/null && break; sleep 0.2; done

token=$(curl -fsi -H 'Content-Type: application/json' "http://127.0.0.1:$ks_port/v3/auth/tokens" -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"nova\", \"domain\": {\"id\": \"default\"}, \"password\": \"$nova_pw\"}}}, \"scope\": {\"project\": {\"name\": \"service\", \"domain\": {\"id\": \"default\"}}}}}" | awk 'tolower($1)=="x-subject-token:" {print $2}' | tr -d '\r')

echo
echo "== DEMO: nova asks novajoin for vm1's vendordata (POST /v1/) =="
curl -s -H 'Content-Type: application/json' -H "X-Auth-Token: $token" "http://127.0.0.1:$port/v1/" \
  -d '{"project-id": null, "instance-id": "5b2d9c1e-7a4f-4e8b-9c3d-2f1a0b9e8d7c", "image-id": "", "user-data": null, "hostname": "vm1", "metadata": {"ipa_enroll": "True"}, "boot-roles": "member"}'
echo
echo
echo "novajoin:   http://127.0.0.1:$port  (log: $demo/novajoin.log, config: $demo/join.conf)"
echo "keystone:   http://127.0.0.1:$ks_port/v3"
echo "IPA DOUBLE: http://127.0.0.1:$ipa_port/ipa/json (test double, not FreeIPA)"
echo "Press Ctrl-C to stop everything."
wait
