#!/usr/bin/env bash
# HTTP load figures for `taskstore serve` (issue 9), recorded in bench/RESULTS.md:
# GET one task and GET a page of 20, at 1, 8 and 64 connections, pool 8, with wrk on loopback;
# in the same run, the same operations called directly through the library on as many threads
# (cli/examples/library_baseline.rs), so that the ratio is the HTTP layer's cost.
#
#   bash bench/http.sh [sqlite|postgres ...]     # default: both; DURATION=10 seconds per case
#
# wrk comes from scripts/install-test-deps.sh. Release builds; the shared PostgreSQL server
# gets a database of its own (dropped afterwards); SQLite a temporary file.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
duration=${DURATION:-10}
command -v wrk >/dev/null || bash scripts/install-test-deps.sh
cargo build --quiet --release -p taskstore-cli --bin taskstore --example library_baseline
bin="$repo/target/release/taskstore"
baseline="$repo/target/release/examples/library_baseline"
admin=${TASKSTORE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
work=$(mktemp -d)
pg_db="taskstore_bench_http_$$"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    psql -X -q -d "$admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export DATABASE_POOL_MAX_SIZE=8 DATABASE_POOL_MIN_IDLE=8 TASKSTORE_LOG=warn
email=bench@example.com
password="bench password"
auth="Authorization: Basic $(printf '%s:%s' "$email" "$password" | base64 -w0)"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "| backend | operation | connections | HTTP req/s | HTTP p50 ms | HTTP p99 ms | library req/s | library p50 ms | library p99 ms | HTTP/library req/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"

# wrk's "Requests/sec" and its 50% / 99% latencies, in ms.
wrk_run() {
    local conns=$1 url=$2 out
    out=$(wrk -t "$((conns < 2 ? 1 : 2))" -c "$conns" -d "${duration}s" --latency -H "$auth" "$url")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "non-2xx answers under load:" >&2
        echo "$out" >&2
        exit 1
    fi
    local rps p50 p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {
    python3 -c "
import re,sys
v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); n=float(m.group(1)); u=m.group(2)
print(round(n/1000 if u=='us' else n*1000 if u=='s' else n,3))" "$1"
}

run() {
    local backend=$1 url
    case "$backend" in
        sqlite) url="sqlite://$work/bench.db" ;;
        postgres)
            psql -X -q -d "$admin" -c "CREATE DATABASE $pg_db" >/dev/null
            url="${admin%/*}/$pg_db"
            ;;
        *) echo "unknown backend $backend" >&2; return 2 ;;
    esac
    export DATABASE_URL=$url
    (cd "$work" && echo "$password" | "$bin" --json user add --email "$email" --password >/dev/null)
    local task=""
    for i in $(seq 1 30); do
        task=$(cd "$work" && "$bin" --json task add --user "$email" --title "bench task $i" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    done
    (cd "$work" && exec "$bin" serve --addr 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log") &
    server_pid=$!
    local base=""
    for _ in $(seq 1 100); do
        base=$(sed -n 's/^listening on //p' "$work/serve.out" 2>/dev/null || true)
        [ -n "$base" ] && break
        sleep 0.1
    done
    [ -n "$base" ] || { cat "$work/serve.log"; exit 1; }
    # Warm up (and let the first request pay the Argon2 check once).
    wrk -t 1 -c 4 -d 2s -H "$auth" "$base/v1/tasks/$task" >/dev/null
    for op in get page; do
        local path="/v1/tasks/$task"
        [ "$op" = page ] && path="/v1/tasks?limit=20"
        for conns in 1 8 64; do
            read -r rps p50 p99 < <(wrk_run "$conns" "$base$path")
            local lib
            lib=$("$baseline" "$op" "$email" "$task" "$conns" "$duration")
            local lrps lp50 lp99
            lrps=$(echo "$lib" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rps"])')
            lp50=$(echo "$lib" | python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_ms"])')
            lp99=$(echo "$lib" | python3 -c 'import json,sys; print(json.load(sys.stdin)["p99_ms"])')
            ratio=$(python3 -c "print(round($rps/$lrps,2))")
            echo "| $backend | $op | $conns | $rps | $p50 | $p99 | $lrps | $lp50 | $lp99 | $ratio |"
        done
    done
    kill "$server_pid" && wait "$server_pid" || true
    server_pid=""
}

backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(sqlite postgres)
for b in "${backends[@]}"; do
    run "$b"
done
