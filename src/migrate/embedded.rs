//! The migrations compiled into the binary, one set per backend, each with the SHA-256 of its
//! `up.sql` (Diesel's embedding does not expose the SQL; `build.rs` embeds it beside).

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use super::MigrationInfo;
use super::checksum::sha256_hex;
use crate::config::BackendKind;
use crate::error::{MigrateError, Result};
use crate::redact::scrub;

/// Migrations for PostgreSQL (`migrations/postgres`).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for SQLite (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

mod sql {
    include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));
}

/// One embedded migration with its checksum.
#[derive(Debug)]
pub(super) struct Known {
    pub info: MigrationInfo,
    pub sha256: String,
    pub run_in_transaction: bool,
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn source_error(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Source {
        message: scrub(&e.to_string()),
    }
}

fn known_for<DB: Backend>(source: &EmbeddedMigrations, sql: &[(&str, &str)]) -> Result<Vec<Known>> {
    let migrations = MigrationSource::<DB>::migrations(source).map_err(source_error)?;
    let mut known = migrations
        .iter()
        .map(|m| {
            let name = m.name().to_string();
            let up = sql
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, up)| *up)
                .ok_or_else(|| {
                    source_error(format!(
                        "migration {name} is embedded by Diesel but not by build.rs"
                    ))
                })?;
            Ok(Known {
                info: MigrationInfo {
                    version: m.name().version().to_string(),
                    name,
                },
                sha256: sha256_hex(up),
                run_in_transaction: m.metadata().run_in_transaction(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    known.sort_by(|a, b| a.info.version.cmp(&b.info.version));
    Ok(known)
}

/// The backend's embedded migrations, oldest first.
pub(super) fn known(backend: BackendKind) -> Result<Vec<Known>> {
    match backend {
        BackendKind::Postgres => known_for::<Pg>(&POSTGRES_MIGRATIONS, sql::POSTGRES_UP_SQL),
        BackendKind::Sqlite => known_for::<Sqlite>(&SQLITE_MIGRATIONS, sql::SQLITE_UP_SQL),
    }
}

/// Diesel's own migration object for `name`, to run or revert.
pub(super) fn find<DB: Backend>(
    source: &EmbeddedMigrations,
    name: &str,
) -> std::result::Result<Box<dyn Migration<DB>>, BoxError> {
    MigrationSource::<DB>::migrations(source)?
        .into_iter()
        .find(|m| m.name().to_string() == name)
        .ok_or_else(|| format!("migration {name} is not embedded").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_migration_has_its_sql_and_a_stable_checksum() {
        for backend in [BackendKind::Postgres, BackendKind::Sqlite] {
            let known = known(backend).unwrap();
            assert!(!known.is_empty());
            for k in &known {
                assert_eq!(k.sha256.len(), 64);
                assert!(
                    k.info.name.starts_with(&k.info.version[..4]),
                    "{:?}",
                    k.info
                );
            }
        }
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
