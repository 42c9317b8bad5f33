//! Transactions on a pool: what [`Database::with_transaction`](crate::Database::with_transaction)
//! and [`Database::with_transaction_opts`](crate::Database::with_transaction_opts) run, and
//! [`nested`] savepoints.
//!
//! The closure gets `&mut DbConnection`, the same type repository functions take, so the same
//! code runs inside and outside a transaction:
//!
//! ```
//! # fn main() -> Result<(), taskstore::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
//! # let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
//! # let db = taskstore::Database::connect(&config)?;
//! use diesel::prelude::*;
//! use taskstore::schema::users;
//!
//! let count = db.with_transaction(|conn| {
//!     // any repository call taking `&mut DbConnection` works here
//!     Ok::<_, taskstore::Error>(users::table.count().get_result::<i64>(conn)?)
//! })?;
//! assert_eq!(count, 0);
//! # Ok(()) }
//! ```
//!
//! # Outcomes
//!
//! - `Ok` commits and returns the value.
//! - `Err` rolls back and returns the closure's own error, unchanged.
//! - A panic in the closure discards the connection (closing it makes the server roll the
//!   transaction back, on both backends, without a round trip that could hang while
//!   unwinding); it is never returned to the pool. The panic then continues.
//! - A nested call — [`nested`], or Diesel's `conn.transaction(..)` on the closure's
//!   connection — is a savepoint: its `Err` rolls back only what it did. (Calling
//!   `db.with_transaction` again inside the closure is *not* nested: it checks out a second
//!   connection and runs an independent transaction, which also holds two pool slots.)
//!
//! # Re-runs
//!
//! A serialization failure (SQLSTATE 40001) or deadlock (40P01) — from a statement in the
//! closure or from `COMMIT` — rolls back and re-runs **the whole closure** on a fresh
//! transaction, up to [`TxOptions::retry_attempts`] times (default `DATABASE_TX_RETRY_ATTEMPTS`)
//! with the crate's backoff (exponential, equal jitter; see `backoff`) starting at `DATABASE_RETRY_BASE_DELAY_MS`. A single
//! statement is never retried inside a transaction: after a conflict the transaction's earlier
//! reads are stale, so only re-running everything is correct. Because the closure may run more
//! than once, **it must not have side effects outside the database** (sending mail, pushing to
//! a queue, incrementing an in-memory counter): do those after `with_transaction` returns.
//!
//! Which errors are re-run is decided by [`TransactionError::is_retryable`]; the closure's error
//! type implements [`TransactionError`] (done for [`Error`]; see the trait for an application
//! error type).
//!
//! # Commit outcome unknown
//!
//! When the connection is lost while `COMMIT` is in flight, the client cannot know whether the
//! server committed: the result is [`Error::CommitUnknown`], never re-run automatically, and the
//! connection is discarded. Resolve it by reading back what the transaction wrote: ids are
//! client-generated UUID v7, so a create can be checked by id (`get` it; if it exists the
//! commit happened) and repeated safely when it does not (a repeated insert with the same id is
//! a `Conflict`, never a duplicate). For updates, compare the row's `version`.
//!
//! A connection lost *before* `COMMIT` (for example a backend killed while the closure runs)
//! is an ordinary error from the statement that noticed it (`Database { kind: Disconnected }`):
//! nothing was committed and the closure can be run again.
//!
//! # Tracing
//!
//! Each call runs in a `debug`-level span `transaction` with the fields `pool`, `read_only`,
//! `isolation` and `runs` (how many times the closure ran); the acquisitions inside it open
//! their own `acquire` spans. The closure and its values are never recorded.
//!
//! # Isolation and read-only per backend
//!
//! | option | PostgreSQL | SQLite |
//! |---|---|---|
//! | default | `BEGIN` (server default, normally read committed) | `BEGIN IMMEDIATE` |
//! | [`IsolationLevel::ReadCommitted`] | `ISOLATION LEVEL READ COMMITTED` | serializable (SQLite has one writer at a time, so every level is serializable) |
//! | [`IsolationLevel::RepeatableRead`] | `ISOLATION LEVEL REPEATABLE READ` | serializable |
//! | [`IsolationLevel::Serializable`] | `ISOLATION LEVEL SERIALIZABLE` | serializable |
//! | read-only | `READ ONLY` | `PRAGMA query_only = ON` for the transaction, `BEGIN DEFERRED` |
//!
//! SQLite write transactions start with `BEGIN IMMEDIATE`: a deferred transaction that reads
//! and then writes has to upgrade its lock, and when another connection wrote in between the
//! upgrade fails at once with `SQLITE_BUSY` (no `busy_timeout` wait can help). Taking the write
//! lock up front makes writers queue on `busy_timeout` instead, so SQLite transactions never
//! need a re-run. When the lock is not free within `busy_timeout` the error is
//! [`Error::QueryTimeout`], as PostgreSQL's lock timeout is, and it is not re-run.

mod options;
mod statements;

use std::panic::Location;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use diesel::connection::TransactionManager;

pub use options::{IsolationLevel, TransactionError, TxOptions};
pub(crate) use statements::pooler_locals;
use statements::{Tm, begin, commit, end_read_only};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::conn::DbConnection;
use crate::error::Error;
use crate::models::UserId;
use crate::pool::{Conn, Pool};

/// Longest pause between two runs of a conflicting transaction.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Runs `f` in a savepoint of the transaction `conn` is in: `Ok` releases it, `Err` rolls back
/// to it (only `f`'s work is undone; the outer transaction goes on) and returns `f`'s error.
/// Outside a transaction it is a write transaction, begun as [`Database::with_transaction`]
/// begins one (`BEGIN IMMEDIATE` on SQLite, so that a transaction which reads before it writes
/// waits for the write lock under `busy_timeout` instead of failing at once). Diesel's
/// `conn.transaction(..)` is a savepoint too inside a transaction, but outside one it begins a
/// deferred transaction on SQLite: use this for writes.
///
/// [`Database::with_transaction`]: crate::Database::with_transaction
///
/// ```
/// # fn main() -> Result<(), taskstore::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
/// # let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
/// # let db = taskstore::Database::connect(&config)?;
/// db.with_transaction(|conn| {
///     let optional: Result<(), taskstore::Error> = taskstore::tx::nested(conn, |_conn| {
///         Err(taskstore::Error::validation("title", "too long"))
///     });
///     assert!(optional.is_err()); // rolled back to the savepoint; the outer work stays
///     Ok::<_, taskstore::Error>(())
/// })?;
/// # Ok(()) }
/// ```
pub fn nested<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<Error>,
{
    nested_opts(conn, &TxOptions::default(), f)
}

/// [`nested`] that, when it begins the transaction itself (outside one), begins it with `opts`
/// (the repositories' bulk writes pass [`TxOptions::owner`], which rides in the `BEGIN` batch
/// at no extra round trip); inside a transaction it is a savepoint and `opts` is not used.
pub(crate) fn nested_opts<T, E, F>(conn: &mut DbConnection, opts: &TxOptions, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<Error>,
{
    let outermost = Tm::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(|e| E::from(Error::from(e)))?
        .is_none();
    if outermost {
        begin(conn, opts, None).map_err(E::from)?;
    } else {
        Tm::begin_transaction(conn).map_err(|e| E::from(Error::from(e)))?;
    }
    match f(conn) {
        Ok(value) => {
            Tm::commit_transaction(conn).map_err(|e| E::from(Error::from(e)))?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = Tm::rollback_transaction(conn) {
                // The outer transaction is broken now and will fail; the caller's error is
                // the one worth returning.
                tracing::warn!(error = %Error::from(rollback), "rolling back to a savepoint failed");
            }
            Err(error)
        }
    }
}

/// Runs one task call `f` in a transaction scoped to `owner` on `conn` (already checked out
/// and trusted): `BEGIN` with `taskstore.user_id` (and the pooler's `locals`) in one batch,
/// `f`, then `COMMIT`, or `ROLLBACK` when `f` fails. No re-runs (the call outside a transaction
/// would not re-run either) and not counted as an application transaction in the pool's
/// statistics. The database layer's task calls (`database::owner_scoped`) use it when
/// row-level security applies to the session.
pub(crate) fn scoped<T>(
    conn: &mut Conn,
    owner: UserId,
    locals: Option<&str>,
    f: impl FnOnce(&mut DbConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    begin(conn, &TxOptions::new().owner(owner), locals)?;
    match f(conn) {
        Ok(value) => commit(conn).map(|()| value),
        Err(error) => {
            if let Err(rollback) = Tm::rollback_transaction(conn) {
                tracing::debug!(error = %Error::from(rollback), "rollback failed; discarding the connection");
                conn.discard();
            }
            Err(error)
        }
    }
}

/// Why one run of the closure did not produce a value.
struct Failure<E> {
    error: E,
    retryable: bool,
}

/// Runs `f` in a transaction on a connection from `pool`, re-running the whole closure on
/// conflicts as the [module documentation](self) says; `None`s in `opts` take their value from
/// `config`. [`Database::with_transaction_opts`](crate::Database::with_transaction_opts) is
/// this on the primary.
#[track_caller]
#[tracing::instrument(
    name = "transaction",
    level = "debug",
    skip_all,
    fields(pool = %pool.name(), read_only = opts.read_only, isolation = ?opts.isolation, runs)
)]
pub(crate) fn run<T, E, F>(pool: &Pool, config: &Config, opts: TxOptions, mut f: F) -> Result<T, E>
where
    F: FnMut(&mut DbConnection) -> Result<T, E>,
    E: From<Error> + TransactionError,
{
    let location = Location::caller();
    let max_reruns = opts.retry_attempts.unwrap_or(config.tx_retry_attempts());
    let base = opts
        .retry_base_delay
        .unwrap_or(config.pool().retry_base_delay);
    let start = Instant::now();
    let mut delays = Backoff::new(base, MAX_RETRY_DELAY);
    let locals = pooler_locals(config);
    let mut run = 0u32;
    loop {
        run += 1;
        tracing::Span::current().record("runs", run);
        let failure = match run_once(pool, location, &opts, locals.as_deref(), &mut f) {
            Ok(value) => {
                if run > 1 {
                    tracing::debug!(
                        runs = run,
                        elapsed_ms = start.elapsed().as_millis() as u64,
                        "transaction committed after re-runs"
                    );
                }
                return Ok(value);
            }
            Err(failure) => failure,
        };
        if !failure.retryable || run > max_reruns {
            if failure.retryable {
                tracing::warn!(runs = run, error = ?failure.error.as_taskstore_error(), "transaction still conflicting after DATABASE_TX_RETRY_ATTEMPTS re-runs; giving up");
            }
            return Err(failure.error);
        }
        let delay = delays.next().unwrap_or(MAX_RETRY_DELAY);
        pool.counters().tx_retried.incr();
        tracing::debug!(
            run,
            max_reruns,
            delay_ms = delay.as_millis() as u64,
            error = ?failure.error.as_taskstore_error(),
            "transaction conflict; re-running the whole transaction"
        );
        // The connection went back to the pool: a sleeping caller holds none.
        std::thread::sleep(delay);
    }
}

/// One run: check out, begin, run `f`, commit or roll back.
fn run_once<T, E, F>(
    pool: &Pool,
    location: &'static Location<'static>,
    opts: &TxOptions,
    locals: Option<&str>,
    f: &mut F,
) -> Result<T, Failure<E>>
where
    F: FnMut(&mut DbConnection) -> Result<T, E>,
    E: From<Error> + TransactionError,
{
    let mut conn = pool
        .acquire(location)
        .map_err(|e| Failure {
            error: E::from(e),
            retryable: false,
        })?
        .trusted();
    if let Err(e) = begin(&mut conn, opts, locals) {
        conn.note_error(&e);
        end_read_only(&mut conn, opts);
        // Nothing ran yet: a connection found dead at BEGIN can be swapped for another.
        let retryable = e.is_transaction_retryable() || e.is_disconnect();
        return Err(Failure {
            error: E::from(e),
            retryable,
        });
    }

    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&mut conn)));
    match outcome {
        Err(payload) => {
            conn.discard();
            pool.counters().tx_rolled_back.incr();
            tracing::error!(taken_at = %conn.taken_at(), "panic inside a transaction; the connection is discarded, which rolls the transaction back");
            drop(conn);
            panic::resume_unwind(payload)
        }
        Ok(Err(error)) => {
            if let Err(rollback) = Tm::rollback_transaction(&mut conn) {
                let rollback = Error::from(rollback);
                tracing::debug!(error = %rollback, "rollback failed; discarding the connection");
                conn.discard();
            }
            if let Some(e) = error.as_taskstore_error() {
                conn.note_error(e);
            }
            end_read_only(&mut conn, opts);
            pool.counters().tx_rolled_back.incr();
            let retryable = error.is_retryable();
            tracing::debug!(retryable, error = ?error.as_taskstore_error(), taken_at = %conn.taken_at(), "transaction rolled back");
            Err(Failure { error, retryable })
        }
        Ok(Ok(value)) => match commit(&mut conn) {
            Ok(()) => {
                end_read_only(&mut conn, opts);
                pool.counters().tx_committed.incr();
                tracing::trace!(taken_at = %conn.taken_at(), "transaction committed");
                Ok(value)
            }
            Err(e) => {
                conn.note_error(&e);
                if matches!(e, Error::CommitUnknown { .. }) {
                    tracing::error!(error = %e, taken_at = %conn.taken_at(), "connection lost during COMMIT; the outcome is unknown");
                } else {
                    end_read_only(&mut conn, opts);
                    pool.counters().tx_rolled_back.incr();
                }
                let retryable = e.is_transaction_retryable();
                Err(Failure {
                    error: E::from(e),
                    retryable,
                })
            }
        },
    }
}
