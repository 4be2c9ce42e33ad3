#!/usr/bin/env bash
# Runs a real keystone (PyPI keystone 30, sqlite, gunicorn on 127.0.0.1) for
# the novajoin demo and tests. The first run prepares a template (keys,
# database, users; about a minute) under target/keystone-template; later
# instances copy it and are ready in seconds.
#
#   scripts/keystone-env.sh prepare               make the template only
#   scripts/keystone-env.sh start DIR [PORT] [fernet|jws]
#                                                  start an instance in the background
#   scripts/keystone-env.sh stop DIR               stop it
#   scripts/keystone-env.sh run DIR PORT [fernet|jws]
#                                                  run one in the foreground
#
# Users (test passwords, see TEMPLATE/credentials.json): admin, nova
# (service + admin roles in project service), novajoin (service role only),
# demo (member of project demo).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}
template=${NOVAJOIN_KEYSTONE_TEMPLATE:-$here/target/keystone-template-v1}
py="$venv/bin/python"
helper="$here/scripts/keystone_env.py"

need_venv() {
  if ! "$py" -c 'import keystone, gunicorn' 2>/dev/null; then
    echo "keystone is not installed in $venv; run scripts/install-test-deps.sh first" >&2
    exit 1
  fi
}

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd=${1:-}
case "$cmd" in
  prepare)
    need_venv
    "$py" "$helper" prepare "$template"
    echo "keystone template ready: $template"
    ;;
  start|run)
    need_venv
    dir=${2:?usage: $0 $cmd DIR [PORT] [fernet|jws]}
    port=${3:-$(free_port)}
    provider=${4:-fernet}
    "$py" "$helper" prepare "$template"
    "$py" "$helper" instance "$template" "$dir" --provider "$provider" \
      --public-endpoint "http://127.0.0.1:$port"
    if [ "$cmd" = run ]; then
      exec "$py" "$helper" serve "$dir" "$port"
    fi
    "$py" "$helper" serve "$dir" "$port" >"$dir/keystone.log" 2>&1 &
    echo $! >"$dir/keystone.pid"
    for _ in $(seq 1 240); do
      if "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v3', timeout=1)" 2>/dev/null; then
        echo "keystone ($provider) at http://127.0.0.1:$port/v3 (pid $(cat "$dir/keystone.pid"), log $dir/keystone.log)"
        echo "users and passwords: $template/credentials.json"
        exit 0
      fi
      if ! kill -0 "$(cat "$dir/keystone.pid")" 2>/dev/null; then
        echo "keystone exited; see $dir/keystone.log" >&2
        exit 1
      fi
      sleep 0.25
    done
    echo "keystone did not answer within 60 s; see $dir/keystone.log" >&2
    exit 1
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    if [ -f "$dir/keystone.pid" ]; then
      kill "$(cat "$dir/keystone.pid")" 2>/dev/null || true
      rm -f "$dir/keystone.pid"
    fi
    ;;
  *)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
