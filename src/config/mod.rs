//! Configuration from the environment, validated once at start-up.
//!
//! Every value comes from an environment variable. `.env` files are read with `dotenvy`:
//! `.env` first, then `.env.<TASKSTORE_ENV>` on top of it; real environment variables always
//! win. Files are looked up in the current directory.
//!
//! **The variables** — name, default, how each is parsed, what it means, whether it is secret —
//! are one table, [`SPECS`]; [`VARIABLES`], the `DEFAULT_*` constants, the report
//! ([`Config::effective`], `taskstore config`) and the README's table are derived from it or
//! checked against it (`tests/config.rs`).
//!
//! Every value is validated here; a bad one is an [`Error::Config`](crate::Error::Config)
//! naming the variable and the expected form, never the secret value. So is every rule the pool
//! relies on (minimum idle at most the pool size, idle timeout below the lifetime, positive
//! deadlines, values the server accepts): a [`Config`] that exists can be used by
//! [`Database::connect`](crate::Database::connect), and cannot be changed afterwards except for
//! [`Config::with_migrate_on_startup`].
//!
//! Files: `variables` (the table), `spec` (what a row says), `defaults` (the named defaults),
//! `dotenv` (the layers values come from), `values` (reading one variable through its row),
//! `build` (assembling and cross-checking), `url` ([`DatabaseUrl`]), `tls` (the production TLS
//! rule), `rotate` (building a URL again from rotated secret files), `report` (the effective
//! configuration).

mod build;
mod defaults;
mod dotenv;
mod libpq;
mod postgres;
mod report;
mod rotate;
mod spec;
mod tls;
mod url;
mod values;
mod variables;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use defaults::*;
pub(crate) use rotate::{Reload, Stamp};
pub use spec::{DefaultValue, MAX_MILLIS, MAX_SECONDS, Parse, TextCheck, VariableSpec};
pub use tls::TlsRequirement;
pub use url::{BackendKind, DatabaseUrl};
pub use values::Source;
pub use variables::{SPECS, VARIABLES};

use crate::error::Result;

/// The deployment environment, from `TASKSTORE_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development (the default).
    Development,
    /// Automated tests.
    Test,
    /// Production: TLS is required for non-loopback PostgreSQL hosts.
    Production,
}

impl Environment {
    /// The lowercase name, as written in `TASKSTORE_ENV` and in `.env.<name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// `development` (or `dev`, or empty), `test`, `production` (or `prod`), in any case.
    fn parse(text: &str) -> std::result::Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            _ => Err(format!(
                "expected development, test or production, got {text:?}"
            )),
        }
    }
}

/// Pool sizing, deadlines and retries. Read it through [`Config::pool`]; it is built only by
/// the configuration, which guarantees `min_idle <= max_size`, `idle_timeout < max_lifetime`,
/// positive `acquire_timeout`, `connect_timeout` and timeouts, and durations within
/// [`MAX_MILLIS`] / [`MAX_SECONDS`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// `DATABASE_POOL_MAX_SIZE` (1 to 1000).
    pub max_size: u32,
    /// `DATABASE_POOL_MIN_IDLE` (at most `max_size`).
    pub min_idle: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS` (positive).
    pub acquire_timeout: Duration,
    /// `DATABASE_POOL_MAX_WAITERS` (0 = unlimited).
    pub max_waiters: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS` (positive).
    pub connect_timeout: Duration,
    /// `DATABASE_STARTUP_WAIT_MS`.
    pub startup_wait: Duration,
    /// `DATABASE_IDLE_TIMEOUT_S` (positive, below `max_lifetime`).
    pub idle_timeout: Duration,
    /// `DATABASE_MAX_LIFETIME_S` (positive).
    pub max_lifetime: Duration,
    /// `DATABASE_VALIDATE_IDLE_MS`.
    pub validate_idle: Duration,
    /// `DATABASE_RETRY_ATTEMPTS`.
    pub retry_attempts: u32,
    /// `DATABASE_RETRY_BASE_DELAY_MS`.
    pub retry_base_delay: Duration,
    /// `DATABASE_LEAK_THRESHOLD_MS` (`None` = off).
    pub leak_threshold: Option<Duration>,
}

/// Per-session settings applied to every new connection. Read it through [`Config::session`];
/// it is built only by the configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (0 = none).
    pub statement_timeout: Duration,
    /// `DATABASE_LOCK_TIMEOUT_MS` (0 = none).
    pub lock_timeout: Duration,
    /// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` (0 = none).
    pub idle_in_transaction_timeout: Duration,
    /// `DATABASE_APPLICATION_NAME` (at most 63 printable ASCII characters).
    pub application_name: String,
    /// `DATABASE_PREPARED_STATEMENTS`.
    pub prepared_statements: bool,
}

/// The validated configuration. Build it with [`Config::from_env`] (or [`Config::from_vars`]
/// in tests), then pass it to [`crate::Database::connect`].
///
/// ```
/// let config = taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")]).unwrap();
/// assert_eq!(config.database_url().backend(), taskstore::BackendKind::Sqlite);
/// assert_eq!(config.pool().max_size, taskstore::config::DEFAULT_POOL_MAX_SIZE);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// `TASKSTORE_ENV`.
    environment: Environment,
    /// `DATABASE_URL` (with `DATABASE_PASSWORD` merged in).
    database_url: DatabaseUrl,
    /// `DATABASE_MIGRATION_URL`.
    migration_url: Option<DatabaseUrl>,
    /// `DATABASE_REPLICA_URLS`.
    replica_urls: Vec<DatabaseUrl>,
    /// `DATABASE_REPLICA_MAX_LAG_MS` (zero: lag not checked).
    replica_max_lag: Duration,
    /// Pool settings.
    pool: PoolConfig,
    /// Session settings.
    session: SessionConfig,
    /// `DATABASE_TX_RETRY_ATTEMPTS`.
    tx_retry_attempts: u32,
    /// `DATABASE_MIGRATE_ON_STARTUP`.
    migrate_on_startup: bool,
    /// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS`.
    migration_lock_timeout: Duration,
    /// `DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS`.
    migration_statement_timeout: Duration,
    /// `DATABASE_REQUIRE_TLS`.
    require_tls: TlsRequirement,
    /// `TASKSTORE_LOG`.
    log_filter: String,
    /// Where each variable's value came from.
    sources: BTreeMap<&'static str, Source>,
}

impl Config {
    /// Reads the process environment, layered over `.env` and `.env.<TASKSTORE_ENV>` in the
    /// current directory.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the first variable (or `.env` file) that
    /// is invalid.
    pub fn from_env() -> Result<Self> {
        Self::from_env_in(Path::new("."))
    }

    /// Like [`Config::from_env`], with the `.env` files looked up in `dir`.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_env_in(dir: &Path) -> Result<Self> {
        Self::from_env_with(dir, &[])
    }

    /// Like [`Config::from_env_in`], with `overrides` (from command-line flags) winning over
    /// everything else.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_env_with(dir: &Path, overrides: &[(&str, String)]) -> Result<Self> {
        Self::from_env_with_defaults(dir, overrides, &[])
    }

    /// Like [`Config::from_env_with`], with `defaults` replacing the library's defaults for
    /// the variables they name (a command-line tool's shorter start-up wait, say); everything
    /// the user sets wins over them, and the report shows them as `default (CLI)`.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_env_with_defaults(
        dir: &Path,
        overrides: &[(&str, String)],
        defaults: &[(&str, String)],
    ) -> Result<Self> {
        let (raw, expanded) = dotenv::layered(dir, overrides, defaults)?;
        build::build(values::Values::new(raw).with_expanded(expanded))
    }

    /// Builds a configuration from explicit variables only (no process environment, no files):
    /// for tests and embedding.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the first invalid variable, including a
    /// `DATABASE_*` or `TASKSTORE_*` name taskstore does not read.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let raw = vars
            .into_iter()
            .map(|(k, v)| {
                (
                    k.as_ref().to_owned(),
                    (v.as_ref().to_owned(), Source::Environment),
                )
            })
            .collect();
        build::build(values::Values::new(raw))
    }

    /// The same configuration sized for a one-shot process (a CLI run, which uses one
    /// connection and exits; idle connections opened up front would only take server slots
    /// from concurrent runs): no idle minimum unless `DATABASE_POOL_MIN_IDLE` was set, and a
    /// pool of one connection unless either pool variable was set (so that the two stay
    /// consistent). The report shows these values with the source "default (CLI)".
    #[must_use]
    pub fn with_one_shot_pool(mut self) -> Self {
        let unset = |c: &Self, name| matches!(c.source_of(name), Source::Default);
        let min_idle_unset = unset(&self, "DATABASE_POOL_MIN_IDLE");
        if min_idle_unset && unset(&self, "DATABASE_POOL_MAX_SIZE") {
            self.pool.max_size = 1;
            self.sources
                .insert("DATABASE_POOL_MAX_SIZE", Source::ProgramDefault);
        }
        if min_idle_unset {
            self.pool.min_idle = 0;
            self.sources
                .insert("DATABASE_POOL_MIN_IDLE", Source::ProgramDefault);
        }
        self
    }

    /// The same configuration with `DATABASE_MIGRATE_ON_STARTUP` replaced: `false` for tools that
    /// only inspect the schema (`taskstore migrate status`), `true` to force start-up migration.
    /// The only change a built configuration accepts: no invariant depends on it.
    #[must_use]
    pub fn with_migrate_on_startup(mut self, migrate: bool) -> Self {
        self.migrate_on_startup = migrate;
        self
    }

    /// `TASKSTORE_ENV`.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// `DATABASE_URL` (with `DATABASE_PASSWORD` merged in).
    pub fn database_url(&self) -> &DatabaseUrl {
        &self.database_url
    }

    /// `DATABASE_MIGRATION_URL`, when set.
    pub fn migration_url(&self) -> Option<&DatabaseUrl> {
        self.migration_url.as_ref()
    }

    /// The migration target: `DATABASE_MIGRATION_URL` when set, else `DATABASE_URL`.
    pub fn migration_target(&self) -> &DatabaseUrl {
        self.migration_url.as_ref().unwrap_or(&self.database_url)
    }

    /// `DATABASE_REPLICA_URLS`.
    pub fn replica_urls(&self) -> &[DatabaseUrl] {
        &self.replica_urls
    }

    /// `DATABASE_REPLICA_MAX_LAG_MS`: a replica whose replay is further behind the primary
    /// than this is skipped by reads (default 5000 ms; zero means lag is not checked). See
    /// [`Database::read_conn`](crate::Database::read_conn).
    pub fn replica_max_lag(&self) -> Duration {
        self.replica_max_lag
    }

    /// Pool sizing, deadlines and retries.
    pub fn pool(&self) -> &PoolConfig {
        &self.pool
    }

    /// Per-session settings applied to every new connection.
    pub fn session(&self) -> &SessionConfig {
        &self.session
    }

    /// `DATABASE_TX_RETRY_ATTEMPTS`.
    pub fn tx_retry_attempts(&self) -> u32 {
        self.tx_retry_attempts
    }

    /// `DATABASE_MIGRATE_ON_STARTUP`.
    pub fn migrate_on_startup(&self) -> bool {
        self.migrate_on_startup
    }

    /// `DATABASE_MIGRATION_LOCK_TIMEOUT_MS`: the `lock_timeout` each migration step runs under
    /// on PostgreSQL (positive; default 2000 ms).
    pub fn migration_lock_timeout(&self) -> Duration {
        self.migration_lock_timeout
    }

    /// `DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS`: the `statement_timeout` of the migration
    /// connection ([`crate::migrate::connect`]) on PostgreSQL, in place of
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 0 = none: a concurrent index build or a
    /// backfill on a big table may run for hours, and one cancelled half-way leaves an
    /// `INVALID` index that is rebuilt, and cancelled again, at every start).
    pub fn migration_statement_timeout(&self) -> Duration {
        self.migration_statement_timeout
    }

    /// This configuration with the migration connection's session settings: its
    /// `statement_timeout` (and the client-side watchdog's bound derived from it) is
    /// `DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS`.
    pub(crate) fn for_migrations(&self) -> Config {
        let mut config = self.clone();
        config.session.statement_timeout = self.migration_statement_timeout;
        config
    }

    /// `DATABASE_REQUIRE_TLS`.
    pub fn require_tls(&self) -> TlsRequirement {
        self.require_tls
    }

    /// `TASKSTORE_LOG`.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }

    /// Where `variable`'s value came from ([`Source::Default`] for names it does not know).
    pub fn source_of(&self, variable: &str) -> Source {
        self.sources
            .get(variable)
            .cloned()
            .unwrap_or(Source::Default)
    }

    /// The effective configuration as (variable, value, source) rows, one per variable in
    /// [`SPECS`] order, secrets redacted: what `taskstore config` prints.
    pub fn effective(&self) -> Vec<(&'static str, String, Source)> {
        report::rows(self)
    }
}
