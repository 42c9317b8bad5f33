//! One connection, below any pool: the [`DbConnection`] type every query is written against,
//! opening and customising a connection ([`open`]), the reset that returns a connection a
//! caller used raw to its customised state, and liveness (a deadline on a blocking round trip,
//! a non-blocking look at an idle socket, a client-side bound on every statement) and finding
//! a connection's socket.
//!
//! The pool ([`crate::pool`]) builds on these pieces; migrations and one-shot checks use
//! [`open`] directly, without a pool.

mod language;
mod liveness;
mod open;
mod reset;
mod socket;

use diesel::{PgConnection, SqliteConnection};

pub(crate) use liveness::{Fired, Input, Slot, ping, unexpected_input};
pub use open::{ConnectError, open, open_read_only};
pub(crate) use open::{Connector, Opened};
pub(crate) use reset::SessionReset;

use crate::config::BackendKind;

/// A connection to either backend. Repository functions take `&mut DbConnection`, so one
/// implementation of each query serves PostgreSQL and SQLite, standalone or inside a
/// transaction.
///
/// Built by Diesel's `MultiConnection` derive; [`open`] (and the pool, through the same code)
/// constructs the variant from the configured URL's backend (the derive's own `establish`
/// would guess by trying each backend in turn).
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A PostgreSQL connection.
    Postgres(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the backend's own connection (`&mut PgConnection` or
/// `&mut SqliteConnection`): one query text, compiled once per backend.
///
/// For hot queries. Through the `MultiConnection` wrapper, Diesel serialises the whole SQL
/// statement into a fresh `String` twice on every execution (once to collect the binds, once
/// to ask whether it may be cached), even when the prepared statement is already cached; on
/// the backend's own connection a cached statement is found by its type and no SQL is built.
/// That is about 3 µs per query on either backend, a tenth of a point query over loopback
/// (bench/RESULTS.md, "Domain operations"). Transactions are unaffected: the wrapper keeps
/// no state of its own, the inner connection's transaction manager is the one in use.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::conn::DbConnection::Postgres($c) => $body,
            $crate::conn::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

impl DbConnection {
    /// Which backend this connection talks to.
    pub fn backend(&self) -> BackendKind {
        match self {
            Self::Postgres(_) => BackendKind::Postgres,
            Self::Sqlite(_) => BackendKind::Sqlite,
        }
    }
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbConnection({})", self.backend())
    }
}
