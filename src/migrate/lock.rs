//! One migration run at a time per database, however many instances start at once.
//!
//! - **PostgreSQL**: a session advisory lock ([`LOCK_KEY`]), taken by polling
//!   `pg_try_advisory_lock` with delays from [`crate::backoff`] (from [`POLL_FIRST`] up to
//!   [`POLL_CAP`]), logged every [`SLICE`], until `DATABASE_STARTUP_WAIT_MS`. Not with a
//!   blocking `pg_advisory_lock` (as Lemmy does, and as this module did): a waiter blocked in
//!   that statement holds a snapshot for the whole wait, and `CREATE INDEX CONCURRENTLY` run by
//!   the holder (a `run_in_transaction = false` migration) waits for every transaction with
//!   an older snapshot to end — the holder waits for the waiter, the waiter for the holder,
//!   and PostgreSQL reports a deadlock (`tests/migrations_concurrently.rs`, 8 starters, found
//!   it). A poll is a short statement; between polls a waiter holds nothing. The cost is up to
//!   [`POLL_CAP`] of delay after the release. The lock is then verified: through a
//!   transaction-mode pooler the next statement may run on another server session, where it
//!   is not held.
//! - **SQLite**: one `BEGIN IMMEDIATE` transaction around the whole run takes the database's
//!   write lock, which plays the advisory lock's part; other processes wait on `busy_timeout`.

use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use diesel::{PgConnection, SqliteConnection};
use tracing::field::Empty;

use crate::backoff::Backoff;
use crate::conn::DbConnection;
use crate::error::{Error, MigrateError, Result};
use crate::redact::scrub;

/// The key of the PostgreSQL session advisory lock held while migrating (`"TASKSTOR"` in
/// ASCII). To see who holds it: `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND
/// granted AND classid = 1413567307 AND objid = 1398034258`.
pub const LOCK_KEY: i64 = 0x5441_534B_5354_4F52;

/// How often a waiting instance logs.
const SLICE: Duration = Duration::from_secs(2);

/// The first delay between two polls for the lock.
const POLL_FIRST: Duration = Duration::from_millis(20);

/// The longest delay between two polls: the most a waiter adds after the holder lets go.
const POLL_CAP: Duration = Duration::from_millis(250);

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
    if !try_lock(pg)? {
        tracing::info!(
            limit_ms = millis(wait),
            "waiting for the migration lock: another instance is migrating"
        );
        let mut delays = Backoff::new(POLL_FIRST, POLL_CAP).until(start + wait);
        let mut logged = Instant::now();
        loop {
            let Some(delay) = delays.next() else {
                return Err(MigrateError::LockTimeout {
                    limit: wait,
                    key: LOCK_KEY,
                    holder: lock_holder(pg),
                }
                .into());
            };
            std::thread::sleep(delay);
            if try_lock(pg)? {
                break;
            }
            if logged.elapsed() >= SLICE {
                logged = Instant::now();
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

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    application_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    client: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    connected_ms: i64,
}

/// Who holds the migration lock, for [`MigrateError::LockTimeout`]: one query on `pg_locks`
/// (a session lock on a bigint key is `classid` = high 32 bits, `objid` = low 32 bits,
/// `objsubid` 1) joined with `pg_stat_activity`.
fn lock_holder(pg: &mut PgConnection) -> String {
    let sql = "SELECT l.pid, coalesce(a.application_name, '') AS application_name, \
                      coalesce(host(a.client_addr), 'local socket') AS client, \
                      coalesce(a.state, '') AS state, \
                      greatest(extract(epoch FROM now() - a.backend_start) * 1000, 0)::bigint \
                          AS connected_ms \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                  AND l.classid = ($1::bigint)::oid AND l.objid = ($2::bigint)::oid \
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let (classid, objid) = (LOCK_KEY >> 32, LOCK_KEY & 0xFFFF_FFFF);
    match diesel::sql_query(sql)
        .bind::<BigInt, _>(classid)
        .bind::<BigInt, _>(objid)
        .get_result::<Holder>(pg)
        .optional()
    {
        Ok(Some(h)) => format!(
            "held by pid {} (application_name {:?}, from {}, {}, connected {:.1} s)",
            h.pid,
            h.application_name,
            h.client,
            h.state,
            h.connected_ms as f64 / 1000.0
        ),
        Ok(None) => "its holder let go just as the wait ended: start again".to_owned(),
        Err(e) => format!("the holder could not be read: {}", scrub(&e.to_string())),
    }
}

/// One `pg_try_advisory_lock`: a short statement that never waits.
fn try_lock(pg: &mut PgConnection) -> Result<bool> {
    Ok(diesel::select(
        diesel::dsl::sql::<Bool>("pg_try_advisory_lock(")
            .bind::<BigInt, _>(LOCK_KEY)
            .sql(")"),
    )
    .get_result::<bool>(pg)?)
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
