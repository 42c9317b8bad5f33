#!/usr/bin/env bash
# Point-query throughput: pgbench (-M prepared) against the layer and raw Diesel, same SQL, same
# keys, same database, in one run (SPEC §9):
#   get ≥ 0.90× pgbench at 1 and 4 threads; 64 threads on a pool of 8 ≥ 0.95× 8 threads.
#
#   bench/pgbench.sh [SECONDS_PER_RUN=10] [ROUNDS=3]
#
# Each round runs, for 1 and 4 clients/threads, pgbench, the layer and raw Diesel one after the
# other, then the layer with 8 and with 64 threads on a pool of 8, and the same query on a plain
# diesel::r2d2 pool (4 on 4, 8 on 8, 64 on 8) to tell what any blocking pool costs from what the
# layer adds; the figures are the medians over the rounds, so that a burst of other work on the
# machine hits one round, not one side.
#
# pgbench picks (owner, id) pairs at random from 128 seeded pairs: each pair is its own script
# file (pgbench's limit is 128 scripts) reading variables set with -D, so the statement is the
# layer's own SQL with bind parameters (bench/point_query.sql, checked against what Diesel sends).
# The Rust side draws from the same 128 pairs.
#
# Talks only to PostgreSQL on 127.0.0.1 (TASKSTORE_BENCH_PG_URL). Drops its database at the end.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/bench/out/throughput
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN_URL=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=taskstore_bench_throughput
URL=${ADMIN_URL%/*}/$DB
export TASKSTORE_BENCH_PG_URL=$ADMIN_URL

cleanup() { "$PGBIN/psql" -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

cd "$ROOT"
cargo build --release --example throughput
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/throughput
rm -rf "$OUT" && mkdir -p "$OUT/scripts"

echo "== seeding $DB (100 users x 1000 tasks, through the layer)"
"$BIN" prepare "$OUT" >/dev/null

# The statement pgbench sends must be the one Diesel sends.
expected=$(sed -e 's/:id/$1/; s/:owner/$2/; s/:limit/$3/' bench/point_query.sql)
if [[ "$expected" != "$(cat "$OUT/get.sql")" ]]; then
    echo "bench/point_query.sql differs from the SQL Diesel sends:" >&2
    cat "$OUT/get.sql" >&2
    exit 1
fi

defines=(-D limit=1)
scripts=()
n=0
while IFS=$'\t' read -r owner id; do
    sed -e "s/:id/:id_$n/; s/:owner/:owner_$n/" bench/point_query.sql >"$OUT/scripts/get_$n.sql"
    defines+=(-D "owner_$n=$owner" -D "id_$n=$id")
    scripts+=(-f "$OUT/scripts/get_$n.sql")
    n=$((n + 1))
done <"$OUT/keys.tsv"

pgbench_tps() { # clients
    "$PGBIN/pgbench" -n -M prepared -c "$1" -j "$1" -T "$SECONDS_PER_RUN" "${defines[@]}" "${scripts[@]}" "$URL" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p'
}
rust_ops() { # mode threads pool
    "$BIN" run "$URL" "$OUT/keys.tsv" "$1" "$2" "$3" "$SECONDS_PER_RUN" 2>>"$OUT/rust.log" | sed -n 's/^ops_per_sec=//p'
}

RESULTS=$OUT/results.tsv
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for c in 1 4; do
        echo -e "$round\tpgbench_c$c\t$(pgbench_tps "$c")" | tee -a "$RESULTS"
        echo -e "$round\tlayer_t$c\t$(rust_ops layer "$c" "$c")" | tee -a "$RESULTS"
        echo -e "$round\traw_diesel_t$c\t$(rust_ops raw "$c" "$c")" | tee -a "$RESULTS"
    done
    echo -e "$round\tr2d2_t4_pool4\t$(rust_ops r2d2 4 4)" | tee -a "$RESULTS"
    echo -e "$round\tlayer_t8_pool8\t$(rust_ops layer 8 8)" | tee -a "$RESULTS"
    echo -e "$round\tlayer_t64_pool8\t$(rust_ops layer 64 8)" | tee -a "$RESULTS"
    echo -e "$round\tr2d2_t8_pool8\t$(rust_ops r2d2 8 8)" | tee -a "$RESULTS"
    echo -e "$round\tr2d2_t64_pool8\t$(rust_ops r2d2 64 8)" | tee -a "$RESULTS"
done

echo
echo "== medians over $ROUNDS rounds of ${SECONDS_PER_RUN} s (ops/s), $(date -u +%Y-%m-%dT%H:%MZ)"
python3 - "$RESULTS" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    _, name, value = line.rstrip("\n").split("\t")
    runs[name].append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
print("| run | median ops/s | all rounds |")
print("|---|---:|---|")
for k, v in runs.items():
    print(f"| {k} | {med[k]:.0f} | {', '.join(f'{x:.0f}' for x in v)} |")
print()
print("| ratio | value | SPEC §9 target |")
print("|---|---:|---|")
def ratio(label, a, b, target):
    per_round = [x / y for x, y in zip(runs[a], runs[b])]
    print(f"| {label} | {med[a] / med[b]:.3f} (per round: {', '.join(f'{r:.3f}' for r in per_round)}) | {target} |")
for c in (1, 4):
    ratio(f"layer / pgbench, {c} thread(s)", f"layer_t{c}", f"pgbench_c{c}", "≥ 0.90")
    ratio(f"layer / raw Diesel, {c} thread(s)", f"layer_t{c}", f"raw_diesel_t{c}", "≥ 0.95")
    ratio(f"raw Diesel / pgbench, {c} thread(s)", f"raw_diesel_t{c}", f"pgbench_c{c}", "(reference: level)")
ratio("layer / plain r2d2 pool, 4 threads, pool of 4", "layer_t4", "r2d2_t4_pool4", "(diagnostic)")
ratio("plain r2d2 pool / raw Diesel, 4 threads", "r2d2_t4_pool4", "raw_diesel_t4", "(diagnostic)")
ratio("64 threads / 8 threads, pool of 8", "layer_t64_pool8", "layer_t8_pool8", "≥ 0.95")
ratio("plain r2d2: 64 threads / 8 threads, pool of 8", "r2d2_t64_pool8", "r2d2_t8_pool8", "(diagnostic)")
EOF
