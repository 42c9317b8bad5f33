#!/usr/bin/env bash
# Installs what the fault and deployment tests need beyond the build: iptables (the network
# blackhole in a namespace, tests/common/netns.rs), pgbouncer (tests through a pooler) and wrk
# (HTTP load for the deployment checks) and openssl (a local CA for the TLS tests,
# tests/deploy_tls.rs), all from Debian. Idempotent: quiet and without network
# access when everything is present; otherwise one `apt-get update`, then one install.
set -euo pipefail

# package -> a command it provides (checked on PATH and in the sbin directories, which a
# non-login shell may lack).
declare -A wants=(
    [iptables]=iptables
    [pgbouncer]=pgbouncer
    [wrk]=wrk
    [openssl]=openssl
)

have() {
    command -v "$1" >/dev/null 2>&1 && return 0
    local dir
    for dir in /usr/sbin /sbin /usr/local/sbin; do
        [ -x "$dir/$1" ] && return 0
    done
    return 1
}

missing=()
for pkg in "${!wants[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || ! have "${wants[$pkg]}"; then
        missing+=("$pkg")
    fi
done

((${#missing[@]})) || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing ${missing[*]}; run this script as root (it uses apt-get)" >&2
    exit 1
fi
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package enables a pgbouncer service on port 6432; tests start their own
# instances on free ports, so the packaged one must not hold the port or run unasked.
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && command -v service >/dev/null 2>&1; then
    service pgbouncer stop >/dev/null 2>&1 || true
fi
for pkg in "${missing[@]}"; do
    have "${wants[$pkg]}" || { echo "install-test-deps: $pkg installed but ${wants[$pkg]} not found" >&2; exit 1; }
done
echo "install-test-deps: done"
