#!/usr/bin/env bash
# Generates the system locales the test suite needs, idempotently: a second run changes nothing.
#
# Why: issue 12 item 7 tests taskstore against a PostgreSQL server whose messages are German
# (`lc_messages = 'de_DE.utf8'`). PostgreSQL refuses an `lc_messages` value the C library cannot
# load, so the locale must exist before the throw-away cluster starts.
#
# Usage: scripts/install-locales.sh [LOCALE ...]   (default: de_DE.UTF-8)
# Needs root (or sudo) only when a locale is missing; prints what it did.
set -euo pipefail

locales=("$@")
if ((${#locales[@]} == 0)); then
    locales=("de_DE.UTF-8")
fi

# `locale -a` spells "de_DE.UTF-8" as "de_DE.utf8": lower-case charset without dashes.
installed_name() {
    local lang=${1%%.*} charset=${1#*.}
    charset=${charset,,}
    printf '%s.%s\n' "$lang" "${charset//-/}"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "install-locales: need root to run: $*" >&2
        exit 1
    fi
}

missing=()
for loc in "${locales[@]}"; do
    if locale -a 2>/dev/null | grep -Fxq "$(installed_name "$loc")"; then
        echo "locale $loc: already installed"
    else
        missing+=("$loc")
    fi
done
((${#missing[@]} == 0)) && exit 0

# Debian's locale-gen builds what /etc/locale.gen enables; it needs the `locales` package.
if ! command -v locale-gen >/dev/null || [ ! -f /etc/locale.gen ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq locales
fi
for loc in "${missing[@]}"; do
    charset=${loc#*.}
    line="$loc $charset"
    if grep -Eq "^[[:space:]]*${line//./\\.}[[:space:]]*$" /etc/locale.gen; then
        : # enabled but not generated yet
    elif grep -Eq "^[[:space:]]*#[[:space:]]*${line//./\\.}[[:space:]]*$" /etc/locale.gen; then
        as_root sed -i -E "s/^[[:space:]]*#[[:space:]]*(${line//./\\.})[[:space:]]*$/\\1/" /etc/locale.gen
    else
        echo "$line" | as_root tee -a /etc/locale.gen >/dev/null
    fi
done
as_root locale-gen >/dev/null
for loc in "${missing[@]}"; do
    if locale -a | grep -Fxq "$(installed_name "$loc")"; then
        echo "locale $loc: installed"
    else
        echo "install-locales: locale-gen did not produce $loc" >&2
        exit 1
    fi
done
