//! Embedded migrations, one directory per backend: status, run and revert, safe when several
//! instances start at once.
//!
//! The directories `migrations/postgres` and `migrations/sqlite` are ordinary Diesel migration
//! directories (`up.sql` + `down.sql`), usable by `diesel_cli` as well (see `diesel.toml`).
//! Applied migrations are recorded in Diesel's `__diesel_schema_migrations`; beside it,
//! `taskstore_migration_checksums` keeps the SHA-256 of each applied `up.sql`, so that a
//! migration edited after it ran is reported instead of silently diverging.
//!
//! Every operation runs on one dedicated connection to `DATABASE_MIGRATION_URL` (or
//! `DATABASE_URL`), never a pooled one:
//!
//! - **PostgreSQL**: under a session advisory lock ([`LOCK_KEY`]), taken with
//!   `pg_try_advisory_lock` in a loop until `DATABASE_STARTUP_WAIT_MS`, logging while it
//!   waits. Any number of instances starting at once apply each migration exactly once: the
//!   first applies, the others wait, then find nothing pending. Each migration runs in its own
//!   transaction with its checksum row. A session lock does not survive a transaction-mode
//!   pooler (PgBouncer, Neon's `-pooler` endpoints): the lock is verified after it is taken and
//!   the error says to point `DATABASE_MIGRATION_URL` at the direct endpoint.
//! - **SQLite**: one `BEGIN IMMEDIATE` transaction around the whole run takes the database's
//!   write lock, which plays the advisory lock's part; other processes wait on `busy_timeout`.
//!
//! At start-up ([`crate::Database::connect`] with `DATABASE_MIGRATE_ON_STARTUP=true`) the
//! database is refused with [`Error::Migration`] when it carries migrations this binary does
//! not know (a newer release ran them) or an applied migration whose `up.sql` changed.
//!
//! ```
//! # fn main() -> Result<(), taskstore::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
//! let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?
//!     .with_migrate_on_startup(false); // what `taskstore migrate status` does
//! let db = taskstore::Database::connect(&config)?;
//! let before = taskstore::migrate::status(&db)?;
//! assert!(before.applied.is_empty() && !before.pending.is_empty());
//! let applied = taskstore::migrate::run(&db)?;
//! assert_eq!(applied.len(), before.pending.len());
//! assert!(taskstore::migrate::status(&db)?.is_current());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::PgConnection;
use diesel::connection::{
    AnsiTransactionManager, Connection, SimpleConnection, TransactionManager,
};
use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::BackendKind;
use crate::db::{Database, DbConnection};
use crate::error::{Error, Result};
use crate::redact::scrub;

/// Migrations for PostgreSQL (`migrations/postgres`).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// Migrations for SQLite (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The key of the PostgreSQL session advisory lock held while migrating (`"TASKSTOR"` in
/// ASCII). To see who holds it: `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND
/// classid = 1413567307 AND objid = 1398034258`.
pub const LOCK_KEY: i64 = 0x5441_534B_5354_4F52;

/// The table beside Diesel's that records each applied migration's `up.sql` checksum.
pub const CHECKSUM_TABLE: &str = "taskstore_migration_checksums";

mod embedded_sql {
    include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));
}

diesel::table! {
    /// Diesel's bookkeeping (only the column read here).
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

diesel::table! {
    taskstore_migration_checksums (version) {
        version -> Text,
        name -> Text,
        sha256 -> Text,
    }
}

/// One migration: Diesel's version (the digits of the directory's date prefix) and the
/// directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct MigrationInfo {
    /// `20261127000001`.
    pub version: String,
    /// `2026-11-27-000001_create_users_and_tasks`.
    pub name: String,
}

/// A migration applied by [`run`], with how long it took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedMigration {
    /// Which one.
    pub migration: MigrationInfo,
    /// Time spent in its `up.sql` and bookkeeping.
    pub duration_ms: u64,
}

/// Where the database stands against the migrations embedded in this binary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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

    /// `Err` when the database must not be used by this binary: unknown or changed
    /// migrations, with what to do.
    pub fn check(&self) -> Result<()> {
        if !self.unknown.is_empty() {
            return Err(Error::Migration {
                message: format!(
                    "the database has {} applied migration(s) that this binary does not know ({}): \
                     a newer release has migrated it. Run that release (or a newer one); to go \
                     back to this one, first revert them with the release that applied them \
                     (`taskstore migrate revert --steps {}`)",
                    self.unknown.len(),
                    self.unknown.join(", "),
                    self.unknown.len()
                ),
            });
        }
        if !self.changed.is_empty() {
            let names: Vec<&str> = self.changed.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::Migration {
                message: format!(
                    "applied migration(s) changed since they ran: {} (their up.sql no longer \
                     matches the checksum in {CHECKSUM_TABLE}). Applied migrations are \
                     immutable: restore the original up.sql and put the change in a new \
                     migration. If the database already reflects the edited file, delete the \
                     migration's row from {CHECKSUM_TABLE} to record the new checksum",
                    names.join(", ")
                ),
            });
        }
        Ok(())
    }
}

/// One embedded migration with its checksum.
struct Known {
    info: MigrationInfo,
    sha256: String,
    run_in_transaction: bool,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn known_for<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
    sql: &[(&str, &str)],
) -> Result<Vec<Known>> {
    let migrations = MigrationSource::<DB>::migrations(source).map_err(migration_error)?;
    let mut known = migrations
        .iter()
        .map(|m| {
            let name = m.name().to_string();
            let up = sql
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, up)| *up)
                .ok_or_else(|| Error::Migration {
                    message: format!(
                        "migration {name} is embedded by Diesel but not by build.rs; rebuild"
                    ),
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

fn known(backend: BackendKind) -> Result<Vec<Known>> {
    match backend {
        BackendKind::Postgres => {
            known_for::<Pg>(&POSTGRES_MIGRATIONS, embedded_sql::POSTGRES_UP_SQL)
        }
        BackendKind::Sqlite => known_for::<Sqlite>(&SQLITE_MIGRATIONS, embedded_sql::SQLITE_UP_SQL),
    }
}

fn migration_error(e: impl std::fmt::Display) -> Error {
    Error::Migration {
        message: scrub(&e.to_string()),
    }
}

/// Reports applied, pending, unknown and changed migrations. Reads only: creates no table and
/// takes no lock.
pub fn status(db: &Database) -> Result<MigrationStatus> {
    let mut conn = open(db)?;
    let known = known(conn.backend())?;
    read_status(&mut conn, &known)
}

/// Applies every pending migration, in order, under the migration lock; each is timed and
/// logged. Refuses (with [`Error::Migration`]) a database with unknown or changed migrations.
pub fn run(db: &Database) -> Result<Vec<AppliedMigration>> {
    locked(db, |conn, known| {
        let status = read_status(conn, known)?;
        status.check()?;
        record_missing_checksums(conn, known, &status)?;
        if status.pending.is_empty() {
            tracing::debug!(applied = status.applied.len(), "schema is current");
        }
        let mut done = Vec::with_capacity(status.pending.len());
        for info in &status.pending {
            let k = known
                .iter()
                .find(|k| &k.info == info)
                .expect("pending migrations are known");
            let start = Instant::now();
            tracing::info!(version = %info.version, name = %info.name, "applying migration");
            apply(conn, k)?;
            let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(version = %info.version, name = %info.name, duration_ms, "migration applied");
            done.push(AppliedMigration {
                migration: info.clone(),
                duration_ms,
            });
        }
        Ok(done)
    })
}

/// Reverts the newest `steps` applied migrations (newest first) under the migration lock,
/// running their `down.sql`. Refuses when the newest applied migration is unknown to this
/// binary (revert it with the release that applied it).
pub fn revert(db: &Database, steps: usize) -> Result<Vec<MigrationInfo>> {
    locked(db, |conn, known| {
        let status = read_status(conn, known)?;
        if !status.unknown.is_empty() {
            return Err(Error::Migration {
                message: format!(
                    "cannot revert: the newest applied migrations ({}) are unknown to this \
                     binary; revert them with the release that applied them first",
                    status.unknown.join(", ")
                ),
            });
        }
        let mut reverted = Vec::new();
        for info in status.applied.iter().rev().take(steps) {
            let k = known
                .iter()
                .find(|k| &k.info == info)
                .expect("applied migrations in the status are known");
            let start = Instant::now();
            unapply(conn, k)?;
            tracing::info!(version = %info.version, name = %info.name, duration_ms = start.elapsed().as_millis() as u64, "migration reverted");
            reverted.push(info.clone());
        }
        Ok(reverted)
    })
}

/// Applies pending migrations at start-up (`DATABASE_MIGRATE_ON_STARTUP`).
pub(crate) fn run_on_startup(db: &Database) -> Result<()> {
    let start = Instant::now();
    let applied = run(db)?;
    tracing::info!(
        applied = applied.len(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "migrations checked"
    );
    Ok(())
}

fn open(db: &Database) -> Result<DbConnection> {
    let config = db.config();
    if config.migration_url().is_none()
        && config.database_url().backend() == BackendKind::Postgres
        && (!config.session().prepared_statements
            || config
                .database_url()
                .host()
                .is_some_and(|h| h.contains("-pooler")))
    {
        tracing::warn!(
            "DATABASE_URL looks like a transaction-mode pooler (prepared statements off or a \
             -pooler host) and DATABASE_MIGRATION_URL is not set: session advisory locks do \
             not work through such a pooler; set DATABASE_MIGRATION_URL to the direct endpoint"
        );
    }
    crate::conn::open(config, config.migration_target())
}

/// Runs `f` on a dedicated connection holding the migration lock.
fn locked<T>(db: &Database, f: impl FnOnce(&mut DbConnection, &[Known]) -> Result<T>) -> Result<T> {
    let mut conn = open(db)?;
    let known = known(conn.backend())?;
    match &mut conn {
        DbConnection::Postgres(pg) => {
            lock_postgres(pg, db.config().pool().startup_wait)?;
            let result = setup(&mut conn).and_then(|()| f(&mut conn, &known));
            if let DbConnection::Postgres(pg) = &mut conn {
                // Closing the connection would release it too; say so explicitly when we can.
                let _ = pg.batch_execute("SELECT pg_advisory_unlock_all()");
            }
            result
        }
        DbConnection::Sqlite(lite) => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")
                .map_err(|e| migration_error(format!("could not take SQLite's write lock: {e}")))?;
            let result = setup(&mut conn).and_then(|()| f(&mut conn, &known));
            type Tm = <DbConnection as Connection>::TransactionManager;
            match result {
                Ok(value) => {
                    Tm::commit_transaction(&mut conn).map_err(migration_error)?;
                    Ok(value)
                }
                Err(e) => {
                    let _ = Tm::rollback_transaction(&mut conn);
                    Err(e)
                }
            }
        }
    }
}

/// Takes the session advisory lock, waiting at most `wait`, and checks that it stuck.
fn lock_postgres(pg: &mut PgConnection, wait: Duration) -> Result<()> {
    use diesel::sql_types::{BigInt, Bool};
    let start = Instant::now();
    let mut next_log = start + Duration::from_secs(1);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let got: bool = diesel::select(
            diesel::dsl::sql::<Bool>("pg_try_advisory_lock(")
                .bind::<BigInt, _>(LOCK_KEY)
                .sql(")"),
        )
        .get_result(pg)
        .map_err(Error::from)?;
        if got {
            if attempts > 1 {
                tracing::info!(
                    waited_ms = start.elapsed().as_millis() as u64,
                    "took the migration lock"
                );
            }
            break;
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(Error::Migration {
                message: format!(
                    "another session held the migration lock for longer than \
                     DATABASE_STARTUP_WAIT_MS ({} ms); if no instance is migrating, find the \
                     holder with `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND \
                     classid = {} AND objid = {}` and end it, or raise DATABASE_STARTUP_WAIT_MS",
                    wait.as_millis(),
                    (LOCK_KEY >> 32) as u32,
                    LOCK_KEY as u32
                ),
            });
        }
        if Instant::now() >= next_log {
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                limit_ms = wait.as_millis() as u64,
                "waiting for the migration lock: another instance is migrating"
            );
            next_log += Duration::from_secs(2);
        }
        let pause = Duration::from_millis(rand::rng().random_range(20..120));
        std::thread::sleep(pause.min(wait.saturating_sub(waited)));
    }
    // Through a transaction-mode pooler the next statement may run on another server session,
    // where the lock is not held.
    let held: bool = diesel::select(
        diesel::dsl::sql::<Bool>(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = ",
        )
        .bind::<BigInt, _>(LOCK_KEY >> 32)
        .sql(" AND objid::bigint = ")
        .bind::<BigInt, _>(LOCK_KEY & 0xFFFF_FFFF)
        .sql(")"),
    )
    .get_result(pg)
    .map_err(Error::from)?;
    if !held {
        return Err(Error::Migration {
            message: "the migration advisory lock did not stay on this session: the migration \
                      URL goes through a transaction-mode pooler (PgBouncer, a -pooler \
                      endpoint). Set DATABASE_MIGRATION_URL to the database's direct endpoint"
                .into(),
        });
    }
    Ok(())
}

/// Creates the bookkeeping tables (under the lock).
fn setup(conn: &mut DbConnection) -> Result<()> {
    match conn {
        DbConnection::Postgres(pg) => {
            MigrationHarness::<Pg>::applied_migrations(pg).map_err(migration_error)?;
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
            MigrationHarness::<Sqlite>::applied_migrations(lite).map_err(migration_error)?;
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

fn read_status(conn: &mut DbConnection, known: &[Known]) -> Result<MigrationStatus> {
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
        taskstore_migration_checksums::table
            .select((
                taskstore_migration_checksums::version,
                taskstore_migration_checksums::sha256,
            ))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect()
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

/// Migrations applied before checksums were kept (or by `diesel_cli`) get theirs recorded on
/// first sight.
fn record_missing_checksums(
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
        let k = known.iter().find(|k| &k.info == info).expect("known");
        insert_checksum(conn, k)?;
        tracing::info!(version = %info.version, name = %info.name, "recorded the checksum of a migration applied earlier");
    }
    Ok(())
}

fn insert_checksum(conn: &mut DbConnection, k: &Known) -> QueryResult<usize> {
    diesel::insert_into(taskstore_migration_checksums::table)
        .values((
            taskstore_migration_checksums::version.eq(&k.info.version),
            taskstore_migration_checksums::name.eq(&k.info.name),
            taskstore_migration_checksums::sha256.eq(&k.sha256),
        ))
        .execute(conn)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn find<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
    name: &str,
) -> std::result::Result<Box<dyn Migration<DB>>, BoxError> {
    MigrationSource::<DB>::migrations(source)?
        .into_iter()
        .find(|m| m.name().to_string() == name)
        .ok_or_else(|| format!("migration {name} is not embedded").into())
}

/// Runs one migration's `up.sql` and records it (Diesel's row and the checksum), in one
/// transaction unless the migration opted out (`run_in_transaction = false`).
fn apply(conn: &mut DbConnection, k: &Known) -> Result<()> {
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        match conn {
            DbConnection::Postgres(pg) => {
                pg.run_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.run_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, &k.info.name)?)?;
            }
        }
        insert_checksum(conn, k)?;
        Ok(())
    };
    let result = if k.run_in_transaction {
        conn.transaction(step)
    } else {
        step(conn)
    };
    result.map_err(|e| migration_error(format!("migration {} failed: {e}", k.info.name)))
}

/// Runs one migration's `down.sql` and forgets it, in one transaction.
fn unapply(conn: &mut DbConnection, k: &Known) -> Result<()> {
    let step = |conn: &mut DbConnection| -> std::result::Result<(), BoxError> {
        match conn {
            DbConnection::Postgres(pg) => {
                pg.revert_migration(&*find::<Pg>(&POSTGRES_MIGRATIONS, &k.info.name)?)?;
            }
            DbConnection::Sqlite(lite) => {
                lite.revert_migration(&*find::<Sqlite>(&SQLITE_MIGRATIONS, &k.info.name)?)?;
            }
        }
        diesel::delete(taskstore_migration_checksums::table.find(&k.info.version)).execute(conn)?;
        Ok(())
    };
    let result = if k.run_in_transaction {
        conn.transaction(step)
    } else {
        step(conn)
    };
    result.map_err(|e| migration_error(format!("reverting migration {} failed: {e}", k.info.name)))
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

    #[test]
    fn unknown_and_changed_migrations_are_refused_with_advice() {
        let status = MigrationStatus {
            unknown: vec!["20990101000000".into()],
            ..Default::default()
        };
        let text = status.check().unwrap_err().to_string();
        assert!(text.contains("does not know (20990101000000)"), "{text}");
        assert!(text.contains("migrate revert --steps 1"), "{text}");
        let status = MigrationStatus {
            changed: vec![MigrationInfo {
                version: "20261127000001".into(),
                name: "2026-11-27-000001_create_users_and_tasks".into(),
            }],
            ..Default::default()
        };
        let text = status.check().unwrap_err().to_string();
        assert!(text.contains("create_users_and_tasks"), "{text}");
        assert!(text.contains("immutable"), "{text}");
    }
}
