//! `Database::health()`: does the database answer, how fast, and at which schema version.

use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::Database;
use crate::config::BackendKind;
use crate::error::{PoolState, Result};

diesel::table! {
    /// Diesel's own bookkeeping table (read-only here).
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// The answer of [`Database::health`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// Backend of the primary.
    pub backend: BackendKind,
    /// One round trip (`SELECT 1`) on a pooled connection, excluding acquisition.
    pub latency: Duration,
    /// Time to check the connection out.
    pub acquire: Duration,
    /// The newest applied migration's version, if any.
    pub schema_version: Option<String>,
    /// The pool at the time of the check.
    pub pool: PoolState,
}

impl Health {
    /// Checks out a connection, measures one round trip and reads the schema version. Fails
    /// with the same typed errors as [`Database::conn`] when the database is unreachable.
    pub(super) fn check(db: &Database) -> Result<Health> {
        let start = Instant::now();
        // The check leaves no session state behind: no reset round trip on return.
        let mut conn = db.conn()?.trusted();
        let acquire = start.elapsed();
        let t = Instant::now();
        let ping = crate::conn::ping(&mut conn);
        let latency = t.elapsed();
        if let Err(message) = ping {
            let err = crate::Error::Database {
                kind: crate::DbErrorKind::Disconnected,
                message,
            };
            conn.note_error(&err);
            return Err(err);
        }
        // Before the first migration the table does not exist: that is "no version", not an error.
        let schema_version = __diesel_schema_migrations::table
            .select(diesel::dsl::max(__diesel_schema_migrations::version))
            .get_result::<Option<String>>(&mut *conn)
            .unwrap_or(None);
        Ok(Health {
            backend: db.backend(),
            latency,
            acquire,
            schema_version,
            pool: db.pool_state(),
        })
    }
}
