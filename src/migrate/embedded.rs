//! Where migrations come from: the ones compiled into the binary, one set per backend (the
//! default), or a directory of Diesel migrations read at run time ([`Source::Directory`]);
//! each with the SHA-256 of its `up.sql` (Diesel's embedding does not expose the SQL;
//! `build.rs` embeds it beside).

use std::path::PathBuf;

use diesel::backend::Backend;
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations, embed_migrations};

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

/// Where a [`super::Migrator`] takes its migrations from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Source {
    /// The migrations compiled into the binary for the connection's backend.
    #[default]
    Embedded,
    /// A directory of Diesel migrations (`<name>/up.sql`, `down.sql`, optional
    /// `metadata.toml`) for the connection's backend, read when the run starts.
    Directory(PathBuf),
}

/// One migration with its checksum.
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

fn known_for<DB: Backend>(
    source: &dyn MigrationSource<DB>,
    up_sql: &dyn Fn(&str) -> Result<String>,
) -> Result<Vec<Known>> {
    let migrations = source.migrations().map_err(source_error)?;
    let mut known = migrations
        .iter()
        .map(|m| {
            let name = m.name().to_string();
            let up = up_sql(&name)?;
            Ok(Known {
                info: MigrationInfo {
                    version: m.name().version().to_string(),
                    name,
                },
                sha256: sha256_hex(&up),
                run_in_transaction: m.metadata().run_in_transaction(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    known.sort_by(|a, b| a.info.version.cmp(&b.info.version));
    Ok(known)
}

fn embedded_sql(sql: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Result<String> {
    move |name| {
        sql.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, up)| (*up).to_owned())
            .ok_or_else(|| {
                source_error(format!(
                    "migration {name} is embedded by Diesel but not by build.rs"
                ))
                .into()
            })
    }
}

fn directory(dir: &std::path::Path) -> Result<FileBasedMigrations> {
    FileBasedMigrations::from_path(dir)
        .map_err(|e| source_error(format!("{}: {e}", dir.display())).into())
}

fn file_sql(dir: &std::path::Path) -> impl Fn(&str) -> Result<String> {
    move |name| {
        let path = dir.join(name).join("up.sql");
        std::fs::read_to_string(&path)
            .map_err(|e| source_error(format!("{}: {e}", path.display())).into())
    }
}

/// One embedded migration's `up.sql`, for tools that read the SQL (`taskstore migrate check`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationSql {
    /// The directory name, `2026-11-27-000001_create_users_and_tasks`.
    pub name: String,
    /// The text of its `up.sql`.
    pub up_sql: &'static str,
    /// `false` when its `metadata.toml` says `run_in_transaction = false`.
    pub run_in_transaction: bool,
}

/// The `up.sql` of every migration embedded for `backend`, oldest first.
///
/// Errors: [`MigrateError::Source`] when the embedding is inconsistent (a build problem).
pub fn embedded_up_sql(backend: BackendKind) -> Result<Vec<MigrationSql>> {
    let (migrations, sql) = match backend {
        BackendKind::Postgres => (
            MigrationSource::<Pg>::migrations(&POSTGRES_MIGRATIONS)
                .map_err(source_error)?
                .into_iter()
                .map(|m| (m.name().to_string(), m.metadata().run_in_transaction()))
                .collect::<Vec<_>>(),
            sql::POSTGRES_UP_SQL,
        ),
        BackendKind::Sqlite => (
            MigrationSource::<Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .map_err(source_error)?
                .into_iter()
                .map(|m| (m.name().to_string(), m.metadata().run_in_transaction()))
                .collect::<Vec<_>>(),
            sql::SQLITE_UP_SQL,
        ),
    };
    let mut out = migrations
        .into_iter()
        .map(|(name, run_in_transaction)| {
            let up_sql = sql
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, up)| *up)
                .ok_or_else(|| source_error(format!("migration {name} has no embedded up.sql")))?;
            Ok(MigrationSql {
                name,
                up_sql,
                run_in_transaction,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The backend's migrations from `source`, oldest first.
pub(super) fn known(backend: BackendKind, source: &Source) -> Result<Vec<Known>> {
    match (source, backend) {
        (Source::Embedded, BackendKind::Postgres) => {
            known_for::<Pg>(&POSTGRES_MIGRATIONS, &embedded_sql(sql::POSTGRES_UP_SQL))
        }
        (Source::Embedded, BackendKind::Sqlite) => {
            known_for::<Sqlite>(&SQLITE_MIGRATIONS, &embedded_sql(sql::SQLITE_UP_SQL))
        }
        (Source::Directory(dir), BackendKind::Postgres) => {
            known_for::<Pg>(&directory(dir)?, &file_sql(dir))
        }
        (Source::Directory(dir), BackendKind::Sqlite) => {
            known_for::<Sqlite>(&directory(dir)?, &file_sql(dir))
        }
    }
}

/// Diesel's own migration object for `name` from `source` (`embedded` being the backend's
/// compiled-in set), to run or revert.
pub(super) fn find<DB: Backend>(
    embedded: &EmbeddedMigrations,
    source: &Source,
    name: &str,
) -> std::result::Result<Box<dyn Migration<DB>>, BoxError>
where
    EmbeddedMigrations: MigrationSource<DB>,
    FileBasedMigrations: MigrationSource<DB>,
{
    let all = match source {
        Source::Embedded => MigrationSource::<DB>::migrations(embedded)?,
        Source::Directory(dir) => {
            MigrationSource::<DB>::migrations(&FileBasedMigrations::from_path(dir)?)?
        }
    };
    all.into_iter()
        .find(|m| m.name().to_string() == name)
        .ok_or_else(|| format!("migration {name} is not in its source").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_migration_has_its_sql_and_a_stable_checksum() {
        for backend in [BackendKind::Postgres, BackendKind::Sqlite] {
            let known = known(backend, &Source::Embedded).unwrap();
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
