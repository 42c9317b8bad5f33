//! One migration up or down, with its bookkeeping, in its own transaction (unless the
//! migration opted out with `run_in_transaction = false`), in a span that records its duration.
//!
//! On PostgreSQL every step runs under a short `lock_timeout`
//! (`DATABASE_MIGRATION_LOCK_TIMEOUT_MS`): a DDL statement waiting for its lock (an `ALTER
//! TABLE` behind a long read, say) makes every later query on that table queue behind it, so
//! the step gives up after the lock timeout, rolls back, lets the queue drain, and is re-tried
//! with backoff (`crate::backoff`) until the run's deadline (`DATABASE_STARTUP_WAIT_MS`). Each
//! wait is logged with what blocked it: after the first timeout, the sessions a second
//! connection saw in `pg_blocking_pids` of the migrating session ([`Watcher`]); before that (or
//! without a configuration to connect with), the sessions holding table locks (`pg_locks`),
//! oldest transaction first. This is the pattern
//! PostgreSQL's documentation of `lock_timeout` and the "lock_timeout and retries" advice of
//! zero-downtime migration guides describe. SQLite has no `lock_timeout`: its DDL waits on
//! `busy_timeout` inside the run's write transaction, and is quick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::Connection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;
use tracing::field::Empty;

use super::checksum;
use super::embedded::{BoxError, Known, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Source, find};
use super::invalid_index;
use crate::backoff::Backoff;
use crate::config::Config;
use crate::conn::DbConnection;
use crate::error::{MigrateError, Result};
use crate::redact::scrub;

/// How long each step may wait for a lock, and when the run gives up re-trying.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds<'a> {
    /// Where a watcher connection can be opened from (none: diagnose from `pg_locks` only).
    pub observer: Option<&'a Config>,
    /// `lock_timeout` of each attempt (`DATABASE_MIGRATION_LOCK_TIMEOUT_MS`).
    pub lock_timeout: Duration,
    /// The run's deadline (its start + `DATABASE_STARTUP_WAIT_MS`).
    pub deadline: Instant,
    /// `DATABASE_STARTUP_WAIT_MS`, for the error message.
    pub wait: Duration,
}

/// The first delay between attempts; they grow up to the lock timeout.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Runs `k`'s `up.sql` and records it (Diesel's row and the checksum). Returns how long it
/// took, in milliseconds.
#[tracing::instrument(
    name = "migrate.apply",
    skip_all,
    fields(version = %k.info.version, name = %k.info.name, duration_ms = Empty)
)]
pub(super) fn apply(
    conn: &mut DbConnection,
    k: &Known,
    source: &Source,
    bounds: &Bounds<'_>,
) -> Result<u64> {
    tracing::info!("applying migration");
    let start = Instant::now();
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        if !k.run_in_transaction {
            // Before every attempt, also a re-try after a lock timeout, which cancels a
            // concurrent build half-way and leaves its index INVALID.
            invalid_index::drop_invalid(conn)?;
        }
        match conn {
            DbConnection::Postgres(pg) => {
                pg.run_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, source, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.run_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, source, &k.info.name)?)?;
            }
        }
        checksum::insert(conn, k)?;
        Ok(())
    };
    bounded(conn, k, bounds, step, |message| MigrateError::ApplyFailed {
        version: k.info.version.clone(),
        name: k.info.name.clone(),
        message,
    })?;
    let duration_ms = record_duration(start.elapsed());
    tracing::info!(version = %k.info.version, name = %k.info.name, duration_ms, "migration applied");
    Ok(duration_ms)
}

/// Runs `k`'s `down.sql` and forgets it.
#[tracing::instrument(
    name = "migrate.unapply",
    skip_all,
    fields(version = %k.info.version, name = %k.info.name, duration_ms = Empty)
)]
pub(super) fn unapply(
    conn: &mut DbConnection,
    k: &Known,
    source: &Source,
    bounds: &Bounds<'_>,
) -> Result<()> {
    let start = Instant::now();
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        match conn {
            DbConnection::Postgres(pg) => {
                pg.revert_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, source, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.revert_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, source, &k.info.name)?)?;
            }
        }
        checksum::delete(conn, k)?;
        Ok(())
    };
    bounded(conn, k, bounds, step, |message| {
        MigrateError::RevertFailed {
            version: k.info.version.clone(),
            name: k.info.name.clone(),
            message,
        }
    })?;
    let duration_ms = record_duration(start.elapsed());
    tracing::info!(version = %k.info.version, name = %k.info.name, duration_ms, "migration reverted");
    Ok(())
}

/// Runs `step` under the lock timeout, re-trying it after a lock timeout until the deadline.
fn bounded(
    conn: &mut DbConnection,
    k: &Known,
    bounds: &Bounds<'_>,
    step: impl Fn(&mut DbConnection) -> std::result::Result<(), BoxError>,
    failed: impl Fn(String) -> MigrateError,
) -> Result<()> {
    let start = Instant::now();
    let mut delays = Backoff::new(FIRST_DELAY, bounds.lock_timeout).until(bounds.deadline);
    let mut attempts = 0u32;
    let mut watcher: Option<Watcher> = None;
    loop {
        attempts += 1;
        // Never wait past the deadline, and never set 0 (which means "no limit").
        let left = bounds.deadline.saturating_duration_since(Instant::now());
        let lock_timeout = bounds.lock_timeout.min(left).max(Duration::from_millis(1));
        let outcome = match conn {
            DbConnection::Postgres(_) => with_lock_timeout(conn, k, lock_timeout, &step),
            DbConnection::Sqlite(_) => in_transaction(conn, k, &step),
        };
        let err = match outcome {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let message = scrub(&err.to_string());
        if !(is_lock_timeout(&message) && matches!(conn, DbConnection::Postgres(_))) {
            return Err(failed(message).into());
        }
        let holders = match watcher.as_ref().and_then(Watcher::take) {
            Some(blockers) => blockers,
            None => lock_holders(conn),
        };
        if watcher.is_none()
            && let Some(config) = bounds.observer
            && let Ok(pid) = backend_pid(conn)
        {
            watcher = Some(Watcher::start(config.clone(), pid));
        }
        let waited_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(
            version = %k.info.version,
            name = %k.info.name,
            attempt = attempts,
            lock_timeout_ms = u64::try_from(lock_timeout.as_millis()).unwrap_or(u64::MAX),
            waited_ms,
            holders = %holders,
            "migration step waited longer than its lock_timeout for a lock and was rolled back \
             so that queries queued behind it can run; re-trying"
        );
        match delays.next() {
            Some(delay) => std::thread::sleep(delay),
            None => {
                return Err(MigrateError::StepLockTimeout {
                    version: k.info.version.clone(),
                    name: k.info.name.clone(),
                    limit: bounds.wait,
                    lock_timeout: bounds.lock_timeout,
                    attempts,
                    holders,
                }
                .into());
            }
        }
    }
}

/// diesel_migrations wraps the statement's error in a type it does not export, so the lock
/// timeout (SQLSTATE 55P03) is recognised by PostgreSQL's message, which the connection layer
/// keeps in English (see `error::classify`).
fn is_lock_timeout(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("canceling statement due to lock timeout")
}

/// Runs `step` with `lock_timeout` set: transaction-local for a transactional step; for one
/// that runs outside a transaction, on the session, and put back afterwards.
fn with_lock_timeout(
    conn: &mut DbConnection,
    k: &Known,
    lock_timeout: Duration,
    step: &impl Fn(&mut DbConnection) -> std::result::Result<(), BoxError>,
) -> std::result::Result<(), BoxError> {
    // An integer from the configuration, bound as a parameter: no text reaches the SQL.
    let ms = i32::try_from(lock_timeout.as_millis()).unwrap_or(i32::MAX);
    let set = |conn: &mut DbConnection, value: &str, local: bool| -> QueryResult<()> {
        diesel::sql_query("SELECT set_config('lock_timeout', $1, $2)")
            .bind::<Text, _>(value)
            .bind::<diesel::sql_types::Bool, _>(local)
            .execute(conn)
            .map(|_| ())
    };
    let value = format!("{ms}ms");
    if k.run_in_transaction {
        conn.transaction(|conn| {
            set(conn, &value, true)?;
            step(conn)
        })
    } else {
        let previous: String =
            diesel::select(diesel::dsl::sql::<Text>("current_setting('lock_timeout')"))
                .get_result(conn)?;
        set(conn, &value, false)?;
        let outcome = step(conn);
        set(conn, &previous, false)?;
        outcome
    }
}

fn in_transaction(
    conn: &mut DbConnection,
    k: &Known,
    step: &impl Fn(&mut DbConnection) -> std::result::Result<(), BoxError>,
) -> std::result::Result<(), BoxError> {
    if k.run_in_transaction {
        conn.transaction(step)
    } else {
        step(conn)
    }
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    application_name: String,
    #[diesel(sql_type = BigInt)]
    transaction_ms: i64,
    #[diesel(sql_type = Text)]
    tables: String,
}

/// The sessions that hold locks on tables of this database, inside a transaction, oldest
/// transaction first (at most 5), from `pg_locks` and `pg_stat_activity`: after a lock
/// timeout the statement no longer waits, so `pg_blocking_pids` of this session is empty;
/// the oldest open transaction holding a lock on the migrated table is the usual culprit.
fn lock_holders(conn: &mut DbConnection) -> String {
    let sql = "SELECT a.pid, coalesce(a.application_name, '') AS application_name, \
                      greatest(extract(epoch FROM now() - a.xact_start) * 1000, 0)::bigint AS transaction_ms, \
                      string_agg(DISTINCT c.relname::text, ', ') AS tables \
                 FROM pg_locks l \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 JOIN pg_class c ON c.oid = l.relation \
                WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() \
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                  AND a.xact_start IS NOT NULL AND c.relkind IN ('r', 'p') \
                  AND c.relnamespace <> 'pg_catalog'::regnamespace \
                GROUP BY a.pid, a.application_name, a.xact_start \
                ORDER BY a.xact_start LIMIT 5";
    match diesel::sql_query(sql).load::<Holder>(conn) {
        Ok(holders) if holders.is_empty() => {
            "no session holds a table lock any more (the blocker has finished)".to_owned()
        }
        Ok(holders) => format!(
            "sessions holding table locks (pg_locks), oldest transaction first: {}",
            holders
            .iter()
            .map(|h| {
                format!(
                    "pid {} (application_name {:?}, transaction open {:.1} s, holds locks on {})",
                    h.pid,
                    h.application_name,
                    h.transaction_ms as f64 / 1000.0,
                    h.tables
                )
            })
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(e) => format!("(could not read pg_locks: {})", scrub(&e.to_string())),
    }
}

fn backend_pid(conn: &mut DbConnection) -> QueryResult<i32> {
    diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()")).get_result(conn)
}

#[derive(QueryableByName)]
struct Blocker {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    application_name: String,
    #[diesel(sql_type = BigInt)]
    transaction_ms: i64,
    #[diesel(sql_type = Text)]
    state: String,
}

/// Watches the migrating session from a connection of its own while its step is re-tried:
/// every 50 ms it reads `pg_blocking_pids` of that session, with each blocker's
/// `application_name`, transaction age and state from `pg_stat_activity`, and keeps the last
/// non-empty answer. The migrating session cannot ask itself: while it waits it runs nothing,
/// and once its lock timeout fires it no longer waits. Stops when dropped (the thread ends at
/// its next poll, and any connect in progress ends within `DATABASE_CONNECT_TIMEOUT_MS`).
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Option<String>>>,
}

impl Watcher {
    fn start(config: Config, pid: i32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(None));
        let (stop_flag, last) = (stop.clone(), seen.clone());
        let spawned = std::thread::Builder::new()
            .name("taskstore-migrate-watch".into())
            .spawn(move || {
                let Ok(mut conn) = super::connect(&config) else {
                    return;
                };
                while !stop_flag.load(Ordering::Relaxed) {
                    if let Ok(blockers) = blockers_of(&mut conn, pid)
                        && !blockers.is_empty()
                    {
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(blockers);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "could not start the migration lock watcher");
        }
        Self { stop, seen }
    }

    /// The blockers last seen, if any (they may date from an earlier attempt of this step:
    /// the last attempt before the deadline can be too short for a poll).
    fn take(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn blockers_of(conn: &mut DbConnection, pid: i32) -> QueryResult<String> {
    let blockers = diesel::sql_query(
        "SELECT a.pid, coalesce(a.application_name, '') AS application_name, \
                coalesce(greatest(extract(epoch FROM now() - a.xact_start) * 1000, 0)::bigint, 0) \
                  AS transaction_ms, \
                coalesce(a.state, '') AS state \
           FROM pg_stat_activity a \
          WHERE a.pid = ANY (pg_blocking_pids($1)) \
          ORDER BY a.xact_start",
    )
    .bind::<Integer, _>(pid)
    .load::<Blocker>(conn)?;
    if blockers.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "blocking sessions (pg_blocking_pids): {}",
        blockers
            .iter()
            .map(|b| format!(
                "pid {} (application_name {:?}, transaction open {:.1} s, {})",
                b.pid,
                b.application_name,
                b.transaction_ms as f64 / 1000.0,
                b.state
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

/// Records `elapsed` on the current span and returns it in milliseconds.
pub(super) fn record_duration(elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    tracing::Span::current().record("duration_ms", ms);
    ms
}
