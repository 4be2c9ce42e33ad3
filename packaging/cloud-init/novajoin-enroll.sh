#!/bin/bash
# novajoin-enroll: joins this instance to FreeIPA at first boot.
#
# nova put novajoin's answer ({"hostname", "krb_realm", "ipaotp"}) under the
# key "join" of vendor_data2.json. This script reads it from the config
# drive when there is one, otherwise from the metadata service (retrying
# with back-off and jitter until it answers, after the time a Retry-After
# header names when the service sends one), and runs
#   ipa-client-install -U -w <otp> --hostname <fqdn> [--realm <realm>] [ARGS...]
# where ARGS are this script's own arguments (e.g. --mkhomedir).
#
# When the answer has no "join" entry although the instance's metadata asks
# for enrollment (ipa_enroll), novajoin failed for that request (nova then
# stores {}): the script asks the metadata service again, which makes nova
# call novajoin again, until the time is up. That includes config-drive
# instances whose drive was built while novajoin was failing.
#
# The one-time password is never printed: no `set -x`, no echo of the
# answer. Exit status: 0 enrolled or nothing to do, 1 failure.
#
# Environment (defaults suit a real instance; tests override them):
#   NOVAJOIN_CONFIG_DRIVE_DIR    an already mounted config drive
#   NOVAJOIN_CONFIG_DRIVE_LABEL  file system label of the drive (config-2)
#   NOVAJOIN_METADATA_URL        vendor_data2.json on the metadata service
#   NOVAJOIN_METADATA_TIMEOUT    seconds to keep trying the service (300)
#   NOVAJOIN_RETRY_BASE          first pause between tries, seconds (2)
#   NOVAJOIN_RETRY_MAX           longest pause between tries, seconds (30)
#   NOVAJOIN_IPA_DEFAULT_CONF    present when already enrolled
set -euo pipefail
umask 077

config_drive_dir=${NOVAJOIN_CONFIG_DRIVE_DIR:-}
config_drive_label=${NOVAJOIN_CONFIG_DRIVE_LABEL:-config-2}
metadata_url=${NOVAJOIN_METADATA_URL:-http://169.254.169.254/openstack/latest/vendor_data2.json}
metadata_timeout=${NOVAJOIN_METADATA_TIMEOUT:-300}
retry_base=${NOVAJOIN_RETRY_BASE:-2}
retry_max=${NOVAJOIN_RETRY_MAX:-30}
ipa_default_conf=${NOVAJOIN_IPA_DEFAULT_CONF:-/etc/ipa/default.conf}

log() {
    printf 'novajoin-enroll: %s\n' "$*" >&2
}

workdir=$(mktemp -d)
mounted=""
cleanup() {
    if [ -n "$mounted" ]; then
        umount "$mounted" || log "could not unmount the config drive at $mounted"
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
answer="$workdir/vendor_data2.json"
meta="$workdir/meta_data.json"
meta_url="${metadata_url%/*}/meta_data.json"
deadline=$((SECONDS + metadata_timeout))

python=""
for candidate in python3 /usr/libexec/platform-python; do
    if command -v "$candidate" >/dev/null 2>&1; then
        python=$(command -v "$candidate")
        break
    fi
done

# Whether file $1 holds a JSON object.
is_json_object() {
    "$python" -c 'import json, sys
with open(sys.argv[1]) as f:
    sys.exit(0 if isinstance(json.load(f), dict) else 1)' "$1" 2>/dev/null
}

# Copies vendor_data2.json from the config drive to $answer.
from_config_drive() {
    local dir=$config_drive_dir device
    if [ -z "$dir" ]; then
        device=$(blkid -l -t "LABEL=$config_drive_label" -o device 2>/dev/null || true)
        if [ -z "$device" ]; then
            device=$(blkid -l -t "LABEL=${config_drive_label^^}" -o device 2>/dev/null || true)
        fi
        if [ -z "$device" ]; then
            log "no config drive (label $config_drive_label)"
            return 1
        fi
        dir="$workdir/config-drive"
        mkdir "$dir"
        if ! mount -o ro "$device" "$dir"; then
            log "cannot mount the config drive $device"
            return 1
        fi
        mounted=$dir
    fi
    local file="$dir/openstack/latest/vendor_data2.json"
    if [ ! -s "$file" ]; then
        log "the config drive has no openstack/latest/vendor_data2.json"
        return 1
    fi
    cp "$file" "$answer"
    cp "$dir/openstack/latest/meta_data.json" "$meta" 2>/dev/null || true
    if [ -n "$mounted" ]; then
        umount "$mounted" && mounted=""
    fi
    is_json_object "$answer" || { log "vendor_data2.json on the config drive is not a JSON object"; return 1; }
    log "read vendor_data2.json from the config drive"
}

# A pause of about $1 seconds, spread over [$1/2, 3*$1/2] so that instances
# booted together do not ask the metadata service in lock step.
jittered() {
    local base=$1
    echo $((base / 2 + RANDOM % (base + 1)))
}

# The seconds of a Retry-After header in the response headers file $1
# (delta-seconds form, at most 3600); nothing when there is none.
retry_after() {
    local value
    value=$(sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]:[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$1" 2>/dev/null | tail -n 1)
    if [ -n "$value" ] && [ "${#value}" -le 4 ] && [ "$value" -le 3600 ]; then
        echo "$value"
    fi
}

# Fetches $2 from the metadata service into $1, retrying with back-off
# until it is a JSON object or the deadline passes. A busy service's
# Retry-After (e.g. 503 from a proxy in front of it, or novajoin's own when
# it is reached directly) sets the pause instead of the back-off, spread by
# up to a second so that instances told the same time do not return together.
fetch() {
    local out=$1 url=$2 delay=$retry_base attempt=0 pause wait
    while :; do
        attempt=$((attempt + 1))
        : >"$workdir/headers"
        if curl -fsS --connect-timeout 5 --max-time 60 -D "$workdir/headers" -o "$out" "$url" 2>"$workdir/curl.err" &&
            is_json_object "$out"; then
            log "read ${url##*/} from the metadata service (attempt $attempt)"
            return 0
        fi
        log "metadata service attempt $attempt failed: $(head -c 300 "$workdir/curl.err" | tr '\n' ' ')"
        wait=$(retry_after "$workdir/headers")
        if [ -n "$wait" ]; then
            pause=$((wait + RANDOM % 2))
            log "the metadata service asks to retry after $wait s"
        else
            pause=$(jittered "$delay")
        fi
        if [ $((SECONDS + pause)) -ge "$deadline" ]; then
            log "gave up on $url after $attempt attempts"
            return 1
        fi
        sleep "$pause"
        delay=$((delay * 2))
        if [ "$delay" -gt "$retry_max" ]; then
            delay=$retry_max
        fi
    done
}

# Whether $answer has a non-empty "join" entry.
has_join() {
    "$python" -c 'import json, sys
with open(sys.argv[1]) as f:
    sys.exit(0 if json.load(f).get("join") else 1)' "$answer" 2>/dev/null
}

# Whether the instance metadata in $meta sets ipa_enroll to true.
enrollment_requested() {
    [ -s "$meta" ] && "$python" -c 'import json, sys
with open(sys.argv[1]) as f:
    flag = (json.load(f).get("meta") or {}).get("ipa_enroll", "")
sys.exit(0 if str(flag).lower() == "true" else 1)' "$meta" 2>/dev/null
}

# Fetches vendor_data2.json from the metadata service into $answer. While
# it has no "join" entry but the instance asked for enrollment, asks again
# (each request makes nova call novajoin again).
from_metadata_service() {
    local delay=$retry_base pause
    while :; do
        fetch "$answer" "$metadata_url" || return 1
        if has_join; then
            return 0
        fi
        if [ ! -s "$meta" ]; then
            fetch "$meta" "$meta_url" || rm -f "$meta"
        fi
        if ! enrollment_requested; then
            return 0
        fi
        pause=$(jittered "$delay")
        if [ $((SECONDS + pause)) -ge "$deadline" ]; then
            log "novajoin gave no answer for this instance although ipa_enroll is set; giving up"
            return 1
        fi
        log "no novajoin answer yet although ipa_enroll is set (novajoin failed for this request); asking again"
        sleep "$pause"
        delay=$((delay * 2))
        if [ "$delay" -gt "$retry_max" ]; then
            delay=$retry_max
        fi
    done
}

# Prints hostname, realm and OTP from $answer, one per line, after checking
# that each has the shape it must have (nothing here can become an option).
read_join() {
    "$python" -c 'import json, re, sys
with open(sys.argv[1]) as f:
    join = json.load(f).get("join") or {}
if not isinstance(join, dict):
    sys.exit("the \"join\" entry is not an object")
host = join.get("hostname") or ""
realm = join.get("krb_realm") or ""
otp = join.get("ipaotp") or ""
if not host and not otp:
    sys.exit(3)
if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+", host):
    sys.exit("the hostname in the answer is not a fully qualified domain name")
if realm and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", realm):
    sys.exit("the realm in the answer is malformed")
if not re.fullmatch(r"[A-Za-z0-9]+", otp):
    sys.exit("the answer has no usable one-time password (ipaotp): novajoin could not set one in IPA")
print(host)
print(realm)
print(otp)' "$answer"
}

install_client() {
    if command -v ipa-client-install >/dev/null 2>&1; then
        return 0
    fi
    log "ipa-client-install is missing; installing the IPA client package"
    if command -v dnf >/dev/null 2>&1; then
        dnf -y -q install ipa-client || dnf -y -q install freeipa-client || true
    elif command -v yum >/dev/null 2>&1; then
        yum -y -q install ipa-client || true
    elif command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get -y -q install freeipa-client || true
    fi
    command -v ipa-client-install >/dev/null 2>&1
}

main() {
    if [ -e "$ipa_default_conf" ]; then
        log "$ipa_default_conf exists: this host is already enrolled; nothing to do"
        return 0
    fi
    if [ -z "$python" ]; then
        log "python3 is needed to read the metadata and was not found"
        return 1
    fi
    if from_config_drive; then
        if ! has_join && enrollment_requested; then
            log "the config drive has no novajoin answer although ipa_enroll is set (novajoin failed while nova built it); asking the metadata service"
            if ! from_metadata_service; then
                log "FATAL: no novajoin answer from the config drive or the metadata service"
                return 1
            fi
        fi
    elif ! from_metadata_service; then
        log "FATAL: no vendor_data2.json from the config drive or the metadata service"
        return 1
    fi

    local fields status=0
    fields=$(read_join) || status=$?
    if [ "$status" -eq 3 ]; then
        log "no IPA enrollment was requested for this instance (no \"join\" answer)"
        return 0
    elif [ "$status" -ne 0 ]; then
        log "cannot use novajoin's answer"
        return 1
    fi
    local fqdn realm otp
    {
        read -r fqdn
        read -r realm
        read -r otp
    } <<<"$fields"
    unset fields

    if ! install_client; then
        log "FATAL: ipa-client-install is not available and could not be installed"
        return 1
    fi

    local args=(-U -w "$otp" --hostname "$fqdn")
    if [ -n "$realm" ]; then
        args+=(--realm "$realm")
    fi
    args+=("$@")
    log "running ipa-client-install -U --hostname $fqdn${realm:+ --realm $realm}${*:+ $*} (one-time password not shown)"
    if ipa-client-install "${args[@]}"; then
        log "enrolled as $fqdn"
        return 0
    fi
    log "ipa-client-install failed; see /var/log/ipaclient-install.log"
    return 1
}

main "$@"
