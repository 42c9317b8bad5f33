#!/usr/bin/env bash
# Creates bench/sqlmodel/.venv with the pinned requirements, once: a second run with the same
# requirements.txt does nothing. Prints the venv's python path.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$HERE/.venv
STAMP=$VENV/.requirements.sha256
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements.txt" >&2
    echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
