//! [`MigrateError`]: why migrations could not run, one variant per case a caller may handle
//! differently (wait and retry, call an operator, run another release).
//!
//! It lives beside [`Error`](super::Error) rather than in `migrate` so that the error types
//! depend on nothing above them; `taskstore::migrate::MigrateError` names the same type.

use std::time::Duration;

/// Why migrations could not run, carried by [`Error::Migration`](super::Error::Migration).
/// Each message says what to do.
///
/// ```
/// use taskstore::{Error, migrate::MigrateError};
///
/// fn should_retry_later(err: &Error) -> bool {
///     matches!(err, Error::Migration(MigrateError::LockTimeout { .. } | MigrateError::SqliteBusy { .. }))
/// }
/// # assert!(!should_retry_later(&Error::validation("x", "y")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database has applied migrations that this binary does not know: a newer release
    /// migrated it. Refused by a run (and so at start-up).
    #[error(
        "the database has {} applied migration(s) that this binary does not know ({}): a newer \
         release has migrated it. Run that release (or a newer one); to go back to this one, \
         first revert them with the release that applied them (`taskstore migrate revert \
         --steps {}`)",
        versions.len(),
        versions.join(", "),
        versions.len()
    )]
    UnknownApplied {
        /// The unknown versions, oldest first.
        versions: Vec<String>,
    },

    /// Applied migrations whose embedded `up.sql` no longer matches the checksum recorded when
    /// they ran.
    #[error(
        "applied migration(s) changed since they ran: {} (their up.sql no longer matches the \
         checksum in taskstore_migration_checksums). Applied migrations are immutable: restore \
         the original up.sql and put the change in a new migration. If the database already \
         reflects the edited file, delete the migration's row from taskstore_migration_checksums \
         to record the new checksum",
        names.join(", ")
    )]
    ChecksumMismatch {
        /// The migrations' directory names.
        names: Vec<String>,
    },

    /// A revert was refused: the newest applied migrations are unknown to this binary.
    #[error(
        "cannot revert: the newest applied migrations ({}) are unknown to this binary; revert \
         them with the release that applied them first",
        versions.join(", ")
    )]
    RevertBlocked {
        /// The unknown versions.
        versions: Vec<String>,
    },

    /// Another session held the PostgreSQL migration lock for the whole wait (another instance
    /// is migrating, or a session that took the lock is stuck).
    #[error(
        "another session held the migration lock for longer than DATABASE_STARTUP_WAIT_MS ({} \
         ms): {holder}. If it is not an instance migrating, end it (SELECT \
         pg_terminate_backend(pid)), or raise DATABASE_STARTUP_WAIT_MS; to see the holder \
         again: `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid \
         = {} AND objid = {}`",
        limit.as_millis(),
        (key >> 32) as u32,
        *key as u32
    )]
    LockTimeout {
        /// How long the run waited (`DATABASE_STARTUP_WAIT_MS`).
        limit: Duration,
        /// The advisory lock's key ([`crate::migrate::LOCK_KEY`]).
        key: i64,
        /// The session holding the lock when the wait ended, from `pg_locks` and
        /// `pg_stat_activity`: pid, application_name, client address, state and how long it
        /// has been connected (or why it could not be read).
        holder: String,
    },

    /// A migration step kept timing out waiting for a table lock (each attempt bounded by
    /// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS`) until `DATABASE_STARTUP_WAIT_MS` ran out: some
    /// session kept a transaction open on a table the migration alters. Nothing of the step
    /// stayed applied.
    #[error(
        "migration {name} could not take its table locks within DATABASE_STARTUP_WAIT_MS ({} \
         ms): {attempts} attempt(s), each giving up after lock_timeout {} ms so that other \
         queries were not blocked behind it. What blocked it: {holders}. End or wait for \
         those transactions (SELECT pg_terminate_backend(pid)), or raise \
         DATABASE_STARTUP_WAIT_MS, then start again",
        limit.as_millis(),
        lock_timeout.as_millis()
    )]
    StepLockTimeout {
        /// Its version.
        version: String,
        /// Its directory name.
        name: String,
        /// How long the run could wait (`DATABASE_STARTUP_WAIT_MS`).
        limit: Duration,
        /// The lock timeout of each attempt (`DATABASE_MIGRATION_LOCK_TIMEOUT_MS`).
        lock_timeout: Duration,
        /// How many attempts timed out.
        attempts: u32,
        /// What blocked the step: the sessions in `pg_blocking_pids` of the migrating session
        /// as a watcher connection last saw them, else those holding table locks in
        /// `pg_locks` after the last timeout; each with pid, `application_name` and how long
        /// its transaction had been open.
        holders: String,
    },

    /// The advisory lock did not stay on the session that took it: the connection goes
    /// through a transaction-mode pooler, where session locks mean nothing.
    #[error(
        "the migration advisory lock did not stay on this session: the migration URL goes \
         through a transaction-mode pooler (PgBouncer, a -pooler endpoint). Set \
         DATABASE_MIGRATION_URL to the database's direct endpoint"
    )]
    TransactionModePooler,

    /// SQLite's write lock, which serialises migration runs, stayed taken for the whole
    /// `busy_timeout`.
    #[error(
        "could not take SQLite's write lock: {message}; another process is writing to the \
         database: retry when it is done, or raise DATABASE_LOCK_TIMEOUT_MS (SQLite's \
         busy_timeout)"
    )]
    SqliteBusy {
        /// SQLite's message.
        message: String,
    },

    /// A migration's `up.sql` (or its bookkeeping) failed; it was rolled back unless it runs
    /// outside a transaction.
    #[error("migration {name} failed: {message}; {}", apply_advice(message))]
    ApplyFailed {
        /// Its version.
        version: String,
        /// Its directory name.
        name: String,
        /// The database's message, scrubbed of secrets.
        message: String,
    },

    /// A migration's `down.sql` (or its bookkeeping) failed.
    #[error(
        "reverting migration {name} failed: {message}{}",
        privilege_advice(message)
    )]
    RevertFailed {
        /// Its version.
        version: String,
        /// Its directory name.
        name: String,
        /// The database's message, scrubbed of secrets.
        message: String,
    },

    /// The migrations embedded in this binary are inconsistent (a build problem).
    #[error("the embedded migrations are unusable: {message}; rebuild the binary")]
    Source {
        /// What is wrong.
        message: String,
    },

    /// The bookkeeping around the migrations failed: creating or reading Diesel's table or the
    /// checksum table, or committing SQLite's run.
    #[error("migration bookkeeping failed: {message}{}", privilege_advice(message))]
    Bookkeeping {
        /// The database's message, scrubbed of secrets.
        message: String,
    },
}

/// What to do when the migration connection's role may not create or change the schema: the
/// runtime role of a least-privilege deployment (`docs/roles.sql`) migrating because
/// `DATABASE_MIGRATION_URL` is unset.
const PRIVILEGE_ADVICE: &str = "the migration connection's role lacks the privilege: migrations \
     run as the role of DATABASE_MIGRATION_URL (DATABASE_URL when it is unset), which must own \
     the schema; set DATABASE_MIGRATION_URL to the owner's URL (taskstore_owner in \
     docs/roles.sql) and run again";

/// PostgreSQL's "permission denied for ..." and "must be owner of ..." (SQLSTATE 42501 and its
/// ownership form), from the lower-cased message.
fn lacks_privilege(lowercase_message: &str) -> bool {
    lowercase_message.contains("permission denied") || lowercase_message.contains("must be owner")
}

/// `"; "` and [`PRIVILEGE_ADVICE`] when `message` is a privilege error, else nothing.
fn privilege_advice(message: &str) -> String {
    if lacks_privilege(&message.to_ascii_lowercase()) {
        format!("; {PRIVILEGE_ADVICE}")
    } else {
        String::new()
    }
}

/// What to do about a failed `up.sql`, from PostgreSQL's message (kept in English, see
/// `error::classify`).
fn apply_advice(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if lacks_privilege(&m) {
        PRIVILEGE_ADVICE
    } else if m.contains("cannot run inside a transaction block") {
        "move that statement into a migration of its own whose metadata.toml says \
         run_in_transaction = false, one statement per such migration (PostgreSQL runs several \
         statements sent together as one transaction); `taskstore migrate check DIR` reports this"
    } else if m.contains("canceling statement due to statement timeout") {
        "the step ran longer than DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS: raise it (0 = no \
         limit) and start again"
    } else {
        "fix its up.sql and start again (a migration that runs in a transaction left nothing \
         applied; one with run_in_transaction = false may have applied part of itself); \
         `taskstore migrate check DIR` finds statements that lock or rewrite tables in use"
    }
}
