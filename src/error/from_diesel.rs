//! What a Diesel error becomes: the kind [`classify`](super::classify) gives it, and for a
//! unique violation, which rule was broken in words a caller can show.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::classify::{self, Runtime};
use super::{DbErrorKind, Error};
use crate::redact::scrub;

/// Unique constraints and what their violation means to a caller.
const UNIQUE_RULES: &[(&str, &str, &str)] = &[
    // (PostgreSQL constraint name, SQLite "table.column" text, message)
    (
        "users_email_key",
        "users.email",
        "a user with this email already exists",
    ),
    (
        "users_pkey",
        "users.id",
        "a user with this id already exists",
    ),
    (
        "tasks_pkey",
        "tasks.id",
        "a task with this id already exists",
    ),
];

thread_local! {
    /// What the connection layer's watchdog did to the statement that just failed on this
    /// thread: the error to report instead of the driver's "server closed the connection".
    static INTERRUPTION: std::cell::Cell<Option<Error>> = const { std::cell::Cell::new(None) };
}

/// The statement that fails next on this thread was interrupted by the watchdog: report `err`.
pub(crate) fn set_interruption(err: Error) {
    INTERRUPTION.set(Some(err));
}

/// A new statement starts on this thread: forget an interruption nobody converted.
#[inline]
pub(crate) fn clear_interruption() {
    // `take` rather than `set(None)`: no drop glue runs on the hot path unless one was set.
    if let Some(e) = INTERRUPTION.take() {
        drop(e);
    }
}

impl Error {
    /// Classifies a Diesel error. `NotFound` becomes `Error::NotFound { entity: "row" }`;
    /// repositories map it to their own entity first.
    pub fn from_diesel(err: DieselError) -> Self {
        if !matches!(err, DieselError::NotFound)
            && let Some(replacement) = INTERRUPTION.take()
        {
            return replacement;
        }
        match err {
            DieselError::NotFound => Self::NotFound { entity: "row" },
            DieselError::DatabaseError(kind, info) => {
                let message = scrub(info.message());
                let constraint = info.constraint_name().map(str::to_owned);
                database_error(kind, message, constraint)
            }
            DieselError::DeserializationError(e) | DieselError::SerializationError(e) => {
                Self::Database {
                    kind: DbErrorKind::Conversion,
                    message: scrub(&e.to_string()),
                }
            }
            DieselError::BrokenTransactionManager => Self::Database {
                kind: DbErrorKind::Disconnected,
                message: "the connection's transaction state is broken; it will be discarded"
                    .into(),
            },
            DieselError::RollbackErrorOnCommit { commit_error, .. } => Self::CommitUnknown {
                message: scrub(&commit_error.to_string()),
            },
            other => Self::Database {
                kind: DbErrorKind::Other,
                message: scrub(&other.to_string()),
            },
        }
    }
}

/// Builds the error for a database error Diesel reported, by the meaning [`classify`] gives it.
fn database_error(kind: DatabaseErrorKind, message: String, constraint: Option<String>) -> Error {
    match classify::runtime(kind, &message) {
        Runtime::Conflict => {
            let rule = UNIQUE_RULES
                .iter()
                .find(|(pg, lite, _)| constraint.as_deref() == Some(*pg) || message.contains(lite));
            match rule {
                Some((_, name, text)) => Error::Conflict {
                    constraint: (*name).into(),
                    message: (*text).into(),
                },
                None => Error::Conflict {
                    constraint: constraint.unwrap_or_else(|| "unique".into()),
                    message,
                },
            }
        }
        Runtime::Check => Error::Validation {
            // PostgreSQL names the constraint; SQLite's text ends with it.
            field: if kind == DatabaseErrorKind::CheckViolation {
                constraint.unwrap_or_else(|| "check".into())
            } else {
                message.rsplit(": ").next().unwrap_or("check").to_owned()
            },
            reason: format!("refused by the database: {message}"),
        },
        Runtime::QueryTimeout => Error::QueryTimeout { message },
        Runtime::Database(kind) => {
            let message = if message.contains("row-level security policy") {
                format!("{message}; {ROW_SECURITY_ADVICE}")
            } else {
                message
            };
            Error::Database { kind, message }
        }
    }
}

/// What to do when a row-level security policy refused a write (SQLSTATE 42501, "new row
/// violates row-level security policy"): the session's role is under `docs/row-security.sql`
/// and the transaction did not name its owner (the task handles, the `taskstore` command and
/// `serve` name it themselves; an application's own transaction has to).
const ROW_SECURITY_ADVICE: &str = "this role is a member of taskstore_row_security \
    (docs/row-security.sql), which writes and sees only the rows whose user_id is the \
    transaction's owner: open the transaction with Database::with_transaction_opts and \
    TxOptions::owner (db.tasks() calls do this themselves), or connect as a role outside that \
    group. If row-level security was turned on while the application ran, a db.tasks() call on \
    a connection opened before does not know yet: that connection is discarded and the next \
    call asks again, but reads on the others find no rows until they are recycled \
    (DATABASE_MAX_LIFETIME_S): restart the application after turning it on";

impl From<DieselError> for Error {
    fn from(err: DieselError) -> Self {
        Self::from_diesel(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `from_diesel` does with a message Diesel reports as `Unknown`.
    fn classify_by_message(message: String) -> Error {
        database_error(DatabaseErrorKind::Unknown, message, None)
    }

    #[test]
    fn unknown_server_errors_are_classified_by_message() {
        assert!(matches!(
            classify_by_message("deadlock detected".into()),
            Error::Database {
                kind: DbErrorKind::Deadlock,
                ..
            }
        ));
        assert!(matches!(
            classify_by_message("canceling statement due to statement timeout".into()),
            Error::QueryTimeout { .. }
        ));
        assert!(matches!(
            classify_by_message("terminating connection due to administrator command".into()),
            Error::Database {
                kind: DbErrorKind::Disconnected,
                ..
            }
        ));
    }
}
