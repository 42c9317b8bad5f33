#!/usr/bin/env bash
# Deployment shapes on the hot path (issue 13): the layer direct with prepared statements (the
# baseline), direct without them, and through PgBouncer 1.18 in transaction mode without them,
# all in one run against one throw-away cluster (never the shared server); examples/deploy_bench.rs
# measures, this script starts and stops the cluster and the pooler.
#
#   bench/deploy.sh [SECONDS_PER_SLICE=2] [ROUNDS=5]
#
# Needs initdb/pg_ctl (PGBIN, default /usr/lib/postgresql/15/bin) and pgbouncer
# (scripts/install-test-deps.sh). Run as root, it runs the server and the pooler as `postgres`.
set -euo pipefail

SECONDS_PER_SLICE=${1:-2}
ROUNDS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WORK=$(mktemp -d /tmp/taskstore-bench-deploy.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
    [ -f "$WORK/pgbouncer.pid" ] && kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true
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
"$PGBIN/psql" -X -q "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE bench"

cat >"$WORK/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 4
ignore_startup_parameters = extra_float_digits,options
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
echo '"postgres" ""' >"$WORK/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK"/*
as_pg /usr/sbin/pgbouncer -d "$WORK/pgbouncer.ini"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$BOUNCER_PORT") 2>/dev/null && break; sleep 0.1; done

cd "$ROOT"
cargo build --release --quiet --example deploy_bench
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/deploy_bench
DIRECT="postgres://postgres@127.0.0.1:$PG_PORT/bench"
POOLED="postgres://postgres@127.0.0.1:$BOUNCER_PORT/bench"
echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $(/usr/sbin/pgbouncer --version | head -1)"
echo "== bench/deploy.sh $SECONDS_PER_SLICE $ROUNDS"
"$BIN" "$SECONDS_PER_SLICE" "$ROUNDS" "$DIRECT" \
    "direct, prepared|true|$DIRECT" \
    "direct, unprepared|false|$DIRECT" \
    "pgbouncer transaction mode, unprepared|false|$POOLED"
