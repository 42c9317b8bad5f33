#!/usr/bin/env bash
# The README's test command: installs what the tests need beyond the build (idempotent, quiet
# when everything is present), then runs the whole suite on both backends with cargo-nextest.
# Arguments go to `cargo nextest run`; NEXTEST_PROFILE=ci selects CI's profile (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
# iptables, pgbouncer, wrk, openssl (fault and deployment tests).
bash scripts/install-test-deps.sh
# The de_DE.utf8 locale (server-language tests, issue 12 item 7).
bash scripts/install-locales.sh
exec cargo nextest run "$@"
