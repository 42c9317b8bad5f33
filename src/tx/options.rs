//! What a caller can choose about a transaction ([`TxOptions`], [`IsolationLevel`]) and what
//! the transaction needs to know about the closure's error type ([`TransactionError`]).

use std::time::Duration;

use crate::models::UserId;

use crate::error::Error;

/// Transaction isolation level. See the [module docs](crate::tx) for what each means on SQLite.
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

/// Options for [`Database::with_transaction_opts`](crate::Database::with_transaction_opts). `TxOptions::default()` is the backend's
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
    /// The user whose rows the transaction works on, for PostgreSQL's row-level security
    /// (`taskstore.user_id`); `None`: not set. See [`TxOptions::owner`].
    pub owner: Option<UserId>,
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

    /// Scopes the transaction to `owner`'s rows for PostgreSQL's row-level security: the
    /// transaction-local setting `taskstore.user_id` is set in the same simple-query batch as
    /// `BEGIN`, so it costs no extra round trip and ends with the transaction (nothing reaches
    /// the next client of a transaction-mode pooler). Roles in `taskstore_row_security` see and
    /// write only those rows of `tasks` (see `docs/row-security.sql`); without it they see none.
    /// Ignored on SQLite, where the repositories' owner filter is the only wall.
    ///
    /// ```
    /// use taskstore::models::UserId;
    /// use taskstore::tx::TxOptions;
    /// let opts = TxOptions::new().owner(UserId::new_v7());
    /// # let _ = opts;
    /// ```
    pub fn owner(mut self, owner: UserId) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Sets the first backoff delay (doubled on each re-run, at most 1 s, jittered: see `backoff`).
    pub fn retry_base_delay(mut self, delay: Duration) -> Self {
        self.retry_base_delay = Some(delay);
        self
    }
}

/// What [`Database::with_transaction`](crate::Database::with_transaction) needs to know about the closure's error type: where the
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DbErrorKind;

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
