//! The session reset: what brings a connection a caller used raw back to the state
//! [`Connector`](super::Connector) left it in.

use std::time::Duration;

use diesel::connection::SimpleConnection;

use super::DbConnection;
use super::open::pragma_busy_timeout;
use crate::config::BackendKind;
use crate::redact::scrub;

/// Undoes what a caller may have done to a connection handed out raw: an open transaction
/// (`BEGIN` through `sql_query`), session settings (`SET`, `PRAGMA`), and on PostgreSQL
/// cursors, `LISTEN`, advisory locks and temporary tables.
#[derive(Debug)]
pub(crate) struct SessionReset {
    backend: BackendKind,
    sql: String,
}

impl SessionReset {
    /// The reset for connections customised with `busy_timeout` (SQLite's pragma value).
    pub fn new(backend: BackendKind, busy_timeout: Duration) -> Self {
        let sql = match backend {
            // One round trip. `RESET ALL` returns every setting to its session default, and the
            // timeouts and `application_name` are session defaults because they travel in the
            // startup packet; the time zone and encoding are what Diesel sets after connecting.
            // `ROLLBACK` outside a transaction is only a notice, which Diesel discards.
            BackendKind::Postgres => "ROLLBACK; RESET ALL; RESET ROLE; \
                 RESET SESSION AUTHORIZATION; SET TIME ZONE 'UTC'; \
                 SET CLIENT_ENCODING TO 'UTF8'; CLOSE ALL; UNLISTEN *; \
                 SELECT pg_advisory_unlock_all(); DISCARD TEMP"
                .to_owned(),
            BackendKind::Sqlite => {
                let millis = u64::try_from(busy_timeout.as_millis()).unwrap_or(u64::MAX);
                let mut sql = pragma_busy_timeout(millis);
                sql.push_str(
                    "; PRAGMA foreign_keys = ON; PRAGMA query_only = OFF; \
                     PRAGMA synchronous = NORMAL",
                );
                sql
            }
        };
        Self { backend, sql }
    }

    /// Runs the reset; the error is scrubbed.
    pub fn apply(&self, conn: &mut DbConnection) -> Result<(), String> {
        if self.backend == BackendKind::Sqlite {
            // SQLite refuses `ROLLBACK` outside a transaction and stops a batch at the first
            // error, so it goes alone; the refusal is the expected answer on a clean connection.
            if let Err(e) = conn.batch_execute("ROLLBACK") {
                let message = e.to_string();
                if !message.contains("no transaction is active") {
                    return Err(scrub(&message));
                }
            }
        }
        conn.batch_execute(&self.sql)
            .map_err(|e| scrub(&super::open::one_line(&e.to_string())))
    }
}
