#!/usr/bin/env bash
# Import rate of the `taskstore` CLI (release build) on SQLite and PostgreSQL.
#   bench/cli_import.sh [ROWS]    (default 100000)
# Generates a CSV, imports it for a fresh user on each backend, prints the CLI's own summary
# (rows, seconds, rows/s), then exports and re-imports into a second database to show the round
# trip. PostgreSQL: a scratch database on 127.0.0.1:5432, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
cargo build --release --quiet
bin=$PWD/target/release/taskstore
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb -h 127.0.0.1 -U postgres --if-exists taskstore_bench_cli >/dev/null 2>&1 || true' EXIT

python3 - "$rows" "$work/tasks.csv" <<'PY'
import csv, sys
rows, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["title", "description", "priority", "completed"])
    for i in range(rows):
        w.writerow([f"Imported task {i:07d}", "" if i % 3 else f"details, \"quoted\" {i}", i % 5 + 1, "true" if i % 4 == 0 else "false"])
PY

run() { # backend url
    local name=$1 url=$2
    local user
    user=$(DATABASE_URL=$url "$bin" --json user add --email "bench-$name@example.com" --password-hash h | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    printf '%-10s ' "$name"
    DATABASE_URL=$url "$bin" task import --user "$user" "$work/tasks.csv"
    local t0=$(date +%s.%N)
    DATABASE_URL=$url "$bin" task export --user "$user" --output "$work/export-$name.csv" >/dev/null
    local t1=$(date +%s.%N)
    printf '%-10s exported %s rows in %.2f s\n' "$name" "$rows" "$(python3 -c "print($t1 - $t0)")"
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); rows: $rows; $(nproc) cores"
run sqlite "sqlite://$work/bench.db"
dropdb -h 127.0.0.1 -U postgres --if-exists taskstore_bench_cli >/dev/null 2>&1 || true
createdb -h 127.0.0.1 -U postgres taskstore_bench_cli
run postgres "postgres://postgres@127.0.0.1:5432/taskstore_bench_cli"
