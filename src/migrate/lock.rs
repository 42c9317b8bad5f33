//! One migration run at a time per database, however many instances start at once.
//!
//! - **PostgreSQL**: a session advisory lock ([`LOCK_KEY`]). Taken with a blocking
//!   `pg_advisory_lock`, as Lemmy does, rather than by polling `pg_try_advisory_lock`: the
//!   server queues the waiters and wakes the next one the moment the holder lets go, so a
//!   waiting instance costs no round trips, adds no polling delay after the release, and shows
//!   up in `pg_locks` as waiting for the key. The wait is cut into slices of at most
//!   [`SLICE`], each bounded by a transaction-local `lock_timeout`, so that the wait is logged
//!   between slices and ends at `DATABASE_STARTUP_WAIT_MS` — so there is no retry loop here to
//!   take delays from [`crate::backoff`]. The lock is then verified: through a
//!   transaction-mode pooler the next statement may run on another server session, where it
//!   is not held.
//! - **SQLite**: one `BEGIN IMMEDIATE` transaction around the whole run takes the database's
//!   write lock, which plays the advisory lock's part; other processes wait on `busy_timeout`.

use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{PgConnection, SqliteConnection};
use tracing::field::Empty;

use crate::conn::DbConnection;
use crate::error::{Error, MigrateError, Result};
use crate::redact::scrub;

/// The key of the PostgreSQL session advisory lock held while migrating (`"TASKSTOR"` in
/// ASCII). To see who holds it: `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND
/// granted AND classid = 1413567307 AND objid = 1398034258`.
pub const LOCK_KEY: i64 = 0x5441_534B_5354_4F52;

/// The longest single blocking wait for the lock: how often a waiting instance logs.
const SLICE: Duration = Duration::from_secs(2);

/// Runs `f` on `conn` while holding the migration lock, waiting at most `wait` for it (on
/// SQLite, `busy_timeout` bounds the wait instead). The lock is released afterwards, also
/// when `f` fails.
pub(super) fn locked<T>(
    conn: &mut DbConnection,
    wait: Duration,
    f: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    match conn {
        DbConnection::Postgres(pg) => lock_postgres(pg, wait)?,
        DbConnection::Sqlite(lite) => begin_immediate(lite)?,
    }
    let result = f(conn);
    match conn {
        DbConnection::Postgres(pg) => {
            // Only our key: the connection may be the caller's, holding locks of its own.
            // Closing the connection would release it too.
            let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(LOCK_KEY)
                .execute(pg);
            result
        }
        DbConnection::Sqlite(lite) => finish_sqlite(lite, result),
    }
}

/// Takes the session advisory lock, waiting at most `wait`, and checks that it stuck.
#[tracing::instrument(
    name = "migrate.lock",
    skip_all,
    fields(limit_ms = millis(wait), waited_ms = Empty)
)]
fn lock_postgres(pg: &mut PgConnection, wait: Duration) -> Result<()> {
    let start = Instant::now();
    let got = diesel::select(
        diesel::dsl::sql::<Bool>("pg_try_advisory_lock(")
            .bind::<BigInt, _>(LOCK_KEY)
            .sql(")"),
    )
    .get_result::<bool>(pg)?;
    if !got {
        tracing::info!(
            limit_ms = millis(wait),
            "waiting for the migration lock: another instance is migrating"
        );
        loop {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(MigrateError::LockTimeout {
                    limit: wait,
                    key: LOCK_KEY,
                }
                .into());
            }
            if lock_within(pg, left.min(SLICE))? {
                break;
            }
            if start.elapsed() < wait {
                tracing::info!(
                    waited_ms = millis(start.elapsed()),
                    limit_ms = millis(wait),
                    "waiting for the migration lock: another instance is migrating"
                );
            }
        }
        let waited_ms = millis(start.elapsed());
        tracing::Span::current().record("waited_ms", waited_ms);
        tracing::info!(waited_ms, "took the migration lock");
    }
    verify_held(pg)
}

/// One blocking `pg_advisory_lock` bounded by `limit`: `Ok(false)` when the limit (or the
/// session's `statement_timeout`, if shorter) ran out first.
fn lock_within(pg: &mut PgConnection, limit: Duration) -> Result<bool> {
    // `lock_timeout = 0` would mean "wait for ever": never round down to it.
    let timeout = format!("{}ms", limit.as_millis().clamp(1, i32::MAX as u128));
    let outcome = pg.transaction(|pg| {
        // Transaction-local, so the session's own lock_timeout is back afterwards; the
        // session-level advisory lock outlives the transaction.
        diesel::sql_query("SELECT set_config('lock_timeout', $1, true)")
            .bind::<Text, _>(&timeout)
            .execute(pg)?;
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(LOCK_KEY)
            .execute(pg)
    });
    match outcome.map_err(Error::from) {
        Ok(_) => Ok(true),
        Err(Error::QueryTimeout { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Through a transaction-mode pooler the lock may have been taken on a server session that
/// the next statement does not run on.
fn verify_held(pg: &mut PgConnection) -> Result<()> {
    let held: bool = diesel::select(
        diesel::dsl::sql::<Bool>(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = ",
        )
        .bind::<BigInt, _>(LOCK_KEY >> 32)
        .sql(" AND objid::bigint = ")
        .bind::<BigInt, _>(LOCK_KEY & 0xFFFF_FFFF)
        .sql(")"),
    )
    .get_result(pg)?;
    if held {
        Ok(())
    } else {
        Err(MigrateError::TransactionModePooler.into())
    }
}

fn begin_immediate(lite: &mut SqliteConnection) -> Result<()> {
    AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE").map_err(|e| {
        match Error::from(e) {
            Error::QueryTimeout { message } => MigrateError::SqliteBusy { message },
            other => MigrateError::Bookkeeping {
                message: format!("could not begin the migration transaction: {other}"),
            },
        }
        .into()
    })
}

fn finish_sqlite<T>(lite: &mut SqliteConnection, result: Result<T>) -> Result<T> {
    type Tm = <SqliteConnection as Connection>::TransactionManager;
    match result {
        Ok(value) => {
            Tm::commit_transaction(lite).map_err(|e| MigrateError::Bookkeeping {
                message: scrub(&format!("could not commit the migration run: {e}")),
            })?;
            Ok(value)
        }
        Err(e) => {
            let _ = Tm::rollback_transaction(lite);
            Err(e)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
