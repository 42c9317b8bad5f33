//! Embedded migrations, one directory per backend: status, run and revert on one connection,
//! safe when several instances start at once.
//!
//! The directories `migrations/postgres` and `migrations/sqlite` are ordinary Diesel migration
//! directories (`up.sql` + `down.sql`), usable by `diesel_cli` as well (see `diesel.toml`).
//! Applied migrations are recorded in Diesel's `__diesel_schema_migrations`; beside it,
//! [`CHECKSUM_TABLE`] keeps the SHA-256 of each applied `up.sql`, so that a migration edited
//! after it ran is reported instead of silently diverging.
//!
//! Everything here works on one connection, never on a pool or a [`crate::Database`]:
//! [`connect`] opens the dedicated one to `DATABASE_MIGRATION_URL` (or `DATABASE_URL`), and
//! [`crate::Database::connect`] calls in here (with `DATABASE_MIGRATE_ON_STARTUP=true`), not
//! the other way round. A run first reads where the database stands; with nothing pending it
//! stops there, taking no lock and writing nothing. Otherwise it takes the migration lock (see
//! `lock.rs`: a PostgreSQL session advisory lock, [`LOCK_KEY`], or SQLite's write lock) and
//! reads again under it, so any number of instances starting at once apply each migration
//! exactly once: the first applies, the others wait, then find nothing pending. Each migration
//! runs in its own transaction with its checksum row, in a `migrate.apply` span that records its
//! duration. On PostgreSQL each step runs under a short `lock_timeout`
//! (`DATABASE_MIGRATION_LOCK_TIMEOUT_MS`) and is re-tried with backoff after a lock timeout
//! until `DATABASE_STARTUP_WAIT_MS` is spent (see `step.rs`), so that DDL queued for a lock
//! never stalls the queries behind it for longer than that timeout.
//!
//! A migration whose `metadata.toml` says `run_in_transaction = false` (diesel_migrations'
//! own switch) runs outside a transaction, still under the migration lock, so that `CREATE
//! INDEX CONCURRENTLY` works. Keep such a migration to one statement: PostgreSQL runs a
//! multi-statement string as one implicit transaction, where `CONCURRENTLY` is refused (`taskstore
//! migrate check` reports it). Before it runs, indexes left `INVALID` by an interrupted
//! concurrent build are dropped (see `invalid_index.rs`), so the step builds them again; write
//! it as `CREATE INDEX CONCURRENTLY IF NOT EXISTS` so that a build that finished before its
//! bookkeeping was written is not an error on the next start. On SQLite the whole run is one
//! write transaction, so such a step runs inside it as written: SQLite has no `CONCURRENTLY`
//! (its migration says plain `CREATE INDEX`), and its DDL is quick.
//!
//! A run refuses, with a [`MigrateError`] a caller can match, a database that carries
//! migrations this binary does not know (a newer release ran them) or an applied migration
//! whose `up.sql` changed.
//!
//! ```
//! # fn main() -> Result<(), taskstore::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
//! use taskstore::migrate::{self, Migrator};
//!
//! let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
//! let mut conn = migrate::connect(&config)?; // one connection, no pool
//! let before = migrate::status(&mut conn)?;
//! assert!(before.applied.is_empty() && !before.pending.is_empty());
//! let applied = Migrator::from_config(&config).run(&mut conn)?;
//! assert_eq!(applied.len(), before.pending.len());
//! assert!(migrate::status(&mut conn)?.is_current());
//! # Ok(()) }
//! ```

mod checksum;
mod embedded;
mod invalid_index;
mod lock;
mod status;
mod step;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::field::Empty;

pub use self::checksum::CHECKSUM_TABLE;
use self::embedded::Source;
pub use self::embedded::{MigrationSql, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, embedded_up_sql};
pub use self::lock::LOCK_KEY;
pub use self::status::{AppliedMigration, MigrationInfo, MigrationStatus};
use crate::config::{
    BackendKind, Config, DEFAULT_MIGRATION_LOCK_TIMEOUT_MS, DEFAULT_STARTUP_WAIT_MS,
};
use crate::conn::DbConnection;
pub use crate::error::MigrateError;
use crate::error::{Error, Result};

/// How long [`run`] and [`revert`] wait for the migration lock: the default of
/// `DATABASE_STARTUP_WAIT_MS` (30 s).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_millis(DEFAULT_STARTUP_WAIT_MS);

/// The `lock_timeout` of each migration step on PostgreSQL: the default of
/// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS` (2 s).
pub const DEFAULT_STEP_LOCK_TIMEOUT: Duration =
    Duration::from_millis(DEFAULT_MIGRATION_LOCK_TIMEOUT_MS);

/// Runs and reverts migrations with a chosen bound on waiting for locks.
///
/// [`run`] and [`revert`] are `Migrator::new().run(..)` and `.revert(..)`; build one with
/// [`Migrator::from_config`] to wait as long as `DATABASE_STARTUP_WAIT_MS` and
/// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS` say, as start-up and the CLI do.
#[derive(Debug, Clone)]
pub struct Migrator {
    lock_wait: Duration,
    step_lock_timeout: Duration,
    source: Source,
    /// Where a second connection can watch a blocked step from (set by `from_config`).
    observer: Option<Config>,
}

impl Default for Migrator {
    fn default() -> Self {
        Self {
            lock_wait: DEFAULT_LOCK_WAIT,
            step_lock_timeout: DEFAULT_STEP_LOCK_TIMEOUT,
            source: Source::Embedded,
            observer: None,
        }
    }
}

impl Migrator {
    /// Waits up to [`DEFAULT_LOCK_WAIT`] for the lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits up to `DATABASE_STARTUP_WAIT_MS` in all, each step's statements waiting at most
    /// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS` for a lock at a time. Once a step has timed out,
    /// a second connection (to the migration URL) watches `pg_blocking_pids` of the migrating
    /// session, so that the log and the error name the sessions that blocked it.
    pub fn from_config(config: &Config) -> Self {
        let mut migrator = Self::new()
            .lock_wait(config.pool().startup_wait)
            .step_lock_timeout(config.migration_lock_timeout());
        migrator.observer = Some(config.clone());
        migrator
    }

    /// Bounds the whole wait of a run on PostgreSQL: for the migration lock (then
    /// [`MigrateError::LockTimeout`]) and for the table locks of its steps, re-tried until
    /// then (then [`MigrateError::StepLockTimeout`]). (SQLite waits for its write lock as long
    /// as `busy_timeout`, then fails with [`MigrateError::SqliteBusy`].) Default: 30 s.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The `lock_timeout` each step runs under on PostgreSQL (at least 1 ms; default
    /// [`DEFAULT_STEP_LOCK_TIMEOUT`], 2 s). A step whose statement waits longer for a lock is
    /// rolled back — so that the queries queued behind its lock request run — and re-tried
    /// with backoff within [`Migrator::lock_wait`], each wait logged with the sessions that
    /// held table locks.
    pub fn step_lock_timeout(mut self, timeout: Duration) -> Self {
        self.step_lock_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Takes the migrations from `dir`, a Diesel migration directory for the connection's
    /// backend (`<version>_<name>/up.sql`, `down.sql`, optional `metadata.toml`), instead of
    /// the embedded ones: for rehearsing a release's migrations against a copy of production,
    /// and for tests. Its applied migrations are checksummed like the embedded ones; a run
    /// fails with [`MigrateError::Source`] when `dir` cannot be read.
    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.source = Source::Directory(dir.into());
        self
    }

    fn bounds(&self, start: Instant) -> step::Bounds<'_> {
        step::Bounds {
            observer: self.observer.as_ref(),
            lock_timeout: self.step_lock_timeout,
            deadline: start + self.lock_wait,
            wait: self.lock_wait,
        }
    }

    /// Applies every pending migration, in order, under the migration lock; each is timed and
    /// logged. With nothing pending (and every checksum recorded) it only reads: no lock, no
    /// write. `conn` must not be inside a transaction.
    ///
    /// Errors: [`MigrateError::UnknownApplied`] and [`MigrateError::ChecksumMismatch`] before
    /// anything runs; [`MigrateError::LockTimeout`], [`MigrateError::TransactionModePooler`]
    /// or [`MigrateError::SqliteBusy`] when the lock cannot be had;
    /// [`MigrateError::ApplyFailed`] naming the migration that failed (the ones before it stay
    /// applied). All are [`crate::Error::Migration`]; a lost connection is the usual
    /// [`crate::Error`].
    #[tracing::instrument(
        name = "migrate.run",
        skip_all,
        fields(backend = %conn.backend(), applied = Empty, duration_ms = Empty)
    )]
    pub fn run(&self, conn: &mut DbConnection) -> Result<Vec<AppliedMigration>> {
        let start = Instant::now();
        let known = embedded::known(conn.backend(), &self.source)?;
        // Read first, without the lock: with nothing to do a run only reads, so it neither
        // waits for an advisory lock another session holds (PostgreSQL) nor for the write lock
        // of a writer (SQLite, where WAL lets the reads proceed beside it).
        let before = status::read(conn, &known)?;
        before.check()?;
        if before.pending.is_empty() && status::checksums_complete(conn, &before)? {
            tracing::debug!(applied = before.applied.len(), "schema is current");
            tracing::Span::current().record("applied", 0);
            return Ok(Vec::new());
        }
        // Something to do: take the lock and read again under it, since another instance may
        // have migrated meanwhile.
        let done = lock::locked(conn, self.lock_wait, |conn| {
            checksum::create_tables(conn)?;
            let status = status::read(conn, &known)?;
            status.check()?;
            checksum::record_missing(conn, &known, &status)?;
            if status.pending.is_empty() {
                tracing::debug!(applied = status.applied.len(), "schema is current");
            }
            let mut done = Vec::with_capacity(status.pending.len());
            for info in &status.pending {
                let k = known
                    .iter()
                    .find(|k| &k.info == info)
                    .expect("pending migrations are known");
                let duration_ms = step::apply(conn, k, &self.source, &self.bounds(start))?;
                done.push(AppliedMigration {
                    migration: info.clone(),
                    duration_ms,
                });
            }
            Ok(done)
        })?;
        tracing::Span::current().record("applied", done.len());
        step::record_duration(start.elapsed());
        Ok(done)
    }

    /// Reverts the newest `steps` applied migrations (newest first) under the migration lock,
    /// running their `down.sql`. `conn` must not be inside a transaction.
    ///
    /// Errors: [`MigrateError::RevertBlocked`] when the newest applied migrations are unknown
    /// to this binary (revert them with the release that applied them); the lock errors of
    /// [`Migrator::run`]; [`MigrateError::RevertFailed`] naming the migration that failed.
    #[tracing::instrument(
        name = "migrate.revert",
        skip_all,
        fields(backend = %conn.backend(), steps, duration_ms = Empty)
    )]
    pub fn revert(&self, conn: &mut DbConnection, steps: usize) -> Result<Vec<MigrationInfo>> {
        let start = Instant::now();
        let known = embedded::known(conn.backend(), &self.source)?;
        let reverted = lock::locked(conn, self.lock_wait, |conn| {
            checksum::create_tables(conn)?;
            let status = status::read(conn, &known)?;
            if !status.unknown.is_empty() {
                return Err(MigrateError::RevertBlocked {
                    versions: status.unknown,
                }
                .into());
            }
            let mut reverted = Vec::new();
            for info in status.applied.iter().rev().take(steps) {
                let k = known
                    .iter()
                    .find(|k| &k.info == info)
                    .expect("applied migrations in the status are known");
                step::unapply(conn, k, &self.source, &self.bounds(start))?;
                reverted.push(info.clone());
            }
            Ok(reverted)
        })?;
        step::record_duration(start.elapsed());
        Ok(reverted)
    }
}

/// Reports applied, pending, unknown and changed migrations. Reads only: creates no table and
/// takes no lock, so it may run on any connection, pooled or not.
#[tracing::instrument(name = "migrate.status", skip_all, fields(backend = %conn.backend()))]
pub fn status(conn: &mut DbConnection) -> Result<MigrationStatus> {
    let known = embedded::known(conn.backend(), &Source::Embedded)?;
    status::read(conn, &known)
}

/// [`Migrator::run`] waiting up to [`DEFAULT_LOCK_WAIT`] for the lock.
pub fn run(conn: &mut DbConnection) -> Result<Vec<AppliedMigration>> {
    Migrator::new().run(conn)
}

/// [`Migrator::revert`] waiting up to [`DEFAULT_LOCK_WAIT`] for the lock.
pub fn revert(conn: &mut DbConnection, steps: usize) -> Result<Vec<MigrationInfo>> {
    Migrator::new().revert(conn, steps)
}

/// Opens the dedicated migration connection: to `DATABASE_MIGRATION_URL` when set, else
/// `DATABASE_URL`, customised like a pooled connection, outside any pool, except that its
/// `statement_timeout` is `DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS` (default none) instead of
/// `DATABASE_STATEMENT_TIMEOUT_MS`, so a long index build or backfill is not cancelled. It does not wait
/// for the database to come up: that is [`crate::Database::connect`]'s start-up wait.
///
/// Errors: [`crate::Error::Config`] on `DATABASE_MIGRATION_URL` when `DATABASE_URL` looks like
/// a transaction-mode pooler (`DATABASE_PREPARED_STATEMENTS=false`, the documented setting for
/// one, or a host containing `-pooler`, Neon's pooled endpoint) and no migration URL is set:
/// the session advisory lock that keeps concurrent starters apart does not hold through such a
/// pooler, and whether a run notices depends on which server session answers, so it is refused
/// before anything runs. A direct connection with prepared statements off sets
/// `DATABASE_MIGRATION_URL` to the same URL. [`crate::Error::Unavailable`] when the connection
/// cannot be opened.
pub fn connect(config: &Config) -> Result<DbConnection> {
    if config.migration_url().is_none()
        && config.database_url().backend() == BackendKind::Postgres
        && (!config.session().prepared_statements
            || config
                .database_url()
                .host()
                .is_some_and(|h| h.contains("-pooler")))
    {
        return Err(Error::config(
            "DATABASE_MIGRATION_URL",
            "DATABASE_URL looks like a transaction-mode pooler (DATABASE_PREPARED_STATEMENTS=false \
             or a -pooler host), where the migration advisory lock does not hold: set \
             DATABASE_MIGRATION_URL to the database's direct endpoint (the same URL if there is \
             no pooler), or set DATABASE_MIGRATE_ON_STARTUP=false and migrate elsewhere",
        ));
    }
    // DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS, not the pool's DATABASE_STATEMENT_TIMEOUT_MS: a
    // long step cancelled half-way would fail again at every start.
    crate::conn::open(&config.for_migrations(), config.migration_target())
}

/// Applies pending migrations at start-up (`DATABASE_MIGRATE_ON_STARTUP`), on a connection of
/// its own, waiting up to `DATABASE_STARTUP_WAIT_MS` for the lock.
#[tracing::instrument(name = "migrate.on_startup", skip_all)]
pub(crate) fn run_on_startup(config: &Config) -> Result<()> {
    let start = Instant::now();
    let mut conn = connect(config)?;
    let applied = Migrator::from_config(config).run(&mut conn)?;
    tracing::info!(
        applied = applied.len(),
        elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        "migrations checked"
    );
    Ok(())
}
