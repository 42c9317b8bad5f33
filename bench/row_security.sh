#!/usr/bin/env bash
# Row-level security on the hot path (issue 13 item 6), in one run against one throw-away
# cluster set up with docs/roles.sql and docs/row-security.sql: owner-scoped transactions
# (TxOptions::owner: get + stats) as a superuser (never subject to policies: the baseline), as
# the table owner (FORCE: the policy is evaluated, its role clause lets every row through), and
# as taskstore_app in taskstore_row_security (every row filtered by the policy); then, as the
# superuser, the same transaction with and without the owner setting in the BEGIN batch; and the
# task handles (`get`, `list`: db.tasks().get/list, which scope themselves to the owner in a
# transaction only where row-level security applies to the session) by the same three roles.
#
#   bench/row_security.sh [SECONDS_PER_SLICE=2] [ROUNDS=5]
#
# Needs initdb/pg_ctl (PGBIN, default /usr/lib/postgresql/15/bin). Run as root, it runs the
# server as `postgres`.
set -euo pipefail

SECONDS_PER_SLICE=${1:-2}
ROUNDS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=$(mktemp -d /tmp/taskstore-bench-deploy.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK"

as_pg "$PGBIN/initdb" -A trust -U postgres --no-sync -E UTF8 --locale=C -D "$WORK/data" >/dev/null
cat >>"$WORK/data/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_buffers = 64MB
CONF
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
ADMIN="postgres://postgres@127.0.0.1:$PG_PORT"
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -v db=bench -f "$ROOT/docs/roles.sql" "$ADMIN/postgres" >/dev/null

cd "$ROOT"
cargo build --release --quiet --example deploy_bench
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/deploy_bench
url() { echo "postgres://$1@127.0.0.1:$PG_PORT/bench"; }
echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
echo "== bench/row_security.sh $SECONDS_PER_SLICE $ROUNDS"
# Migrate and seed as the owner (a 10 ms run), then turn row-level security on.
"$BIN" --ops otx 0.01 1 "$(url taskstore_owner)" "seed|true|$(url taskstore_owner)" >/dev/null
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$ROOT/docs/row-security.sql" "postgres://postgres@127.0.0.1:$PG_PORT/bench" >/dev/null
echo "-- owner-scoped transaction (otx) by role"
"$BIN" --ops otx "$SECONDS_PER_SLICE" "$ROUNDS" "$(url taskstore_owner)" \
    "superuser, no RLS|true|$(url postgres)" \
    "table owner, policy evaluated|true|$(url taskstore_owner)" \
    "taskstore_app, RLS filtering|true|$(url taskstore_app)"
echo "-- the task handles (db.tasks().get, .list) by role: one statement where row-level security"
echo "-- does not apply; BEGIN with the owner, the statement, COMMIT where it does"
"$BIN" --ops get,list "$SECONDS_PER_SLICE" "$ROUNDS" "$(url taskstore_owner)" \
    "superuser, no RLS|true|$(url postgres)" \
    "table owner, policy evaluated|true|$(url taskstore_owner)" \
    "taskstore_app, RLS filtering|true|$(url taskstore_app)"
echo "-- the owner setting in the BEGIN batch (superuser)"
"$BIN" --ops tx,otx "$SECONDS_PER_SLICE" "$ROUNDS" "$(url taskstore_owner)" \
    "superuser|true|$(url postgres)"
