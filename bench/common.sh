# shellcheck shell=bash
# shellcheck disable=SC2154  # $here, $work and $ipa_pw are the caller's.
# Shared by bench/run.sh and bench/profile.sh (sourced, not run): the parts
# around novajoin on loopback. Expects $here (the repository), $work (a
# scratch directory) and the array pids (processes to stop on exit).

# Stops the processes the caller started (the array pids) and keystone.
stop_started() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  stop_keystone
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A real keystone from the test template; sets $ks (its URL), $nova_pw,
# $novajoin_pw and $token (nova's project-scoped token).
start_keystone() {
  local port template
  port=$(free_port)
  "$here/scripts/keystone-env.sh" start "$work/keystone" "$port" fernet >/dev/null
  template=${NOVAJOIN_KEYSTONE_TEMPLATE:-$here/target/keystone-template-v1}
  pw() { python3 -c "import json; print(json.load(open('$template/credentials.json'))['users']['$1']['password'])"; }
  nova_pw=$(pw nova)
  novajoin_pw=$(pw novajoin)
  ks=http://127.0.0.1:$port
  token=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' "$ks/v3/auth/tokens" -d "{\"auth\": {
    \"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"nova\",
    \"domain\": {\"id\": \"default\"}, \"password\": \"$nova_pw\"}}},
    \"scope\": {\"project\": {\"name\": \"service\", \"domain\": {\"id\": \"default\"}}}}}" \
    | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')
  [ -n "$token" ] || { echo "bench: could not get nova's token" >&2; exit 1; }
}

stop_keystone() { "$here/scripts/keystone-env.sh" stop "$work/keystone" >/dev/null 2>&1 || true; }

# The IPA double (no latency) with admin password $ipa_pw; sets $ipa_url.
start_ipa_double() {
  IPA_DOUBLE_PASSWORD=$ipa_pw "$here/target/release/ipa-double" --listen 127.0.0.1:0 --latency-ms 0 \
    >"$work/ipa.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'listening on' "$work/ipa.out" && break; sleep 0.1; done
  ipa_url=$(sed -n 's/^ipa-double listening on //p' "$work/ipa.out")
  [ -n "$ipa_url" ] || { echo "bench: the IPA double did not start" >&2; cat "$work/ipa.out"; exit 1; }
}

# join.conf for one configuration: $1 dir (holding pipeline.toml), $2 port,
# $3 extra sections.
write_conf() {
  cat >"$1/join.conf" <<EOC
[DEFAULT]
join_listen = 127.0.0.1
join_listen_port = $2
api_paste_config = $1/pipeline.toml
url = $ipa_url/ipa/json
domain = example.test

[ipa]
auth_method = password
username = admin
password = $ipa_pw
server = ipa.example.test
realm = EXAMPLE.TEST

[service_credentials]
auth_type = password
auth_url = $ks/v3
username = nova
password = $nova_pw
project_name = service
user_domain_name = Default
project_domain_name = Default

[keystone_authtoken]
auth_type = password
auth_url = $ks/v3
username = novajoin
password = $novajoin_pw
user_domain_name = Default
project_name = service
project_domain_name = Default
www_authenticate_uri = $ks

$3
EOC
}
