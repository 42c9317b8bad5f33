//! One migration up or down, with its bookkeeping, in its own transaction (unless the
//! migration opted out with `run_in_transaction = false`), in a span that records its duration.

use std::time::{Duration, Instant};

use diesel::connection::Connection;
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;
use tracing::field::Empty;

use super::checksum;
use super::embedded::{BoxError, Known, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, find};
use crate::conn::DbConnection;
use crate::error::{MigrateError, Result};
use crate::redact::scrub;

/// Runs `k`'s `up.sql` and records it (Diesel's row and the checksum). Returns how long it
/// took, in milliseconds.
#[tracing::instrument(
    name = "migrate.apply",
    skip_all,
    fields(version = %k.info.version, name = %k.info.name, duration_ms = Empty)
)]
pub(super) fn apply(conn: &mut DbConnection, k: &Known) -> Result<u64> {
    tracing::info!("applying migration");
    let start = Instant::now();
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        match conn {
            DbConnection::Postgres(pg) => {
                pg.run_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.run_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, &k.info.name)?)?;
            }
        }
        checksum::insert(conn, k)?;
        Ok(())
    };
    in_transaction(conn, k, step).map_err(|e| MigrateError::ApplyFailed {
        version: k.info.version.clone(),
        name: k.info.name.clone(),
        message: scrub(&e.to_string()),
    })?;
    let duration_ms = record_duration(start.elapsed());
    tracing::info!(version = %k.info.version, name = %k.info.name, duration_ms, "migration applied");
    Ok(duration_ms)
}

/// Runs `k`'s `down.sql` and forgets it.
#[tracing::instrument(
    name = "migrate.unapply",
    skip_all,
    fields(version = %k.info.version, name = %k.info.name, duration_ms = Empty)
)]
pub(super) fn unapply(conn: &mut DbConnection, k: &Known) -> Result<()> {
    let start = Instant::now();
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        match conn {
            DbConnection::Postgres(pg) => {
                pg.revert_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.revert_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, &k.info.name)?)?;
            }
        }
        checksum::delete(conn, k)?;
        Ok(())
    };
    in_transaction(conn, k, step).map_err(|e| MigrateError::RevertFailed {
        version: k.info.version.clone(),
        name: k.info.name.clone(),
        message: scrub(&e.to_string()),
    })?;
    let duration_ms = record_duration(start.elapsed());
    tracing::info!(version = %k.info.version, name = %k.info.name, duration_ms, "migration reverted");
    Ok(())
}

fn in_transaction(
    conn: &mut DbConnection,
    k: &Known,
    step: impl FnOnce(&mut DbConnection) -> std::result::Result<(), BoxError>,
) -> std::result::Result<(), BoxError> {
    if k.run_in_transaction {
        conn.transaction(step)
    } else {
        step(conn)
    }
}

/// Records `elapsed` on the current span and returns it in milliseconds.
pub(super) fn record_duration(elapsed: Duration) -> u64 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    tracing::Span::current().record("duration_ms", ms);
    ms
}
