#!/usr/bin/env bash
# The SQLModel/SQLAlchemy stack beside the layer, same server, same schema, one run (issue 14
# item 4; SPEC §9 targets: ≥ 10× on get and list; bulk through the layer's best path ≥ 5×).
#
#   bench/sqlmodel/run.sh [SECONDS_PER_WORKLOAD=10]      (--quick: 2 s per workload)
#
# 1. the pinned virtualenv (setup.sh, idempotent);
# 2. a fresh database taskstore_bench_sqlmodel, schema by the layer's own migrations
#    (`taskstore migrate run`), 100 users × 1 000 tasks seeded by workloads.py;
# 3. workloads.py: get, list page of 20 (open tasks, newest first), create, 100 000-row bulk,
#    at 1 and 4 threads;
# 4. the layer on the same database: get through examples/throughput (a pool of 4, a checkout
#    per call) at 1 and 4 threads, on the same seeded rows; ratios printed as layer / sqlmodel.
#
# NOT YET (issue 14 item 4, left open): the layer's list, create and bulk at 1 and 4 threads on
# this database; the driver prints "n/a" for their ratios instead of a figure.
#
# Talks only to PostgreSQL on 127.0.0.1 (TASKSTORE_BENCH_PG_URL). Drops its database at the end.
set -euo pipefail

SECONDS_PER_WORKLOAD=${1:-10}
[[ $SECONDS_PER_WORKLOAD == --quick ]] && SECONDS_PER_WORKLOAD=2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN_URL=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=taskstore_bench_sqlmodel
URL=${ADMIN_URL%/*}/$DB
OUT=$ROOT/bench/out/sqlmodel
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

cleanup() { "$PGBIN/psql" -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

PY=$("$HERE/setup.sh")
cd "$ROOT"
cargo build --release -p taskstore-cli
cargo build --release -p taskstore --example throughput
mkdir -p "$OUT"
rm -f "$OUT/layer.txt"

cleanup
"$PGBIN/psql" -q "$ADMIN_URL" -c "CREATE DATABASE $DB"
DATABASE_URL=$URL "$TARGET/release/taskstore" migrate run
"$PY" "$HERE/workloads.py" "$URL" seed
"$PGBIN/psql" -qAt "$URL" -F $'\t' \
    -c "SELECT user_id, id FROM tasks ORDER BY md5(id::text) LIMIT 128" > "$OUT/keys.tsv"

echo "== uptime: $(uptime)"
"$PY" "$HERE/workloads.py" "$URL" run "$SECONDS_PER_WORKLOAD" | tee "$OUT/sqlmodel.txt"
for threads in 1 4; do
    ops=$("$TARGET/release/examples/throughput" run "$URL" "$OUT/keys.tsv" layer "$threads" 4 \
        "$SECONDS_PER_WORKLOAD" | sed -n 's/^ops_per_sec=//p')
    echo "layer get $threads $ops" | tee -a "$OUT/layer.txt"
done
echo "== uptime: $(uptime)"

echo "| workload | threads | sqlmodel ops/s | layer ops/s | layer / sqlmodel |"
echo "|---|---|---|---|---|"
while read -r _ workload threads ops; do
    layer=$(awk -v w="$workload" -v t="$threads" '$2 == w && $3 == t { print $4 }' "$OUT/layer.txt")
    if [[ -n $layer ]]; then
        ratio=$(awk -v a="$layer" -v b="$ops" 'BEGIN { printf "%.1f×", a / b }')
    else
        layer=n/a ratio=n/a
    fi
    echo "| $workload | $threads | $ops | $layer | $ratio |"
done < "$OUT/sqlmodel.txt"
