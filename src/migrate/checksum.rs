//! The bookkeeping beside Diesel's `__diesel_schema_migrations`: `taskstore_migration_checksums`
//! keeps the SHA-256 of each applied migration's `up.sql`, so that a migration edited after it
//! ran is reported instead of silently diverging.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_migrations::MigrationHarness;
use sha2::{Digest, Sha256};

use super::MigrationStatus;
use super::embedded::Known;
use crate::conn::DbConnection;
use crate::error::{MigrateError, Result};
use crate::redact::scrub;

/// The table beside Diesel's that records each applied migration's `up.sql` checksum.
pub const CHECKSUM_TABLE: &str = "taskstore_migration_checksums";

diesel::table! {
    taskstore_migration_checksums (version) {
        version -> Text,
        name -> Text,
        sha256 -> Text,
    }
}

/// Lower-case hex SHA-256 of `text`.
pub(super) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Applied versions and their recorded checksums (empty before the table exists).
pub(super) fn recorded(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    taskstore_migration_checksums::table
        .select((
            taskstore_migration_checksums::version,
            taskstore_migration_checksums::sha256,
        ))
        .load(conn)
}

fn bookkeeping(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Bookkeeping {
        message: scrub(&e.to_string()),
    }
}

/// Creates Diesel's table and the checksum table when missing (under the migration lock).
pub(super) fn create_tables(conn: &mut DbConnection) -> Result<()> {
    match conn {
        DbConnection::Postgres(pg) => {
            MigrationHarness::<Pg>::applied_migrations(pg).map_err(bookkeeping)?;
            pg.batch_execute(
                "CREATE TABLE IF NOT EXISTS taskstore_migration_checksums (
                     version     VARCHAR(50) PRIMARY KEY NOT NULL,
                     name        TEXT NOT NULL,
                     sha256      TEXT NOT NULL,
                     recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )?;
        }
        DbConnection::Sqlite(lite) => {
            MigrationHarness::<Sqlite>::applied_migrations(lite).map_err(bookkeeping)?;
            lite.batch_execute(
                "CREATE TABLE IF NOT EXISTS taskstore_migration_checksums (
                     version     VARCHAR(50) PRIMARY KEY NOT NULL,
                     name        TEXT NOT NULL,
                     sha256      TEXT NOT NULL,
                     recorded_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
                 )",
            )?;
        }
    }
    Ok(())
}

/// Migrations applied before checksums were kept (or by `diesel_cli`) get theirs recorded on
/// first sight.
pub(super) fn record_missing(
    conn: &mut DbConnection,
    known: &[Known],
    status: &MigrationStatus,
) -> Result<()> {
    let recorded: BTreeSet<String> = taskstore_migration_checksums::table
        .select(taskstore_migration_checksums::version)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    for info in status
        .applied
        .iter()
        .filter(|m| !recorded.contains(&m.version))
    {
        let k = known
            .iter()
            .find(|k| &k.info == info)
            .expect("applied migrations in the status are known");
        insert(conn, k)?;
        tracing::info!(version = %info.version, name = %info.name, "recorded the checksum of a migration applied earlier");
    }
    Ok(())
}

/// Records `k`'s checksum (in the transaction that applies it).
pub(super) fn insert(conn: &mut DbConnection, k: &Known) -> QueryResult<usize> {
    diesel::insert_into(taskstore_migration_checksums::table)
        .values((
            taskstore_migration_checksums::version.eq(&k.info.version),
            taskstore_migration_checksums::name.eq(&k.info.name),
            taskstore_migration_checksums::sha256.eq(&k.sha256),
        ))
        .execute(conn)
}

/// Forgets `k`'s checksum (in the transaction that reverts it).
pub(super) fn delete(conn: &mut DbConnection, k: &Known) -> QueryResult<usize> {
    diesel::delete(taskstore_migration_checksums::table.find(&k.info.version)).execute(conn)
}
