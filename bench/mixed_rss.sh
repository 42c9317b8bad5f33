#!/usr/bin/env bash
# Resident memory over 1 000 000 mixed operations through the pool, both backends (issue 14:
# "RSS flat within 5 % after warm-up"):
#   bench/mixed_rss.sh [OPS] [THREADS] [POOL]     (default: 1000000 8 4)
#   BACKENDS=sqlite bench/mixed_rss.sh             (one backend; default "postgres sqlite")
#
# Runs examples/mixed_rss.rs once per backend: PostgreSQL in its own database
# (taskstore_bench_mixed_rss on TASKSTORE_BENCH_PG_URL's server, default 127.0.0.1:5432, dropped
# at the end), then SQLite in a temporary file. Each run prints its operation mix, throughput,
# the RSS at every tenth of the run, after warm-up (the first 10 %), the largest after warm-up,
# at the end, and the growth in %; verdict=pass when the largest sample after warm-up is within
# 5 % of the one at the end of warm-up. Every sample goes to bench/mixed_rss.<backend>.tsv
# (ops, seconds, RSS KiB) in a temporary directory whose path is printed.
# Exit status 1 when either backend misses or has a failed operation.
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${1:-1000000}
threads=${2:-8}
pool=${3:-4}
cargo build --release --quiet --example mixed_rss
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/mixed_rss
work=$(mktemp -d /tmp/mixed_rss.XXXXXX)

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo); kernel $(uname -r)"
echo "uptime: $(uptime)"
echo "samples: $work"
status=0
for backend in ${BACKENDS:-postgres sqlite}; do
    echo
    echo "== $backend: $ops operations, $threads threads, pool of $pool"
    "$bin" "$backend" "$ops" "$threads" "$pool" "$work/mixed_rss.$backend.tsv" || status=1
done
echo
echo "uptime: $(uptime)"
exit $status
