//! The statements of a transaction: `BEGIN` with its options, `COMMIT` with its failures
//! sorted into what a caller can act on, and SQLite's read-only switch.

use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
    TransactionManagerStatus,
};
use diesel::r2d2::R2D2Connection;
use diesel::result::Error as DieselError;

use super::{IsolationLevel, TxOptions};
use crate::config::{BackendKind, Config};
use crate::conn::DbConnection;
use crate::error::{DbErrorKind, Error};
use crate::pool::Conn;

pub(super) type Tm = <DbConnection as Connection>::TransactionManager;

/// The session timeouts as transaction-local settings, for connections behind a
/// transaction-mode pooler (`DATABASE_PREPARED_STATEMENTS=false`): PgBouncer drops the
/// `options` startup parameter that carries them on a direct connection, so the server
/// sessions it hands out have the server's defaults. Sent in the same simple-query batch as
/// `BEGIN` (no extra round trip), they hold for the transaction and end with it, so nothing
/// reaches another client of the pooler. `None` on a direct connection and on SQLite.
///
/// The values are validated integers from the configuration (milliseconds), never user input.
pub(crate) fn pooler_locals(config: &Config) -> Option<String> {
    let session = config.session();
    if session.prepared_statements || config.database_url().backend() != BackendKind::Postgres {
        return None;
    }
    let mut sql = String::new();
    for (name, value) in [
        ("statement_timeout", session.statement_timeout),
        ("lock_timeout", session.lock_timeout),
        (
            "idle_in_transaction_session_timeout",
            session.idle_in_transaction_timeout,
        ),
    ] {
        sql.push_str("; SET LOCAL ");
        sql.push_str(name);
        sql.push_str(" = ");
        sql.push_str(&value.as_millis().to_string());
    }
    Some(sql)
}

/// `BEGIN` with the options, as the top-level transaction of Diesel's transaction manager so
/// that nested calls become savepoints; `locals` ([`pooler_locals`]) ride in the same batch.
pub(super) fn begin(
    conn: &mut DbConnection,
    opts: &TxOptions,
    locals: Option<&str>,
) -> Result<(), Error> {
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
            if let Some(locals) = locals {
                sql.push_str(locals);
            }
            if let Some(owner) = opts.owner {
                // A `Uuid`'s hyphenated form is hex digits and hyphens only: nothing a caller
                // types reaches this text, and the quotes cannot be closed by it.
                sql.push_str("; SELECT set_config('taskstore.user_id', '");
                sql.push_str(&owner.0.hyphenated().to_string());
                sql.push_str("', true)");
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
pub(super) fn end_read_only(conn: &mut Conn, opts: &TxOptions) {
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
pub(super) fn commit(conn: &mut Conn) -> Result<(), Error> {
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
