//! Where a database stands against the embedded migrations: the output types and the read
//! that fills them (no table created, no lock taken).

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;

use super::checksum::{self, CHECKSUM_TABLE};
use super::embedded::Known;
use crate::conn::DbConnection;
use crate::error::{MigrateError, Result};

diesel::table! {
    /// Diesel's bookkeeping (only the column read here).
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// One migration: Diesel's version (the digits of the directory's date prefix) and the
/// directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// `20261127000001`.
    pub version: String,
    /// `2026-11-27-000001_create_users_and_tasks`.
    pub name: String,
}

/// A migration applied by a run, with how long it took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct AppliedMigration {
    /// Which one.
    pub migration: MigrationInfo,
    /// Time spent in its `up.sql` and bookkeeping, in milliseconds.
    pub duration_ms: u64,
}

/// Where the database stands against the migrations embedded in this binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// Known migrations the database has applied, oldest first.
    pub applied: Vec<MigrationInfo>,
    /// Known migrations not applied yet, in the order they will run.
    pub pending: Vec<MigrationInfo>,
    /// Versions applied in the database that this binary does not know (a newer release ran
    /// them).
    pub unknown: Vec<String>,
    /// Applied migrations whose embedded `up.sql` differs from the one that ran.
    pub changed: Vec<MigrationInfo>,
}

impl MigrationStatus {
    /// True when nothing is pending, unknown or changed.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty() && self.changed.is_empty()
    }

    /// The newest applied version, if any.
    pub fn schema_version(&self) -> Option<&str> {
        self.applied.last().map(|m| m.version.as_str())
    }

    /// `Err` when the database must not be used by this binary:
    /// [`MigrateError::UnknownApplied`] or [`MigrateError::ChecksumMismatch`] (in that order),
    /// each saying what to do.
    pub fn check(&self) -> Result<(), MigrateError> {
        if !self.unknown.is_empty() {
            return Err(MigrateError::UnknownApplied {
                versions: self.unknown.clone(),
            });
        }
        if !self.changed.is_empty() {
            return Err(MigrateError::ChecksumMismatch {
                names: self.changed.iter().map(|m| m.name.clone()).collect(),
            });
        }
        Ok(())
    }
}

fn table_exists(conn: &mut DbConnection, table: &str) -> Result<bool> {
    use diesel::sql_types::{Bool, Text};
    let exists = match conn {
        DbConnection::Postgres(pg) => diesel::select(
            diesel::dsl::sql::<Bool>("to_regclass(")
                .bind::<Text, _>(table)
                .sql(") IS NOT NULL"),
        )
        .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::select(
            diesel::dsl::sql::<Bool>(
                "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ",
            )
            .bind::<Text, _>(table)
            .sql(")"),
        )
        .get_result(lite)?,
    };
    Ok(exists)
}

/// Reads the applied versions and checksums and compares them with `known`.
pub(super) fn read(conn: &mut DbConnection, known: &[Known]) -> Result<MigrationStatus> {
    let applied: BTreeSet<String> = if table_exists(conn, "__diesel_schema_migrations")? {
        __diesel_schema_migrations::table
            .select(__diesel_schema_migrations::version)
            .load::<String>(conn)?
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    let sums: BTreeMap<String, String> = if table_exists(conn, CHECKSUM_TABLE)? {
        checksum::recorded(conn)?.into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let mut status = MigrationStatus::default();
    for k in known {
        if applied.contains(&k.info.version) {
            status.applied.push(k.info.clone());
            if sums.get(&k.info.version).is_some_and(|s| *s != k.sha256) {
                status.changed.push(k.info.clone());
            }
        } else {
            status.pending.push(k.info.clone());
        }
    }
    let known_versions: BTreeSet<&str> = known.iter().map(|k| k.info.version.as_str()).collect();
    status.unknown = applied
        .iter()
        // Diesel CLI's `diesel setup` placeholder, not a migration.
        .filter(|v| !known_versions.contains(v.as_str()) && *v != "00000000000000")
        .cloned()
        .collect();
    Ok(status)
}

/// Whether every migration applied in `status` has its checksum recorded, so that a run has
/// nothing to write for it (false before the checksum table exists).
pub(super) fn checksums_complete(
    conn: &mut DbConnection,
    status: &MigrationStatus,
) -> Result<bool> {
    if !table_exists(conn, CHECKSUM_TABLE)? {
        return Ok(false);
    }
    let recorded: BTreeSet<String> = checksum::recorded(conn)?
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    Ok(status.applied.iter().all(|m| recorded.contains(&m.version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn unknown_and_changed_migrations_are_refused_with_advice() {
        let status = MigrationStatus {
            unknown: vec!["20990101000000".into()],
            ..Default::default()
        };
        let err = status.check().unwrap_err();
        assert!(
            matches!(&err, MigrateError::UnknownApplied { versions } if versions == &["20990101000000"])
        );
        let text = Error::from(err).to_string();
        assert!(text.contains("does not know (20990101000000)"), "{text}");
        assert!(text.contains("migrate revert --steps 1"), "{text}");
        let status = MigrationStatus {
            changed: vec![MigrationInfo {
                version: "20261127000001".into(),
                name: "2026-11-27-000001_create_users_and_tasks".into(),
            }],
            ..Default::default()
        };
        let err = status.check().unwrap_err();
        assert!(matches!(&err, MigrateError::ChecksumMismatch { names } if names.len() == 1));
        let text = Error::from(err).to_string();
        assert!(text.contains("create_users_and_tasks"), "{text}");
        assert!(text.contains("immutable"), "{text}");
        assert!(
            text.contains(CHECKSUM_TABLE),
            "the advice names the real table: {text}"
        );
    }
}
