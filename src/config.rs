//! Configuration from the environment, validated once at start-up.
//!
//! Every value comes from an environment variable. `.env` files are read with `dotenvy`:
//! `.env` first, then `.env.<TASKSTORE_ENV>` on top of it; real environment variables always
//! win. Files are looked up in the current directory.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `sqlite://taskstore.db` | backend and location: `postgres://`, `postgresql://`, `sqlite://path`, `sqlite::memory:` |
//! | `DATABASE_URL_FILE` | — | read the URL from this file instead (container secrets) |
//! | `DATABASE_PASSWORD`, `DATABASE_PASSWORD_FILE` | — | password kept out of the URL; overrides one in the URL |
//! | `DATABASE_MIGRATION_URL` | `DATABASE_URL` | privileged URL used only for migrations |
//! | `DATABASE_REPLICA_URLS` | — | comma-separated read replicas (PostgreSQL) |
//! | `DATABASE_POOL_MAX_SIZE` | 10 | pool size |
//! | `DATABASE_POOL_MIN_IDLE` | 2 (capped at the pool size) | connections kept open when idle |
//! | `DATABASE_ACQUIRE_TIMEOUT_MS` | 5000 | hard deadline for getting a connection |
//! | `DATABASE_POOL_MAX_WAITERS` | 0 (unlimited) | callers allowed to wait for a connection |
//! | `DATABASE_CONNECT_TIMEOUT_MS` | 5000 | one connection attempt (libpq rounds up to whole seconds, minimum 2) |
//! | `DATABASE_STARTUP_WAIT_MS` | 30000 | how long start-up waits for the database |
//! | `DATABASE_IDLE_TIMEOUT_S` | 600 | close idle connections after |
//! | `DATABASE_MAX_LIFETIME_S` | 1800 | recycle connections after (each jittered down by up to 5 %) |
//! | `DATABASE_VALIDATE_IDLE_MS` | 30000 | a connection idle longer than this is checked with a round trip before it is handed out (every checkout polls the socket without a round trip, so connections the server closed are never handed out) |
//! | `DATABASE_STATEMENT_TIMEOUT_MS` | 30000 | per statement (PostgreSQL) |
//! | `DATABASE_LOCK_TIMEOUT_MS` | 10000 | waiting for a lock (PostgreSQL) |
//! | `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` | 60000 | server kills idle transactions (PostgreSQL) |
//! | `DATABASE_RETRY_ATTEMPTS` | 3 | acquisition retries for transient errors |
//! | `DATABASE_RETRY_BASE_DELAY_MS` | 50 | first backoff delay (exponential, jittered) |
//! | `DATABASE_TX_RETRY_ATTEMPTS` | 5 | re-runs of a transaction on serialization failure / deadlock |
//! | `DATABASE_LEAK_THRESHOLD_MS` | 0 (off) | report connections held longer than this |
//! | `DATABASE_MIGRATE_ON_STARTUP` | true | apply pending migrations in `Database::connect` |
//! | `DATABASE_PREPARED_STATEMENTS` | true | false for transaction-mode poolers (PgBouncer) |
//! | `DATABASE_REQUIRE_TLS` | auto | `auto`: required in production for non-loopback hosts; `true`; `false` (explicitly allow plain TCP) |
//! | `DATABASE_APPLICATION_NAME` | taskstore | shown in `pg_stat_activity` |
//! | `TASKSTORE_ENV` | development | development, test or production; selects `.env.<env>` |
//! | `TASKSTORE_LOG` | info | log filter (tracing `EnvFilter` syntax) |
//!
//! Every value is validated here; a bad one is an [`Error::Config`] naming the variable and the
//! expected form, never the secret value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::redact::{redact_url, register_password, register_secret};

/// Default for `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://taskstore.db";
/// Default for `DATABASE_POOL_MAX_SIZE`.
pub const DEFAULT_POOL_MAX_SIZE: u32 = 10;
/// Default for `DATABASE_POOL_MIN_IDLE`: two warm connections serve a health check and a request
/// without a connect on the request path, while holding few server slots per instance.
pub const DEFAULT_POOL_MIN_IDLE: u32 = 2;
/// Default for `DATABASE_ACQUIRE_TIMEOUT_MS`.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 5_000;
/// Default for `DATABASE_POOL_MAX_WAITERS` (0 = unlimited).
pub const DEFAULT_POOL_MAX_WAITERS: u32 = 0;
/// Default for `DATABASE_CONNECT_TIMEOUT_MS`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default for `DATABASE_STARTUP_WAIT_MS`.
pub const DEFAULT_STARTUP_WAIT_MS: u64 = 30_000;
/// Default for `DATABASE_IDLE_TIMEOUT_S`.
pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 600;
/// Default for `DATABASE_MAX_LIFETIME_S`.
pub const DEFAULT_MAX_LIFETIME_S: u64 = 1_800;
/// Default for `DATABASE_VALIDATE_IDLE_MS`: like HikariCP's `aliveBypassWindow`, a connection
/// used in the last 30 s is trusted; the round trip is paid only after a quiet spell.
pub const DEFAULT_VALIDATE_IDLE_MS: u64 = 30_000;
/// Default for `DATABASE_STATEMENT_TIMEOUT_MS`.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Default for `DATABASE_LOCK_TIMEOUT_MS`.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 10_000;
/// Default for `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 60_000;
/// Default for `DATABASE_RETRY_ATTEMPTS`.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Default for `DATABASE_RETRY_BASE_DELAY_MS`.
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = 50;
/// Default for `DATABASE_TX_RETRY_ATTEMPTS`.
pub const DEFAULT_TX_RETRY_ATTEMPTS: u32 = 5;
/// Default for `DATABASE_APPLICATION_NAME`.
pub const DEFAULT_APPLICATION_NAME: &str = "taskstore";
/// Default for `TASKSTORE_LOG`.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Every variable this module reads, in documentation order.
pub const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "DATABASE_PASSWORD",
    "DATABASE_PASSWORD_FILE",
    "DATABASE_MIGRATION_URL",
    "DATABASE_REPLICA_URLS",
    "DATABASE_POOL_MAX_SIZE",
    "DATABASE_POOL_MIN_IDLE",
    "DATABASE_ACQUIRE_TIMEOUT_MS",
    "DATABASE_POOL_MAX_WAITERS",
    "DATABASE_CONNECT_TIMEOUT_MS",
    "DATABASE_STARTUP_WAIT_MS",
    "DATABASE_IDLE_TIMEOUT_S",
    "DATABASE_MAX_LIFETIME_S",
    "DATABASE_VALIDATE_IDLE_MS",
    "DATABASE_STATEMENT_TIMEOUT_MS",
    "DATABASE_LOCK_TIMEOUT_MS",
    "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "DATABASE_RETRY_ATTEMPTS",
    "DATABASE_RETRY_BASE_DELAY_MS",
    "DATABASE_TX_RETRY_ATTEMPTS",
    "DATABASE_LEAK_THRESHOLD_MS",
    "DATABASE_MIGRATE_ON_STARTUP",
    "DATABASE_PREPARED_STATEMENTS",
    "DATABASE_REQUIRE_TLS",
    "DATABASE_APPLICATION_NAME",
    "TASKSTORE_ENV",
    "TASKSTORE_LOG",
];

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
}

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// PostgreSQL (13 or newer).
    Postgres,
    /// Embedded SQLite.
    Sqlite,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        })
    }
}

/// `DATABASE_REQUIRE_TLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsRequirement {
    /// Required in production for non-loopback hosts.
    Auto,
    /// Always required for PostgreSQL.
    Required,
    /// Explicitly allowed off, even in production.
    Off,
}

/// A database location whose connection string is a secret.
///
/// `Debug` and `Display` show the redacted form (`postgres://app:***@db:5432/tasks`).
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: BackendKind,
    /// What the driver receives: a libpq URL with the password and session options merged in,
    /// or a SQLite path / URI.
    secret: SecretString,
    redacted: String,
    host: Option<String>,
}

impl DatabaseUrl {
    /// Parses a URL as it would appear in `DATABASE_URL`. `variable` names the source in errors.
    pub fn parse(variable: &str, raw: &str, password: Option<&str>) -> Result<Self> {
        let raw = raw.trim();
        register_secret(raw);
        if let Some(p) = password {
            register_password(p);
        }
        if let Some(p) = url::Url::parse(raw)
            .ok()
            .as_ref()
            .and_then(url::Url::password)
        {
            register_password(p);
        }
        if raw.is_empty() {
            return Err(Error::config(
                variable,
                "is empty; expected postgres://user@host:port/db, sqlite://path or sqlite::memory:",
            ));
        }
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("sqlite:") && password.is_some() {
            return Err(Error::config(
                "DATABASE_PASSWORD",
                "is set but DATABASE_URL points at SQLite, which has no password; unset it",
            ));
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Self::parse_postgres(variable, raw, password)
        } else if lower == "sqlite::memory:" || lower == "sqlite://:memory:" {
            // Each `Database` gets its own named in-memory database, shared by its connections.
            let name = format!(
                "file:taskstore-mem-{}?mode=memory&cache=shared",
                uuid::Uuid::now_v7().simple()
            );
            Ok(Self {
                backend: BackendKind::Sqlite,
                secret: SecretString::from(name),
                redacted: "sqlite::memory:".into(),
                host: None,
            })
        } else if let Some(path) = lower
            .strip_prefix("sqlite://")
            .map(|_| &raw["sqlite://".len()..])
            .or_else(|| {
                lower
                    .strip_prefix("sqlite:")
                    .map(|_| &raw["sqlite:".len()..])
            })
        {
            if path.is_empty() {
                return Err(Error::config(
                    variable,
                    "has no path; expected sqlite://path/to/file.db or sqlite::memory:",
                ));
            }
            Ok(Self {
                backend: BackendKind::Sqlite,
                secret: SecretString::from(path.to_owned()),
                redacted: format!("sqlite://{path}"),
                host: None,
            })
        } else {
            Err(Error::config(
                variable,
                "has an unsupported scheme; expected postgres://, postgresql://, sqlite://path or sqlite::memory:",
            ))
        }
    }

    fn parse_postgres(variable: &str, raw: &str, password: Option<&str>) -> Result<Self> {
        let mut url = url::Url::parse(raw).map_err(|e| {
            Error::config(variable, format!("is not a valid URL ({e}); expected postgres://user:password@host:port/database with special characters percent-encoded"))
        })?;
        // libpq would reject these later and echo the string back; refuse them here instead.
        for part in [url.username(), url.password().unwrap_or(""), url.path()] {
            if percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .is_err()
                || has_bad_percent(part)
            {
                return Err(Error::config(
                    variable,
                    "contains invalid percent-encoding; encode special characters as %XX",
                ));
            }
        }
        if url
            .host_str()
            .is_some_and(|h| h.starts_with('[') && !h.ends_with(']'))
        {
            return Err(Error::config(variable, "has an unclosed '[' in the host"));
        }
        if let Some(p) = password {
            // `set_password` leaves `%` as it is (the WHATWG userinfo set), and libpq
            // percent-decodes the userinfo: a password with a `%` would reach the server
            // mangled, or be refused as an invalid token. Encoding every byte outside RFC
            // 3986's unreserved set first makes libpq decode it back to exactly the
            // configured password.
            let encoded = percent_encoding::utf8_percent_encode(p, USERINFO_STRICT).to_string();
            url.set_password(Some(&encoded))
                .map_err(|_| Error::config(variable, "cannot carry a password (no host)"))?;
        }
        if let Some(p) = url.password() {
            register_password(p);
        }
        // A password may also travel as a libpq query parameter.
        for (k, v) in url.query_pairs() {
            if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") {
                register_password(&v);
            }
        }
        let host = url
            .host_str()
            .map(|h| h.trim_matches(|c| c == '[' || c == ']').to_owned());
        let redacted = redact_url(url.as_str());
        Ok(Self {
            backend: BackendKind::Postgres,
            secret: SecretString::from(url.to_string()),
            redacted,
            host,
        })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// True for `sqlite::memory:`: a database that lives only while a connection to it is open.
    pub fn is_memory(&self) -> bool {
        self.backend == BackendKind::Sqlite && self.redacted == "sqlite::memory:"
    }

    /// The redacted form, safe to print.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The host, for PostgreSQL URLs with one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// True when the URL has no host (Unix socket) or a loopback host.
    pub fn is_loopback(&self) -> bool {
        match self.host.as_deref() {
            None | Some("") | Some("localhost") => true,
            Some(h) if h.starts_with('/') => true,
            Some(h) => h
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
        }
    }

    /// The query parameter `key` of a PostgreSQL URL (`sslmode`, ...), if present.
    fn query_param(&self, key: &str) -> Option<String> {
        url::Url::parse(self.expose())
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The one place the secret is exposed: the string handed to the database driver.
    pub(crate) fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Returns a copy with extra libpq query parameters (session options, timeouts). Parameters
    /// the user already set win.
    pub(crate) fn with_libpq_params(&self, params: &[(&str, String)]) -> Self {
        if self.backend != BackendKind::Postgres {
            return self.clone();
        }
        let Ok(mut url) = url::Url::parse(self.expose()) else {
            return self.clone();
        };
        let existing: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        // libpq decodes %XX but not `+`, so the query is built by hand rather than with
        // `query_pairs_mut` (form encoding).
        let mut query = url.query().unwrap_or("").to_owned();
        for (k, v) in params {
            if !existing.iter().any(|e| e == k) {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(k);
                query.push('=');
                query.extend(percent_encoding::utf8_percent_encode(
                    v,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
        }
        url.set_query(Some(&query));
        Self {
            secret: SecretString::from(url.to_string()),
            ..self.clone()
        }
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const USERINFO_STRICT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn has_bad_percent(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Source {
    /// The built-in default.
    Default,
    /// A `.env` file (its name).
    DotEnv(String),
    /// A real environment variable.
    Environment,
    /// A command-line flag (e.g. `taskstore --database-url`).
    CommandLine,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::DotEnv(file) => write!(f, "{file} file"),
            Self::Environment => f.write_str("environment"),
            Self::CommandLine => f.write_str("command line"),
        }
    }
}

/// Pool sizing, deadlines and retries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// `DATABASE_POOL_MAX_SIZE`.
    pub max_size: u32,
    /// `DATABASE_POOL_MIN_IDLE`.
    pub min_idle: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`.
    pub acquire_timeout: Duration,
    /// `DATABASE_POOL_MAX_WAITERS` (0 = unlimited).
    pub max_waiters: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `DATABASE_STARTUP_WAIT_MS`.
    pub startup_wait: Duration,
    /// `DATABASE_IDLE_TIMEOUT_S`.
    pub idle_timeout: Duration,
    /// `DATABASE_MAX_LIFETIME_S`.
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

/// Per-session settings applied to every new connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (0 = none).
    pub statement_timeout: Duration,
    /// `DATABASE_LOCK_TIMEOUT_MS` (0 = none).
    pub lock_timeout: Duration,
    /// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS` (0 = none).
    pub idle_in_transaction_timeout: Duration,
    /// `DATABASE_APPLICATION_NAME`.
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
    /// Pool settings.
    pool: PoolConfig,
    /// Session settings.
    session: SessionConfig,
    /// `DATABASE_TX_RETRY_ATTEMPTS`.
    tx_retry_attempts: u32,
    /// `DATABASE_MIGRATE_ON_STARTUP`.
    migrate_on_startup: bool,
    /// `DATABASE_REQUIRE_TLS`.
    require_tls: TlsRequirement,
    /// `TASKSTORE_LOG`.
    log_filter: String,
    sources: BTreeMap<&'static str, Source>,
}

/// Values as looked up, with their source.
struct Vars {
    values: BTreeMap<String, (String, Source)>,
    sources: BTreeMap<&'static str, Source>,
}

impl Vars {
    fn get(&mut self, name: &'static str) -> Option<String> {
        match self.values.get(name) {
            Some((v, source)) => {
                self.sources.insert(name, source.clone());
                Some(v.clone())
            }
            None => {
                self.sources.insert(name, Source::Default);
                None
            }
        }
    }

    fn parse<T: std::str::FromStr>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.trim().is_empty() => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| Error::config(name, format!("expected {expected}, got {v:?}"))),
        }
    }

    fn millis(&mut self, name: &'static str, default: u64) -> Result<Duration> {
        self.parse(name, default, "a whole number of milliseconds")
            .map(Duration::from_millis)
    }

    fn secs(&mut self, name: &'static str, default: u64) -> Result<Duration> {
        self.parse(name, default, "a whole number of seconds")
            .map(Duration::from_secs)
    }

    fn flag(&mut self, name: &'static str, default: bool) -> Result<bool> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::config(
                    name,
                    format!("expected true or false, got {v:?}"),
                )),
            },
        }
    }

    /// A secret that may come from `NAME` or from the file named by `NAME_FILE`. A value read
    /// from a file is registered with the scrubber at once: as a password when `is_password`,
    /// else as a whole secret (a URL registered as a password would mask every quoted word
    /// that shares four characters with it, such as the host and user in libpq's messages).
    fn secret_or_file(
        &mut self,
        name: &'static str,
        file_name: &'static str,
        is_password: bool,
    ) -> Result<Option<String>> {
        let direct = self.get(name);
        let file = self.get(file_name);
        match (direct, file) {
            (Some(_), Some(_)) => Err(Error::config(
                file_name,
                format!("is set together with {name}; set only one of them"),
            )),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                    Error::config(
                        file_name,
                        format!("cannot read the file {:?}: {e}", path.trim()),
                    )
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_owned();
                if is_password {
                    register_password(&value);
                } else {
                    register_secret(value.trim());
                }
                if value.is_empty() {
                    return Err(Error::config(
                        file_name,
                        format!("the file {:?} is empty", path.trim()),
                    ));
                }
                Ok(Some(value))
            }
            (None, None) => Ok(None),
        }
    }
}

impl Config {
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

    /// `DATABASE_REPLICA_URLS`.
    pub fn replica_urls(&self) -> &[DatabaseUrl] {
        &self.replica_urls
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

    /// `DATABASE_REQUIRE_TLS`.
    pub fn require_tls(&self) -> TlsRequirement {
        self.require_tls
    }

    /// `TASKSTORE_LOG`.
    pub fn log_filter(&self) -> &str {
        &self.log_filter
    }

    /// The same configuration with `DATABASE_MIGRATE_ON_STARTUP` replaced: `false` for tools that
    /// only inspect the schema (`taskstore migrate status`), `true` to force start-up migration.
    #[must_use]
    pub fn with_migrate_on_startup(mut self, migrate: bool) -> Self {
        self.migrate_on_startup = migrate;
        self
    }

    /// Reads the process environment, layered over `.env` and `.env.<TASKSTORE_ENV>` in the
    /// current directory.
    pub fn from_env() -> Result<Self> {
        Self::from_env_in(Path::new("."))
    }

    /// Like [`Config::from_env`], with the `.env` files looked up in `dir`.
    pub fn from_env_in(dir: &Path) -> Result<Self> {
        Self::from_env_with(dir, &[])
    }

    /// Like [`Config::from_env_in`], with `overrides` (from command-line flags) winning over
    /// everything else.
    pub fn from_env_with(dir: &Path, overrides: &[(&str, String)]) -> Result<Self> {
        let mut values: BTreeMap<String, (String, Source)> = BTreeMap::new();
        let process: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| VARIABLES.contains(&k.as_str()))
            .collect();
        load_dotenv(&dir.join(".env"), ".env", &mut values)?;
        let env_name = process
            .get("TASKSTORE_ENV")
            .cloned()
            .or_else(|| values.get("TASKSTORE_ENV").map(|(v, _)| v.clone()));
        if let Some(env_name) = env_name {
            let env = parse_environment(&env_name)?;
            let file = format!(".env.{}", env.as_str());
            load_dotenv(&dir.join(&file), &file, &mut values)?;
        }
        for (k, v) in process {
            values.insert(k, (v, Source::Environment));
        }
        for (k, v) in overrides {
            values.insert((*k).to_owned(), (v.clone(), Source::CommandLine));
        }
        Self::build(Vars {
            values,
            sources: BTreeMap::new(),
        })
    }

    /// Builds a configuration from explicit variables only (no process environment, no files):
    /// for tests and embedding.
    pub fn from_vars<K: AsRef<str>, V: AsRef<str>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let values = vars
            .into_iter()
            .map(|(k, v)| {
                (
                    k.as_ref().to_owned(),
                    (v.as_ref().to_owned(), Source::Environment),
                )
            })
            .collect();
        Self::build(Vars {
            values,
            sources: BTreeMap::new(),
        })
    }

    fn build(mut vars: Vars) -> Result<Self> {
        let unknown: Vec<&String> = vars
            .values
            .keys()
            .filter(|k| {
                (k.starts_with("DATABASE_") || k.starts_with("TASKSTORE_"))
                    && !VARIABLES.contains(&k.as_str())
            })
            .collect();
        if let Some(k) = unknown.first() {
            return Err(Error::config(
                k.as_str(),
                "is not a taskstore variable; see the README's table for the supported names",
            ));
        }
        let environment = match vars.get("TASKSTORE_ENV") {
            Some(v) => parse_environment(&v)?,
            None => Environment::Development,
        };
        let password = vars.secret_or_file("DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE", true)?;
        let (url_var, raw_url) =
            match vars.secret_or_file("DATABASE_URL", "DATABASE_URL_FILE", false)? {
                Some(u) => (
                    if vars.sources.get("DATABASE_URL") == Some(&Source::Default) {
                        "DATABASE_URL_FILE"
                    } else {
                        "DATABASE_URL"
                    },
                    u,
                ),
                None => ("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned()),
            };
        let database_url = DatabaseUrl::parse(url_var, &raw_url, password.as_deref())?;
        let migration_url = match vars
            .get("DATABASE_MIGRATION_URL")
            .filter(|v| !v.trim().is_empty())
        {
            Some(u) => {
                let parsed = DatabaseUrl::parse("DATABASE_MIGRATION_URL", &u, None)?;
                if parsed.backend() != database_url.backend() {
                    return Err(Error::config(
                        "DATABASE_MIGRATION_URL",
                        format!(
                            "points at {} but DATABASE_URL points at {}; both must use the same backend",
                            parsed.backend(),
                            database_url.backend()
                        ),
                    ));
                }
                Some(parsed)
            }
            None => None,
        };
        let replica_urls = match vars.get("DATABASE_REPLICA_URLS") {
            Some(list) => {
                let mut urls = Vec::new();
                for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let u = DatabaseUrl::parse("DATABASE_REPLICA_URLS", part, password.as_deref())?;
                    if u.backend() != BackendKind::Postgres {
                        return Err(Error::config(
                            "DATABASE_REPLICA_URLS",
                            "read replicas are supported on PostgreSQL only; use postgres:// URLs",
                        ));
                    }
                    urls.push(u);
                }
                if !urls.is_empty() && database_url.backend() != BackendKind::Postgres {
                    return Err(Error::config(
                        "DATABASE_REPLICA_URLS",
                        "is set but DATABASE_URL is not PostgreSQL",
                    ));
                }
                urls
            }
            None => Vec::new(),
        };

        let max_size: u32 = vars.parse(
            "DATABASE_POOL_MAX_SIZE",
            DEFAULT_POOL_MAX_SIZE,
            "a pool size from 1 to 1000",
        )?;
        if !(1..=1000).contains(&max_size) {
            return Err(Error::config(
                "DATABASE_POOL_MAX_SIZE",
                format!("expected a pool size from 1 to 1000, got {max_size}"),
            ));
        }
        let min_idle_set = vars.values.contains_key("DATABASE_POOL_MIN_IDLE");
        let min_idle: u32 = vars.parse(
            "DATABASE_POOL_MIN_IDLE",
            DEFAULT_POOL_MIN_IDLE.min(max_size),
            "a whole number of connections",
        )?;
        if min_idle_set && min_idle > max_size {
            return Err(Error::config(
                "DATABASE_POOL_MIN_IDLE",
                format!(
                    "is {min_idle}, larger than DATABASE_POOL_MAX_SIZE ({max_size}); it must be at most the pool size"
                ),
            ));
        }
        let acquire_timeout =
            vars.millis("DATABASE_ACQUIRE_TIMEOUT_MS", DEFAULT_ACQUIRE_TIMEOUT_MS)?;
        if acquire_timeout.is_zero() {
            return Err(Error::config(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                "must be greater than 0",
            ));
        }
        let max_waiters = vars.parse(
            "DATABASE_POOL_MAX_WAITERS",
            DEFAULT_POOL_MAX_WAITERS,
            "a whole number of callers (0 = unlimited)",
        )?;
        let connect_timeout =
            vars.millis("DATABASE_CONNECT_TIMEOUT_MS", DEFAULT_CONNECT_TIMEOUT_MS)?;
        if connect_timeout.is_zero() {
            return Err(Error::config(
                "DATABASE_CONNECT_TIMEOUT_MS",
                "must be greater than 0",
            ));
        }
        let startup_wait = vars.millis("DATABASE_STARTUP_WAIT_MS", DEFAULT_STARTUP_WAIT_MS)?;
        let idle_timeout = vars.secs("DATABASE_IDLE_TIMEOUT_S", DEFAULT_IDLE_TIMEOUT_S)?;
        let max_lifetime = vars.secs("DATABASE_MAX_LIFETIME_S", DEFAULT_MAX_LIFETIME_S)?;
        if idle_timeout.is_zero() || max_lifetime.is_zero() {
            return Err(Error::config(
                if idle_timeout.is_zero() {
                    "DATABASE_IDLE_TIMEOUT_S"
                } else {
                    "DATABASE_MAX_LIFETIME_S"
                },
                "must be greater than 0",
            ));
        }
        if idle_timeout >= max_lifetime {
            return Err(Error::config(
                "DATABASE_IDLE_TIMEOUT_S",
                format!(
                    "({}) must be less than DATABASE_MAX_LIFETIME_S ({})",
                    idle_timeout.as_secs(),
                    max_lifetime.as_secs()
                ),
            ));
        }
        let validate_idle = vars.millis("DATABASE_VALIDATE_IDLE_MS", DEFAULT_VALIDATE_IDLE_MS)?;
        let retry_attempts = vars.parse(
            "DATABASE_RETRY_ATTEMPTS",
            DEFAULT_RETRY_ATTEMPTS,
            "a whole number of retries",
        )?;
        let retry_base_delay =
            vars.millis("DATABASE_RETRY_BASE_DELAY_MS", DEFAULT_RETRY_BASE_DELAY_MS)?;
        let leak = vars.millis("DATABASE_LEAK_THRESHOLD_MS", 0)?;
        let statement_timeout = vars.millis(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            DEFAULT_STATEMENT_TIMEOUT_MS,
        )?;
        let lock_timeout = vars.millis("DATABASE_LOCK_TIMEOUT_MS", DEFAULT_LOCK_TIMEOUT_MS)?;
        let idle_in_transaction_timeout = vars.millis(
            "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
            DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
        )?;
        let tx_retry_attempts = vars.parse(
            "DATABASE_TX_RETRY_ATTEMPTS",
            DEFAULT_TX_RETRY_ATTEMPTS,
            "a whole number of re-runs",
        )?;
        let migrate_on_startup = vars.flag("DATABASE_MIGRATE_ON_STARTUP", true)?;
        let prepared_statements = vars.flag("DATABASE_PREPARED_STATEMENTS", true)?;
        let require_tls = match vars
            .get("DATABASE_REQUIRE_TLS")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => TlsRequirement::Auto,
            Some(v) => match v.as_str() {
                "" | "auto" => TlsRequirement::Auto,
                "1" | "true" | "yes" | "on" => TlsRequirement::Required,
                "0" | "false" | "no" | "off" => TlsRequirement::Off,
                _ => {
                    return Err(Error::config(
                        "DATABASE_REQUIRE_TLS",
                        format!("expected auto, true or false, got {v:?}"),
                    ));
                }
            },
        };
        let application_name = vars
            .get("DATABASE_APPLICATION_NAME")
            .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.into());
        if application_name.len() > 63
            || !application_name
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(Error::config(
                "DATABASE_APPLICATION_NAME",
                "expected at most 63 printable ASCII characters",
            ));
        }
        let log_filter = vars
            .get("TASKSTORE_LOG")
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.into());

        let config = Self {
            environment,
            database_url,
            migration_url,
            replica_urls,
            pool: PoolConfig {
                max_size,
                min_idle,
                acquire_timeout,
                max_waiters,
                connect_timeout,
                startup_wait,
                idle_timeout,
                max_lifetime,
                validate_idle,
                retry_attempts,
                retry_base_delay,
                leak_threshold: (!leak.is_zero()).then_some(leak),
            },
            session: SessionConfig {
                statement_timeout,
                lock_timeout,
                idle_in_transaction_timeout,
                application_name,
                prepared_statements,
            },
            tx_retry_attempts,
            migrate_on_startup,
            require_tls,
            log_filter,
            sources: vars.sources,
        };
        config.check_tls()?;
        Ok(config)
    }

    /// Refuses plain-text PostgreSQL connections where TLS is required.
    fn check_tls(&self) -> Result<()> {
        let required_for = |url: &DatabaseUrl| match self.require_tls {
            TlsRequirement::Off => false,
            TlsRequirement::Required => true,
            TlsRequirement::Auto => {
                self.environment == Environment::Production && !url.is_loopback()
            }
        };
        let all = std::iter::once(("DATABASE_URL", &self.database_url))
            .chain(
                self.migration_url
                    .iter()
                    .map(|u| ("DATABASE_MIGRATION_URL", u)),
            )
            .chain(
                self.replica_urls
                    .iter()
                    .map(|u| ("DATABASE_REPLICA_URLS", u)),
            );
        for (var, url) in all {
            if url.backend() != BackendKind::Postgres || !required_for(url) {
                continue;
            }
            let mode = url.query_param("sslmode").unwrap_or_default();
            if !matches!(mode.as_str(), "require" | "verify-ca" | "verify-full") {
                return Err(Error::config(
                    var,
                    format!(
                        "connects to the non-loopback host {:?} without TLS; add sslmode=require (or verify-full) to the URL, or set DATABASE_REQUIRE_TLS=false to allow it explicitly",
                        url.host().unwrap_or("?")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where each variable's value came from.
    pub fn source_of(&self, variable: &str) -> Source {
        self.sources
            .get(variable)
            .cloned()
            .unwrap_or(Source::Default)
    }

    /// The effective configuration as (variable, value, source) rows, secrets redacted.
    pub fn effective(&self) -> Vec<(&'static str, String, Source)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let s = |d: Duration| d.as_secs().to_string();
        let secret = |set: bool| {
            if set {
                crate::redact::MASK.to_owned()
            } else {
                "(unset)".into()
            }
        };
        let pw_set = self.source_of("DATABASE_PASSWORD") != Source::Default;
        let pw_file_set = self.source_of("DATABASE_PASSWORD_FILE") != Source::Default;
        let url_file_set = self.source_of("DATABASE_URL_FILE") != Source::Default;
        let rows: Vec<(&'static str, String)> = vec![
            ("DATABASE_URL", self.database_url.redacted().to_owned()),
            (
                "DATABASE_URL_FILE",
                if url_file_set {
                    "(set; URL read from file)".into()
                } else {
                    "(unset)".into()
                },
            ),
            ("DATABASE_PASSWORD", secret(pw_set)),
            (
                "DATABASE_PASSWORD_FILE",
                if pw_file_set {
                    "(set)".into()
                } else {
                    "(unset)".into()
                },
            ),
            (
                "DATABASE_MIGRATION_URL",
                self.migration_url
                    .as_ref()
                    .map_or("(DATABASE_URL)".into(), |u| u.redacted().to_owned()),
            ),
            (
                "DATABASE_REPLICA_URLS",
                self.replica_urls
                    .iter()
                    .map(|u| u.redacted().to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("DATABASE_POOL_MAX_SIZE", self.pool.max_size.to_string()),
            ("DATABASE_POOL_MIN_IDLE", self.pool.min_idle.to_string()),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", ms(self.pool.acquire_timeout)),
            (
                "DATABASE_POOL_MAX_WAITERS",
                self.pool.max_waiters.to_string(),
            ),
            ("DATABASE_CONNECT_TIMEOUT_MS", ms(self.pool.connect_timeout)),
            ("DATABASE_STARTUP_WAIT_MS", ms(self.pool.startup_wait)),
            ("DATABASE_IDLE_TIMEOUT_S", s(self.pool.idle_timeout)),
            ("DATABASE_MAX_LIFETIME_S", s(self.pool.max_lifetime)),
            ("DATABASE_VALIDATE_IDLE_MS", ms(self.pool.validate_idle)),
            (
                "DATABASE_STATEMENT_TIMEOUT_MS",
                ms(self.session.statement_timeout),
            ),
            ("DATABASE_LOCK_TIMEOUT_MS", ms(self.session.lock_timeout)),
            (
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                ms(self.session.idle_in_transaction_timeout),
            ),
            (
                "DATABASE_RETRY_ATTEMPTS",
                self.pool.retry_attempts.to_string(),
            ),
            (
                "DATABASE_RETRY_BASE_DELAY_MS",
                ms(self.pool.retry_base_delay),
            ),
            (
                "DATABASE_TX_RETRY_ATTEMPTS",
                self.tx_retry_attempts.to_string(),
            ),
            (
                "DATABASE_LEAK_THRESHOLD_MS",
                self.pool.leak_threshold.map_or("0".into(), ms),
            ),
            (
                "DATABASE_MIGRATE_ON_STARTUP",
                self.migrate_on_startup.to_string(),
            ),
            (
                "DATABASE_PREPARED_STATEMENTS",
                self.session.prepared_statements.to_string(),
            ),
            (
                "DATABASE_REQUIRE_TLS",
                format!("{:?}", self.require_tls).to_ascii_lowercase(),
            ),
            (
                "DATABASE_APPLICATION_NAME",
                self.session.application_name.clone(),
            ),
            ("TASKSTORE_ENV", self.environment.as_str().into()),
            ("TASKSTORE_LOG", self.log_filter.clone()),
        ];
        rows.into_iter()
            .map(|(k, v)| (k, v, self.source_of(k)))
            .collect()
    }

    /// The migration target: `DATABASE_MIGRATION_URL` when set, else `DATABASE_URL`.
    pub fn migration_target(&self) -> &DatabaseUrl {
        self.migration_url.as_ref().unwrap_or(&self.database_url)
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v, source) in self.effective() {
            writeln!(f, "{k}={v} ({source})")?;
        }
        Ok(())
    }
}

fn parse_environment(v: &str) -> Result<Environment> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "development" | "dev" => Ok(Environment::Development),
        "test" => Ok(Environment::Test),
        "production" | "prod" => Ok(Environment::Production),
        _ => Err(Error::config(
            "TASKSTORE_ENV",
            format!("expected development, test or production, got {v:?}"),
        )),
    }
}

fn load_dotenv(
    path: &PathBuf,
    label: &str,
    into: &mut BTreeMap<String, (String, Source)>,
) -> Result<()> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(()),
        Err(_) => {
            return Err(Error::config(
                label,
                format!(
                    "cannot read {}; check that it is a readable .env file",
                    path.display()
                ),
            ));
        }
    };
    for item in iter {
        let (k, v) = item.map_err(|_| {
            Error::config(
                label,
                format!(
                    "{} has a malformed line; expected NAME=value",
                    path.display()
                ),
            )
        })?;
        if VARIABLES.contains(&k.as_str()) {
            into.insert(k, (v, Source::DotEnv(label.to_owned())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_select_the_sqlite_file() {
        let c = Config::from_vars::<&str, &str>([]).unwrap();
        assert_eq!(c.database_url.backend(), BackendKind::Sqlite);
        assert_eq!(c.database_url.redacted(), "sqlite://taskstore.db");
        assert_eq!(c.source_of("DATABASE_URL"), Source::Default);
        assert_eq!(
            c.pool.acquire_timeout,
            Duration::from_millis(DEFAULT_ACQUIRE_TIMEOUT_MS)
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::from_vars([("DATABASE_POOL_MAX_SIZE", "ten")]).unwrap_err();
        assert!(e.to_string().contains("DATABASE_POOL_MAX_SIZE"), "{e}");
        let e = Config::from_vars([
            ("DATABASE_POOL_MIN_IDLE", "20"),
            ("DATABASE_POOL_MAX_SIZE", "5"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("DATABASE_POOL_MIN_IDLE"), "{e}");
        let e = Config::from_vars([("DATABASE_IDLE_TIMEOUT_S", "2000")]).unwrap_err();
        assert!(e.to_string().contains("DATABASE_IDLE_TIMEOUT_S"), "{e}");
        let e = Config::from_vars([("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert!(e.to_string().contains("DATABASE_URL"), "{e}");
        let e = Config::from_vars([("DATABASE_POOL_SIZE", "3")]).unwrap_err();
        assert!(e.to_string().contains("DATABASE_POOL_SIZE"), "{e}");
    }

    #[test]
    fn password_is_merged_and_never_shown() {
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app@db.internal:5432/tasks"),
            ("DATABASE_PASSWORD", "pw-Merged-123"),
        ])
        .unwrap();
        assert!(c.database_url.expose().contains("pw-Merged-123"));
        let shown = format!("{c:?} {c} {}", c.database_url);
        assert!(!shown.contains("pw-Merged-123"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db.internal:5432/tasks"),
            "{shown}"
        );
    }

    #[test]
    fn a_password_with_percent_signs_reaches_libpq_intact() {
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app@db.internal/tasks"),
            ("DATABASE_PASSWORD", "50%off%41 @:/"),
        ])
        .unwrap();
        let url = url::Url::parse(c.database_url.expose()).unwrap();
        let sent = url.password().unwrap();
        // libpq percent-decodes the userinfo once; it must get the password back unchanged.
        let decoded = percent_encoding::percent_decode_str(sent)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, "50%off%41 @:/");
    }

    #[test]
    fn production_refuses_plain_tcp_to_remote_hosts() {
        let e = Config::from_vars([
            ("TASKSTORE_ENV", "production"),
            ("DATABASE_URL", "postgres://a:b@db.example.com/t"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("sslmode=require"), "{e}");
        assert!(!e.to_string().contains(":b@"), "{e}");
        Config::from_vars([
            ("TASKSTORE_ENV", "production"),
            (
                "DATABASE_URL",
                "postgres://a:b@db.example.com/t?sslmode=require",
            ),
        ])
        .unwrap();
        Config::from_vars([
            ("TASKSTORE_ENV", "production"),
            ("DATABASE_URL", "postgres://a:b@127.0.0.1/t"),
        ])
        .unwrap();
        Config::from_vars([
            ("TASKSTORE_ENV", "production"),
            ("DATABASE_REQUIRE_TLS", "false"),
            ("DATABASE_URL", "postgres://a:b@db.example.com/t"),
        ])
        .unwrap();
    }

    #[test]
    fn malformed_urls_are_config_errors_without_the_secret() {
        for url in [
            "postgres://u:p%zzSecretX@h/db",
            "postgres://u:SecretX@[::1/db",
            "host=h password=SecretX",
        ] {
            let e = Config::from_vars([("DATABASE_URL", url)]).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(matches!(e, Error::Config { .. }), "{url}: {text}");
            assert!(!text.contains("SecretX"), "{text}");
        }
    }
}
