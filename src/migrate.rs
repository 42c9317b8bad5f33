//! Embedded migrations, one directory per backend.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::db::{Database, DbConnection};
use crate::error::{Error, Result};

/// Migrations for PostgreSQL (`migrations/postgres`).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for SQLite (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

fn migrations_for(conn: &DbConnection) -> EmbeddedMigrations {
    match conn {
        DbConnection::Postgres(_) => POSTGRES_MIGRATIONS,
        DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
    }
}

/// Applies pending migrations at start-up.
pub(crate) fn run_on_startup(db: &Database) -> Result<()> {
    let mut conn = db.open_dedicated(db.config().migration_target())?;
    let migrations = migrations_for(&conn);
    let applied = match &mut conn {
        DbConnection::Postgres(pg) => pg.run_pending_migrations(migrations).map(|v| v.len()),
        DbConnection::Sqlite(lite) => lite.run_pending_migrations(migrations).map(|v| v.len()),
    }
    .map_err(|e| Error::Migration {
        message: crate::redact::scrub(&e.to_string()),
    })?;
    tracing::info!(applied, "migrations applied");
    Ok(())
}
