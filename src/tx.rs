//! Transactions: [`Database::with_transaction`] and [`Database::with_transaction_opts`].
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
//! need a re-run; a `Busy` error (the lock was not free within `busy_timeout`) is not re-run,
//! like PostgreSQL's lock timeout.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
    TransactionManagerStatus,
};
use diesel::r2d2::R2D2Connection;
use diesel::result::Error as DieselError;

use crate::backoff::Backoff;
use crate::db::{Conn, Database, DbConnection};
use crate::error::{DbErrorKind, Error};

/// Longest pause between two runs of a conflicting transaction.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Transaction isolation level. See the [module docs](self) for what each means on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Each statement sees data committed before it began.
    ReadCommitted,
    /// The transaction sees one snapshot; concurrent updates of the same row fail with a
    /// serialization failure (re-run automatically).
    RepeatableRead,
    /// As if transactions ran one after another; conflicts fail with a serialization failure
    /// (re-run automatically).
    Serializable,
}

/// Options for [`Database::with_transaction_opts`]. `TxOptions::default()` is the backend's
/// default isolation, read-write, and `DATABASE_TX_RETRY_ATTEMPTS` re-runs.
///
/// ```
/// use taskstore::tx::{IsolationLevel, TxOptions};
/// let opts = TxOptions::new().isolation(IsolationLevel::Serializable).retry_attempts(10);
/// let report = TxOptions::new().read_only();
/// # let _ = (opts, report);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxOptions {
    /// `None`: the backend's default.
    pub isolation: Option<IsolationLevel>,
    /// Refuse writes.
    pub read_only: bool,
    /// Re-runs after a serialization failure or deadlock; `None`: `DATABASE_TX_RETRY_ATTEMPTS`.
    pub retry_attempts: Option<u32>,
    /// First backoff delay; `None`: `DATABASE_RETRY_BASE_DELAY_MS`.
    pub retry_base_delay: Option<Duration>,
}

impl TxOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Shorthand for `isolation(IsolationLevel::Serializable)`.
    pub fn serializable(self) -> Self {
        self.isolation(IsolationLevel::Serializable)
    }

    /// Makes the transaction read-only: writes fail with
    /// `Database { kind: ReadOnlyTransaction }`.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Sets how many times the whole closure may be re-run (0: never).
    pub fn retry_attempts(mut self, attempts: u32) -> Self {
        self.retry_attempts = Some(attempts);
        self
    }

    /// Sets the first backoff delay (doubled on each re-run, at most 1 s, jittered: see `backoff`).
    pub fn retry_base_delay(mut self, delay: Duration) -> Self {
        self.retry_base_delay = Some(delay);
        self
    }
}

/// What [`Database::with_transaction`] needs to know about the closure's error type: where the
/// database error is (to decide on re-runs and to discard a lost connection).
///
/// Implemented for [`Error`]. An application error type that wraps it implements it in a few
/// lines (it also needs `From<taskstore::Error>`, for errors the transaction itself produces):
///
/// ```
/// use taskstore::tx::TransactionError;
///
/// #[derive(Debug)]
/// enum AppError {
///     Db(taskstore::Error),
///     InsufficientFunds,
/// }
///
/// impl From<taskstore::Error> for AppError {
///     fn from(e: taskstore::Error) -> Self {
///         AppError::Db(e)
///     }
/// }
///
/// impl TransactionError for AppError {
///     fn as_taskstore_error(&self) -> Option<&taskstore::Error> {
///         match self {
///             AppError::Db(e) => Some(e),
///             AppError::InsufficientFunds => None, // a business rule: roll back, do not re-run
///         }
///     }
/// }
/// ```
pub trait TransactionError {
    /// The database error inside, if this error is (or wraps) one.
    fn as_taskstore_error(&self) -> Option<&Error>;

    /// True when re-running the whole transaction may succeed: by default a serialization
    /// failure or deadlock ([`Error::is_transaction_retryable`]). Override to re-run on an
    /// application condition too; never return true for [`Error::CommitUnknown`].
    fn is_retryable(&self) -> bool {
        self.as_taskstore_error()
            .is_some_and(Error::is_transaction_retryable)
    }
}

impl TransactionError for Error {
    fn as_taskstore_error(&self) -> Option<&Error> {
        Some(self)
    }
}

type Tm = <DbConnection as Connection>::TransactionManager;

/// Runs `f` in a savepoint of the transaction `conn` is in: `Ok` releases it, `Err` rolls back
/// to it (only `f`'s work is undone; the outer transaction goes on) and returns `f`'s error.
/// Outside a transaction it is a plain transaction. Diesel's `conn.transaction(..)` does the
/// same for closures whose error type is `diesel::result::Error`.
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
    Tm::begin_transaction(conn).map_err(|e| E::from(Error::from(e)))?;
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

/// Why one run of the closure did not produce a value.
struct Failure<E> {
    error: E,
    retryable: bool,
}

impl Database {
    /// Runs `f` inside a transaction with the default [`TxOptions`]. See the [`tx`](crate::tx)
    /// module for the outcomes, re-runs and `CommitUnknown`.
    #[track_caller]
    pub fn with_transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E>,
        E: From<Error> + TransactionError,
    {
        self.with_transaction_opts(TxOptions::default(), f)
    }

    /// Runs `f` inside a transaction with `opts` (isolation level, read-only, re-runs).
    ///
    /// ```
    /// # fn main() -> Result<(), taskstore::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
    /// # let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
    /// # let db = taskstore::Database::connect(&config)?;
    /// use taskstore::tx::TxOptions;
    /// let n = db.with_transaction_opts(TxOptions::new().serializable().read_only(), |conn| {
    ///     use diesel::prelude::*;
    ///     Ok::<_, taskstore::Error>(taskstore::schema::tasks::table.count().get_result::<i64>(conn)?)
    /// })?;
    /// # assert_eq!(n, 0);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn with_transaction_opts<T, E, F>(&self, opts: TxOptions, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E>,
        E: From<Error> + TransactionError,
    {
        let max_reruns = opts
            .retry_attempts
            .unwrap_or(self.config().tx_retry_attempts());
        let base = opts
            .retry_base_delay
            .unwrap_or(self.config().pool().retry_base_delay);
        let start = Instant::now();
        let mut delays = Backoff::new(base, MAX_RETRY_DELAY);
        let mut run = 0u32;
        loop {
            run += 1;
            let failure = match self.run_once(&opts, &mut f) {
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
            let c = self.counters();
            c.incr(&c.tx_retried, "taskstore_tx_retries_total");
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
    #[track_caller]
    fn run_once<T, E, F>(&self, opts: &TxOptions, f: &mut F) -> Result<T, Failure<E>>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E>,
        E: From<Error> + TransactionError,
    {
        let mut conn = self
            .conn()
            .map_err(|e| Failure {
                error: E::from(e),
                retryable: false,
            })?
            .trusted();
        if let Err(e) = begin(&mut conn, opts) {
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
                self.count_rolled_back();
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
                self.count_rolled_back();
                let retryable = error.is_retryable();
                tracing::debug!(retryable, error = ?error.as_taskstore_error(), taken_at = %conn.taken_at(), "transaction rolled back");
                Err(Failure { error, retryable })
            }
            Ok(Ok(value)) => match commit(&mut conn) {
                Ok(()) => {
                    end_read_only(&mut conn, opts);
                    let c = self.counters();
                    c.tx_committed.fetch_add(1, Relaxed);
                    metrics::counter!("taskstore_tx_total", "outcome" => "committed").increment(1);
                    tracing::trace!(taken_at = %conn.taken_at(), "transaction committed");
                    Ok(value)
                }
                Err(e) => {
                    conn.note_error(&e);
                    if matches!(e, Error::CommitUnknown { .. }) {
                        tracing::error!(error = %e, taken_at = %conn.taken_at(), "connection lost during COMMIT; the outcome is unknown");
                    } else {
                        end_read_only(&mut conn, opts);
                        self.count_rolled_back();
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

    fn count_rolled_back(&self) {
        let c = self.counters();
        c.tx_rolled_back.fetch_add(1, Relaxed);
        metrics::counter!("taskstore_tx_total", "outcome" => "rolled_back").increment(1);
    }
}

/// `BEGIN` with the options, as the top-level transaction of Diesel's transaction manager so
/// that nested calls become savepoints.
fn begin(conn: &mut DbConnection, opts: &TxOptions) -> Result<(), Error> {
    match conn {
        DbConnection::Postgres(pg) => {
            let mut sql = String::from("BEGIN");
            let mut modes = Vec::with_capacity(2);
            match opts.isolation {
                None => {}
                Some(IsolationLevel::ReadCommitted) => modes.push("ISOLATION LEVEL READ COMMITTED"),
                Some(IsolationLevel::RepeatableRead) => {
                    modes.push("ISOLATION LEVEL REPEATABLE READ")
                }
                Some(IsolationLevel::Serializable) => modes.push("ISOLATION LEVEL SERIALIZABLE"),
            }
            if opts.read_only {
                modes.push("READ ONLY");
            }
            if !modes.is_empty() {
                sql.push(' ');
                sql.push_str(&modes.join(", "));
            }
            AnsiTransactionManager::begin_transaction_sql(pg, &sql).map_err(Error::from)
        }
        DbConnection::Sqlite(lite) => {
            if !opts.read_only {
                return AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")
                    .map_err(Error::from);
            }
            // The caller lifts it again ([`end_read_only`]), also when BEGIN fails.
            lite.batch_execute("PRAGMA query_only = ON")?;
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN DEFERRED")
                .map_err(Error::from)
        }
    }
}

/// Lifts SQLite's `query_only` after a read-only transaction; a connection that stays
/// read-only is discarded.
fn end_read_only(conn: &mut Conn, opts: &TxOptions) {
    if opts.read_only
        && let DbConnection::Sqlite(lite) = &mut **conn
        && lite.batch_execute("PRAGMA query_only = OFF").is_err()
    {
        conn.discard();
    }
}

/// `COMMIT`, with Diesel's several ways of reporting a failure sorted into what a caller can
/// act on:
///
/// - the server answered with an error (serialization failure at commit, deferred constraint):
///   nothing was committed; the classified error (re-run when retryable);
/// - the connection broke while `COMMIT` was in flight (Diesel leaves its transaction manager
///   in error, or reports `RollbackErrorOnCommit`): [`Error::CommitUnknown`];
/// - the transaction manager was already broken, so `COMMIT` was never sent: nothing was
///   committed; a disconnect error;
/// - no transaction any more (the closure ran a raw `COMMIT` or `ROLLBACK`): an error saying so;
/// - on PostgreSQL, a statement failed inside the transaction and the closure still returned
///   `Ok`: the server would answer `COMMIT` with a silent `ROLLBACK`, so it is rolled back here
///   and reported instead of being acknowledged as committed.
fn commit(conn: &mut Conn) -> Result<(), Error> {
    if matches!(**conn, DbConnection::Postgres(_)) && statement_failed_in_transaction(conn) {
        if Tm::rollback_transaction(conn).is_err() {
            conn.discard();
        }
        return Err(Error::Database {
            kind: DbErrorKind::Other,
            message: "a statement failed inside the transaction but the closure returned Ok; \
                      PostgreSQL has aborted the transaction and nothing was committed — \
                      propagate database errors with `?`, or wrap a statement that may fail \
                      in taskstore::tx::nested (a savepoint)"
                .into(),
        });
    }
    match Tm::commit_transaction(conn) {
        Ok(()) => Ok(()),
        Err(DieselError::BrokenTransactionManager) => {
            conn.discard();
            Err(Error::Database {
                kind: DbErrorKind::Disconnected,
                message: "the connection broke inside the transaction before COMMIT; nothing \
                          was committed"
                    .into(),
            })
        }
        Err(DieselError::NotInTransaction) => {
            conn.discard();
            Err(Error::Database {
                kind: DbErrorKind::Other,
                message: "the transaction was ended inside the closure by a raw COMMIT or \
                          ROLLBACK; its outcome is not known to with_transaction — use \
                          taskstore::tx::nested instead of transaction statements"
                    .into(),
            })
        }
        Err(e) => {
            let rollback_failed = matches!(e, DieselError::RollbackErrorOnCommit { .. });
            let error = Error::from(e);
            // After a failed COMMIT, a healthy connection is out of the transaction; one whose
            // transaction manager is in error (or still inside) lost the server mid-COMMIT.
            let lost = rollback_failed || conn.is_broken() || error.is_disconnect();
            if lost {
                conn.discard();
                let message = match error {
                    Error::CommitUnknown { message } => message,
                    other => other.to_string(),
                };
                Err(Error::CommitUnknown { message })
            } else {
                Err(error)
            }
        }
    }
}

/// Whether Diesel saw the PostgreSQL transaction enter the failed state (`PQTRANS_INERROR`)
/// after the last statement. Diesel tracks it but exposes it only through `Debug`; the test
/// `swallowed_statement_error_is_not_acknowledged` fails if that ever changes.
fn statement_failed_in_transaction(conn: &mut DbConnection) -> bool {
    let status: &mut TransactionManagerStatus = Tm::transaction_manager_status_mut(conn);
    format!("{status:?}").contains("requires_rollback_maybe_up_to_top_level: true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_conflicts_are_retryable() {
        let conflict = Error::Database {
            kind: DbErrorKind::SerializationFailure,
            message: "could not serialize access".into(),
        };
        assert!(conflict.is_retryable());
        let unknown = Error::CommitUnknown {
            message: "server closed the connection".into(),
        };
        assert!(!unknown.is_retryable());
        assert!(!Error::validation("title", "empty").is_retryable());
    }
}
