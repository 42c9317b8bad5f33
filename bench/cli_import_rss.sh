#!/usr/bin/env bash
# Peak memory and rate of the streaming CLI import (issue 14) beside `psql \copy` of the same
# rows, in one run:
#   bench/cli_import_rss.sh [ROWS...]     (default: 100000 1000000)
#
# For each size, one generated data set written twice: as the CLI's import CSV (title,
# description, priority, completed; no ids, so the CLI gives each row a fresh id) and, with ids,
# the owner and timestamps, as a CSV `psql \copy` loads straight into `tasks`. Then, on a scratch
# PostgreSQL database (127.0.0.1:5432, dropped at the end), from an empty table after TRUNCATE +
# CHECKPOINT each time:
#   - psql \copy of the psql CSV;
#   - `taskstore task import` of the CLI CSV;
#   - `taskstore task import` of the CLI CSV with an id column (an export being re-imported: the
#     import keeps 24 bytes per row that carries an id, for the duplicate check);
# and the CLI import on SQLite (a fresh file). Every process runs under `/usr/bin/time -v`: wall
# time and maximum resident set size. The rate ratio is psql's wall time over the CLI's (both
# whole processes: start-up, connect, parse, write, commit).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(100000 1000000)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=taskstore_bench_cli_rss
URL=${ADMIN%/*}/$DB
cargo build --release --quiet -p taskstore-cli
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/taskstore
work=$(mktemp -d)
cleanup() { rm -rf "$work"; "$PGBIN/psql" -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

measure() { # label command...  -> prints "label wall_s max_rss_kib"
    local label=$1
    shift
    /usr/bin/time -v "$@" >"$work/out" 2>"$work/time" || { cat "$work/out" "$work/time" >&2; exit 1; }
    local wall rss
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time" |
        awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time")
    printf '%s\t%s\t%s\n' "$label" "$wall" "$rss"
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
results=$work/results.tsv
: >"$results"
for rows in "${sizes[@]}"; do
    "$PGBIN/psql" -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
    user=$(DATABASE_URL=$URL "$bin" --json user add --email "rss@example.com" --password-hash h |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    python3 - "$rows" "$user" "$work" <<'PY'
import csv, sys, uuid, datetime
rows, user, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
with open(f"{work}/cli.csv", "w", newline="") as a, open(f"{work}/cli_ids.csv", "w", newline="") as b, \
        open(f"{work}/psql.csv", "w", newline="") as c:
    wa, wb, wc = csv.writer(a), csv.writer(b), csv.writer(c)
    wa.writerow(["title", "description", "priority", "completed"])
    wb.writerow(["id", "title", "description", "priority", "completed"])
    wc.writerow(["id", "user_id", "title", "description", "priority", "completed", "created_at", "updated_at", "completed_at"])
    for i in range(rows):
        title = f"Imported task {i:07d}"
        desc = "" if i % 3 else f"details, \"quoted\" {i}"
        prio, done = i % 5 + 1, "true" if i % 4 == 0 else "false"
        tid = str(uuid.uuid4())
        wa.writerow([title, desc, prio, done])
        wb.writerow([tid, title, desc, prio, done])
        wc.writerow([tid, user, title, desc or None, prio, done, now, now, now if done == "true" else None])
PY
    fresh() { "$PGBIN/psql" -q "$URL" -c "TRUNCATE tasks" -c "CHECKPOINT" >/dev/null; }
    fresh
    measure "$rows psql_copy" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$URL" \
        -c "\\copy tasks (id, user_id, title, description, priority, completed, created_at, updated_at, completed_at) FROM '$work/psql.csv' WITH (FORMAT csv, HEADER true)" | tee -a "$results"
    fresh
    measure "$rows cli_postgres" env DATABASE_URL="$URL" "$bin" task import --user "$user" "$work/cli.csv" | tee -a "$results"
    fresh
    measure "$rows cli_postgres_with_ids" env DATABASE_URL="$URL" "$bin" task import --user "$user" "$work/cli_ids.csv" | tee -a "$results"
    rm -f "$work/lite.db"*
    lite_user=$(DATABASE_URL="sqlite://$work/lite.db" "$bin" --json user add --email "rss@example.com" --password-hash h |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    measure "$rows cli_sqlite" env DATABASE_URL="sqlite://$work/lite.db" "$bin" task import --user "$lite_user" "$work/cli.csv" | tee -a "$results"
    ls -l "$work/cli.csv" | awk -v r="$rows" '{ printf "%s rows: CLI file %.1f MB\n", r, $5 / 1e6 }'
done

python3 - "$results" <<'PY'
import sys
res = {}
for line in open(sys.argv[1]):
    label, wall, rss = line.rstrip("\n").split("\t")
    rows, case = label.split(" ")
    res[(int(rows), case)] = (float(wall), int(rss))
print()
print("| rows | case | wall s | rows/s | peak RSS |")
print("|---:|---|---:|---:|---:|")
for (rows, case), (wall, rss) in sorted(res.items()):
    print(f"| {rows} | {case} | {wall:.2f} | {rows / wall:.0f} | {rss / 1024:.1f} MiB |")
print()
print("| rows | CLI (PostgreSQL) rate / psql \\copy rate | with ids / psql |")
print("|---:|---:|---:|")
for rows in sorted({r for r, _ in res}):
    p = res[(rows, "psql_copy")][0]
    print(f"| {rows} | {p / res[(rows, 'cli_postgres')][0]:.3f} | {p / res[(rows, 'cli_postgres_with_ids')][0]:.3f} |")
PY
