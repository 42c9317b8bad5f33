#!/usr/bin/env bash
# Creates the benchmarks' Python virtualenv, bench/out/venv (gitignored, with bench/out/), with
# the pinned requirements.txt from PyPI, once: a second run with the same requirements.txt and
# the same python3 does nothing. Prints the venv's python path on stdout (pip's output goes to
# stderr). Used by bench/sqlmodel/run.sh and bench/plot_throughput.sh.
#
# Needs python3 with its venv module (Debian: apt-get install python3-venv).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${TASKSTORE_BENCH_VENV:-$(cd "$HERE/../.." && pwd)/bench/out/venv}
STAMP=$VENV/.requirements.sha256
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1) $(python3 --version 2>&1)"
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
    if ! python3 -m venv --clear "$VENV" >&2; then
        echo "setup.sh: python3 -m venv failed; install the venv module (apt-get install python3-venv) and rerun" >&2
        exit 1
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" >&2
    echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
