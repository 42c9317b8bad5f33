#!/usr/bin/env bash
# The layer's per-call instruction count for checkout + get (`db.tasks().get`) beside raw
# Diesel's get on a dedicated connection, counted by valgrind's callgrind (issue 14): unlike a
# timing, the count does not depend on the machine's load, so a regression shows on a busy
# machine too.
#
#   bench/callgrind_overhead.sh            # count, compare with bench/callgrind_overhead.txt
#   bench/callgrind_overhead.sh --record   # count and write bench/callgrind_overhead.txt
#   BACKENDS=sqlite bench/callgrind_overhead.sh   # one backend (default: sqlite postgres)
#
# Fails (exit 1) when the layer's count on a backend is more than 10 % above the recorded one.
#
# How: examples/call_overhead.rs runs CALLS gets inside `measured_loop`, the only function
# callgrind collects in (--toggle-collect); each side runs with CALLS_LOW and CALLS_HIGH calls
# and the per-call count is (high - low) / (CALLS_HIGH - CALLS_LOW), so the warm-up and any
# fixed cost inside the loop cancel out. Only the client process is counted (the PostgreSQL
# server's work is not, by design: the layer's cost is in the client). The count depends on the
# compiler and the locked dependencies; re-record after a toolchain or Diesel upgrade, and say
# so in the commit. PostgreSQL: the shared server on 127.0.0.1 (TASKSTORE_BENCH_PG_URL), over
# TCP with libpq's default sslmode=prefer, a database created and dropped by the example.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDED=bench/callgrind_overhead.txt
CALLS_LOW=${CALLS_LOW:-200}
CALLS_HIGH=${CALLS_HIGH:-600}
BACKENDS=${BACKENDS:-sqlite postgres}
record=false
[[ ${1:-} == --record ]] && record=true

cargo build --release --quiet --example call_overhead
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/call_overhead
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

collected() { # backend side calls -> instructions collected in measured_loop
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        --toggle-collect='*measured_loop*' "$bin" "$1" "$2" "$3" >"$work/out" 2>"$work/err" ||
        { cat "$work/out" "$work/err" >&2; exit 1; }
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$work/err"
}

per_call() { # backend side
    local low high
    low=$(collected "$1" "$2" "$CALLS_LOW")
    high=$(collected "$1" "$2" "$CALLS_HIGH")
    echo $(((high - low) / (CALLS_HIGH - CALLS_LOW)))
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(rustc --version); valgrind $(valgrind --version)"
printf '| backend | layer (checkout + get) | raw Diesel get | layer / raw | layer - raw | recorded layer | change |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
fail=0
new_record=""
for backend in $BACKENDS; do
    layer=$(per_call "$backend" layer)
    raw=$(per_call "$backend" raw)
    recorded=$(sed -n "s/^${backend}_layer_per_call=//p" "$RECORDED" 2>/dev/null || true)
    change="-"
    if [[ -n $recorded ]]; then
        change=$(python3 -c "print(f'{$layer / $recorded - 1:+.1%}')")
        if ! $record && python3 -c "import sys; sys.exit(0 if $layer > 1.10 * $recorded else 1)"; then
            fail=1
        fi
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$backend" "$layer" "$raw" \
        "$(python3 -c "print(f'{$layer / $raw:.3f}')")" $((layer - raw)) "${recorded:--}" "$change"
    new_record+="${backend}_layer_per_call=$layer"$'\n'"${backend}_raw_per_call=$raw"$'\n'
done

if $record; then
    {
        echo "# Instructions per call counted by bench/callgrind_overhead.sh (callgrind, client only)."
        echo "# Recorded $(date -u +%Y-%m-%d) with $(rustc --version | cut -d' ' -f1-2), valgrind $(valgrind --version | sed 's/valgrind-//')."
        printf '%s' "$new_record"
    } >"$RECORDED"
    echo "recorded in $RECORDED"
elif [[ $fail == 1 ]]; then
    echo "FAIL: the layer's instruction count per call grew by more than 10 % over $RECORDED" >&2
    exit 1
fi
