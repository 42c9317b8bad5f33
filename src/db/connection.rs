//! The connection type every query is written against, whichever backend is configured.

use diesel::{PgConnection, SqliteConnection};

use crate::config::BackendKind;

/// A connection to either backend. Repository functions take `&mut DbConnection`, so one
/// implementation of each query serves PostgreSQL and SQLite, standalone or inside a
/// transaction.
///
/// Built by Diesel's `MultiConnection` derive; the pool constructs the variant itself from the
/// configured URL (the derive's own `establish` would guess by trying each backend in turn).
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A PostgreSQL connection.
    Postgres(PgConnection),
    /// A SQLite connection.
    Sqlite(SqliteConnection),
}

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
