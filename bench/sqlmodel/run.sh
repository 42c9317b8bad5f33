#!/usr/bin/env bash
# The SQLModel/SQLAlchemy stack beside the layer: same server, same schema, same rows, one run
# (issue 14 item 4; targets: >= 10x on get and list, bulk through the layer's best path >= 5x).
#
#   bench/sqlmodel/run.sh [SECONDS_PER_WORKLOAD=10]      (--quick: 1 s per workload)
#
# 1. the pinned virtualenv bench/out/venv (setup.sh, idempotent), the release build of
#    examples/sqlmodel_compare;
# 2. a fresh database taskstore_bench_sqlmodel_<pid> on the shared server, schema by the layer's
#    own migrations (`sqlmodel_compare migrate`: the layer's embedded migrations, what
#    `taskstore migrate run` applies), 100 users x 1 000 tasks (a third completed)
#    seeded by seed.sql (server-side, favouring neither stack), ANALYZE, 128 random
#    (owner, id) keys of them in keys.tsv;
# 3. per workload, SQLModel (workloads.py) and then the layer (examples/sqlmodel_compare), each
#    at 1 and 4 threads on a pool of 4 with a checkout / Session per call, reading keys.tsv:
#    get by (owner, id); list page of 20 of open tasks, newest first; create one task;
#    100 000-row bulk (layer: create_many, one call per thread = binary COPY; SQLModel: both
#    session.add_all + one commit, and ORM bulk insert() per 1 000 rows + one commit);
# 4. the table (ops/s, bulk in rows/s; ratio = layer / sqlmodel) on stdout and in
#    bench/out/sqlmodel/table.md, with date, uptime and machine in bench/out/sqlmodel/run.md.
#
# Talks only to the PostgreSQL of TASKSTORE_BENCH_PG_URL (default 127.0.0.1:5432); drops its
# database at the end, also on failure or Ctrl-C.
set -euo pipefail

SECONDS_PER_WORKLOAD=${1:-10}
[[ $SECONDS_PER_WORKLOAD == --quick ]] && SECONDS_PER_WORKLOAD=1
if ! [[ $SECONDS_PER_WORKLOAD =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "usage: $0 [SECONDS_PER_WORKLOAD | --quick] (got '$SECONDS_PER_WORKLOAD')" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN_URL=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=taskstore_bench_sqlmodel_$$
URL=${ADMIN_URL%/*}/$DB
OUT=$ROOT/bench/out/sqlmodel
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

cleanup() { "$PGBIN/psql" -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

PY=$("$HERE/setup.sh")
cd "$ROOT"
cargo build --release -p taskstore --example sqlmodel_compare
rm -rf "$OUT"
mkdir -p "$OUT"

"$PGBIN/psql" -q "$ADMIN_URL" -c "CREATE DATABASE $DB"
BIN=$TARGET/release/examples/sqlmodel_compare
"$BIN" migrate "$URL"
"$PGBIN/psql" -q -v ON_ERROR_STOP=1 "$URL" -f "$HERE/seed.sql"
"$PGBIN/psql" -qAt "$URL" -F $'\t' \
    -c "SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT 128" > "$OUT/keys.tsv"

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "command: bench/sqlmodel/run.sh $SECONDS_PER_WORKLOAD"
    echo "machine: $(nproc) vCPU $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)," \
        "$(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo), $(uname -sr)," \
        "$("$PGBIN/psql" -qAt "$URL" -c 'SHOW server_version')," \
        "$("$PY" -c 'import sys, sqlalchemy, sqlmodel, psycopg; print(f"Python {sys.version.split()[0]}, SQLModel {sqlmodel.__version__}, SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__})")')"
    echo "uptime before: $(uptime)"
} | tee "$OUT/run.md"

# Each workload on both stacks back to back, so that both see the same moment's machine load.
for workload in get list create bulk; do
    "$PY" "$HERE/workloads.py" "$URL" run "$SECONDS_PER_WORKLOAD" "$OUT/keys.tsv" "$workload" |
        tee -a "$OUT/sqlmodel.txt"
    "$BIN" "$URL" "$OUT/keys.tsv" "$SECONDS_PER_WORKLOAD" \
        "$workload" | tee -a "$OUT/layer.txt"
done
echo "uptime after: $(uptime)" | tee -a "$OUT/run.md"

{
    echo "| workload | threads | SQLModel | layer | layer / SQLModel |"
    echo "|---|---|---|---|---|"
    while read -r _ workload threads ops; do
        # A bulk variant of SQLModel's is compared with the layer's one bulk path.
        layer=$(awk -v w="${workload%%/*}" -v t="$threads" \
            '(($2 == w) || (index($2, w "/") == 1)) && $3 == t { print $2, $4 }' "$OUT/layer.txt")
        if [[ -z $layer || $ops == 0 ]]; then
            echo "no layer figure for $workload at $threads threads" >&2
            exit 1
        fi
        lname=${layer% *} lops=${layer#* } unit=ops/s label=$workload
        if [[ $lname != "$workload" ]]; then
            unit=rows/s label="${workload%%/*}: ${workload#*/} (SQLModel) vs ${lname#*/} (layer)"
        fi
        ratio=$(awk -v a="$lops" -v b="$ops" 'BEGIN { printf "%.1f×", a / b }')
        echo "| $label | $threads | $ops $unit | $lops $unit | $ratio |"
    done < "$OUT/sqlmodel.txt"
} | tee "$OUT/table.md"
