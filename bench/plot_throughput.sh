#!/usr/bin/env bash
# Throughput vs threads of the point query (get by owner and id) for the layer, raw Diesel (one
# dedicated connection per thread) and a plain diesel::r2d2 pool, one run, plotted to
# bench/throughput_vs_threads.png (issue 14 item 5). Pool of 4 for the layer and r2d2.
#
#   bench/plot_throughput.sh [SECONDS_PER_POINT=3]
set -euo pipefail
SECS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/bench/out/plot
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN_URL=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
URL=${ADMIN_URL%/*}/taskstore_bench_throughput
cleanup() { "$PGBIN/psql" -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS taskstore_bench_throughput WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
PY=$("$ROOT/bench/sqlmodel/setup.sh")
cd "$ROOT"
cargo build --release --example throughput
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/throughput
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" prepare "$OUT"
echo "mode threads ops_per_sec" > "$OUT/throughput.txt"
echo "uptime before: $(uptime)" > "$OUT/load.txt"
for threads in 1 2 4 8 16; do
    for mode in layer raw r2d2; do
        ops=$("$BIN" run "$URL" "$OUT/keys.tsv" "$mode" "$threads" 4 "$SECS" 2>>"$OUT/acquire.txt" | sed -n 's/^ops_per_sec=//p')
        echo "$mode $threads $ops" | tee -a "$OUT/throughput.txt"
    done
done
echo "uptime after: $(uptime)" >> "$OUT/load.txt"
"$PY" - "$OUT/throughput.txt" "$ROOT/bench/throughput_vs_threads.png" "$(cat "$OUT/load.txt" | tr '\n' ' ')" <<'PY'
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
fig, ax = plt.subplots(figsize=(7, 4.5))
for mode, label in (("layer", "taskstore (pool of 4)"), ("raw", "raw Diesel, a connection per thread"), ("r2d2", "diesel::r2d2 pool of 4, no layer")):
    pts = [(int(t), float(o)) for m, t, o in rows if m == mode]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
ax.set_xscale("log", base=2)
ax.set_xlabel("threads")
ax.set_ylabel("get by (owner, id), operations/s")
ax.set_title("Point-query throughput vs threads, PostgreSQL 15 on loopback, 2 vCPU", fontsize=10)
ax.text(0.01, -0.18, sys.argv[3][:150], transform=ax.transAxes, fontsize=6)
ax.legend()
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)

# The layer's pool acquisition wait, p50 and p99 per thread count (the example's own summary
# line; the full distribution is not recorded by examples/throughput).
import re
acq = []
for line in open(sys.argv[1].replace("throughput.txt", "acquire.txt")):
    m = re.search(r"layer threads=(\d+) .*acquire p50=(\d+) µs p99=(\d+) µs", line)
    if m:
        acq.append(tuple(int(x) for x in m.groups()))
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot([a[0] for a in acq], [max(a[1], 1) for a in acq], marker="o", label="p50")
ax.plot([a[0] for a in acq], [max(a[2], 1) for a in acq], marker="o", label="p99")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("threads (pool of 4)")
ax.set_ylabel("connection acquisition wait, µs")
ax.set_title("taskstore pool acquisition wait vs threads (same run)", fontsize=10)
ax.legend()
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(sys.argv[2].replace("throughput_vs_threads", "acquisition_wait_vs_threads"), dpi=110)
PY
echo "wrote bench/throughput_vs_threads.png bench/acquisition_wait_vs_threads.png"
