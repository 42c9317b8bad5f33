#!/usr/bin/env bash
# Issue 14 item 5: two plots from one run, PostgreSQL on TASKSTORE_BENCH_PG_URL.
#
#   bench/throughput_vs_threads.png   point query (get by owner and id), operations/s vs threads
#       (1 .. 256) for the layer (pool of 8), a plain diesel::r2d2 pool of 8, and raw Diesel with
#       a dedicated connection per thread (up to 16 threads only: a connection per thread beyond
#       that would take most of the shared server's max_connections = 100);
#   bench/acquisition_wait_distribution.png   the acquisition-wait distribution (percentile
#       curves from the hdrhistograms examples/contention dumps) at 8, 16, 64 and 256 threads on
#       the layer's pool of 8, and at 8 and 64 threads on plain r2d2.
#
#   bench/plot_throughput.sh [SECONDS_PER_POINT=2] [CONTENTION_ROUNDS=3]
#
# matplotlib comes from a virtualenv the script makes under target/plot-venv (once). Raw data,
# the commands' output and `uptime` before and after land in bench/out/plot/.
set -euo pipefail
SECS=${1:-2}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/bench/out/plot
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ADMIN_URL=${TASKSTORE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
URL=${ADMIN_URL%/*}/taskstore_bench_throughput
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cleanup() { "$PGBIN/psql" -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS taskstore_bench_throughput WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

VENV=$TARGET/plot-venv
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'matplotlib>=3.8,<4'
fi

cd "$ROOT"
cargo build --release --example throughput --example contention
BIN=$TARGET/release/examples
rm -rf "$OUT" && mkdir -p "$OUT/wait"
echo "uptime before: $(uptime)" >"$OUT/load.txt"
date -u +%Y-%m-%dT%H:%MZ >>"$OUT/load.txt"
"$BIN/throughput" prepare "$OUT" >/dev/null
echo "mode threads ops_per_sec" >"$OUT/throughput.txt"
for threads in 1 2 4 8 16 64 256; do
    for mode in layer raw r2d2; do
        if [[ $mode == raw && $threads -gt 16 ]]; then continue; fi
        pool=8
        ops=$("$BIN/throughput" run "$URL" "$OUT/keys.tsv" "$mode" "$threads" "$pool" "$SECS" 2>>"$OUT/acquire.txt" | sed -n 's/^ops_per_sec=//p')
        echo "$mode $threads $ops" | tee -a "$OUT/throughput.txt"
    done
done
CONTENTION_DUMP=$OUT/wait "$BIN/contention" 1 "$ROUNDS" >"$OUT/contention.txt" 2>/dev/null
echo "uptime after: $(uptime)" >>"$OUT/load.txt"
cat "$OUT/load.txt"

"$VENV/bin/python" - "$OUT" "$ROOT/bench" "$(tr '\n' ' ' <"$OUT/load.txt")" <<'PY'
import glob, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, bench, load = sys.argv[1], sys.argv[2], sys.argv[3]

rows = [l.split() for l in open(f"{out}/throughput.txt").read().splitlines()[1:]]
fig, ax = plt.subplots(figsize=(7.5, 4.8))
for mode, label in (("layer", "taskstore, pool of 8"),
                    ("r2d2", "diesel::r2d2, pool of 8, no layer"),
                    ("raw", "raw Diesel, a connection per thread")):
    pts = [(int(t), float(o)) for m, t, o in rows if m == mode and o]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
ax.set_xscale("log", base=2)
ax.set_xlabel("threads")
ax.set_ylabel("get by (owner, id), operations/s")
ax.set_ylim(bottom=0)
ax.set_title("Point-query throughput vs threads, PostgreSQL 15 on loopback, 2 vCPU", fontsize=10)
ax.text(0.0, -0.2, load[:160], transform=ax.transAxes, fontsize=6)
ax.legend(fontsize=8)
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(f"{bench}/throughput_vs_threads.png", dpi=110)

fig, ax = plt.subplots(figsize=(7.5, 4.8))
for path in sorted(glob.glob(f"{out}/wait/wait_*.tsv"), key=lambda p: (("r2d2" in p), int(p.rsplit("_", 1)[1][:-4]))):
    mode, threads = os.path.basename(path)[5:-4].split("_")
    pts = [l.split("\t") for l in open(path).read().splitlines()[1:]]
    pts = [(float(q), max(int(v), 1)) for q, v in pts if float(q) < 1.0]
    # x: 1 / (1 - quantile), so p50, p90, p99, p99.9 are evenly spaced.
    ax.plot([1 / (1 - q) for q, _ in pts], [v for _, v in pts],
            linestyle="--" if mode == "r2d2" else "-",
            label=f"{'plain r2d2' if mode == 'r2d2' else 'taskstore'}, {threads} threads")
ax.set_xscale("log")
ax.set_yscale("log")
ticks = [2, 10, 100, 1000, 10000]
ax.set_xticks(ticks, ["p50", "p90", "p99", "p99.9", "p99.99"])
ax.set_xlabel("percentile")
ax.set_ylabel("connection acquisition wait, µs")
ax.set_title("Acquisition wait distribution, pool of 8 (examples/contention, same run)", fontsize=10)
ax.text(0.0, -0.2, load[:160], transform=ax.transAxes, fontsize=6)
ax.legend(fontsize=7)
ax.grid(True, alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(f"{bench}/acquisition_wait_distribution.png", dpi=110)
PY
echo "wrote bench/throughput_vs_threads.png bench/acquisition_wait_distribution.png"
