#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine of this kind:
# Debian packages (KDC, Apache with mod_auth_gssapi, build deps for GSSAPI,
# wrk, shellcheck, systemd-analyze, promtool from prometheus, redis-server,
# memcached, rpmbuild and the SELinux module compilers checkmodule and
# semodule_package, dnsmasq for SRV discovery), cargo-machete,
# and the Python venv with the real
# keystone, keystonemiddleware, oslo.policy and oslo.messaging.
# Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${NOVAJOIN_TEST_VENV:-$here/target/test-venv}

packages=(krb5-kdc krb5-admin-server krb5-user apache2 libapache2-mod-auth-gssapi
          libkrb5-dev libclang-dev wrk shellcheck systemd redis-server memcached rabbitmq-server openssl logrotate
          man-db curl python3 prometheus rpm checkpolicy semodule-utils dnsmasq-base)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python_pkgs=(keystone==30.0.0 keystonemiddleware keystoneauth1 gunicorn PyJWT cryptography
             oslo.policy oslo.messaging prometheus-client)
if ! "$venv/bin/python" -c 'import keystone, keystonemiddleware, oslo_policy, oslo_messaging, gunicorn, jwt, prometheus_client' 2>/dev/null; then
  echo "creating the test venv in $venv (about 2 minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "${python_pkgs[@]}"
fi
# cargo-machete: the unused-dependency check of scripts/test.sh.
if ! command -v cargo-machete >/dev/null 2>&1; then
  echo "installing cargo-machete"
  cargo install --locked -q cargo-machete
fi
# The keystone template (keys, database, users) the tests copy: about a
# minute once, then reused from target/.
NOVAJOIN_TEST_VENV=$venv "$here/scripts/keystone-env.sh" prepare
echo "test dependencies ready (venv: $venv)"
