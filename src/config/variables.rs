//! The one table of configuration variables, [`SPECS`]: everything else about a variable is
//! derived from its row (see `spec.rs` for what a row holds).
//!
//! - [`VARIABLES`] (the names) and the named defaults (`DEFAULT_*`, `defaults.rs`) are
//!   computed from it at compile time;
//! - `build.rs` reads each value through its row (parser, bounds, default);
//! - [`Config::effective`](super::Config::effective) (what `taskstore config` prints) is one
//!   line per row;
//! - `tests/config.rs` fails when the README's configuration table and this one disagree (a
//!   variable in one and not the other, a different default, a meaning that does not start
//!   with the row's `doc`, or a different order).
//!
//! To add a variable: add its row here and its row in the README's table. To give it an effect,
//! add the field it fills (with a getter), read it in `build.rs`, and point the row's `show` at
//! the field so that the report prints what the program uses.

use super::report::{mask_if_set, millis, seconds, set_or_unset};
use super::spec::DefaultValue::{self, Noted, SameAs, Value};
use super::spec::Parse::{self, Count, Flag, Millis, Seconds, Text};
use super::spec::VariableSpec;

/// `Parse::Text` check for `DATABASE_APPLICATION_NAME`: PostgreSQL would silently truncate a
/// longer name (to 63 bytes) and turn other characters into `?`, so `pg_stat_activity` would
/// not show what was configured.
fn application_name(v: &str) -> Result<(), &'static str> {
    if v.len() <= 63 && v.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        Ok(())
    } else {
        Err("expected at most 63 printable ASCII characters")
    }
}

/// Whole numbers without a range beyond their type's.
const fn whole(expected: &'static str) -> Parse {
    Count {
        expected,
        min: 0,
        max: u32::MAX,
    }
}

/// A millisecond duration that may be zero.
const MS: Parse = Millis { nonzero: false };
/// A millisecond duration the pool needs to be positive.
const MS_NONZERO: Parse = Millis { nonzero: true };

/// Every variable taskstore reads, in documentation order (the README's order).
pub const SPECS: &[VariableSpec] = &[
    VariableSpec {
        name: "DATABASE_URL",
        default: Value("sqlite://taskstore.db"),
        parse: Parse::Url,
        secret: true,
        doc: "backend and location",
        show: |c| c.database_url.redacted().to_owned(),
    },
    VariableSpec {
        name: "DATABASE_URL_FILE",
        default: DefaultValue::None,
        parse: Parse::FileOf("DATABASE_URL"),
        secret: true,
        doc: "read the URL from this file instead",
        show: |c| set_or_unset(c, "DATABASE_URL_FILE", "(set; URL read from file)"),
    },
    VariableSpec {
        name: "DATABASE_PASSWORD",
        default: DefaultValue::None,
        parse: Text { check: None },
        secret: true,
        doc: "password kept out of the URL",
        show: |c| mask_if_set(c, "DATABASE_PASSWORD"),
    },
    VariableSpec {
        name: "DATABASE_PASSWORD_FILE",
        default: DefaultValue::None,
        parse: Parse::FileOf("DATABASE_PASSWORD"),
        secret: true,
        doc: "read the password from this file instead",
        show: |c| set_or_unset(c, "DATABASE_PASSWORD_FILE", "(set)"),
    },
    VariableSpec {
        name: "DATABASE_MIGRATION_URL",
        default: SameAs("DATABASE_URL"),
        parse: Parse::Url,
        secret: true,
        doc: "privileged URL used only for migrations",
        show: |c| {
            c.migration_url
                .as_ref()
                .map_or("(DATABASE_URL)".into(), |u| u.redacted().to_owned())
        },
    },
    VariableSpec {
        name: "DATABASE_REPLICA_URLS",
        default: DefaultValue::None,
        parse: Parse::UrlList,
        secret: true,
        doc: "comma-separated read replicas (PostgreSQL)",
        show: |c| {
            let urls: Vec<&str> = c.replica_urls.iter().map(|u| u.redacted()).collect();
            urls.join(",")
        },
    },
    VariableSpec {
        name: "DATABASE_REPLICA_MAX_LAG_MS",
        default: Noted("5000", "0: lag not checked"),
        parse: MS,
        secret: false,
        doc: "a replica further behind than this is skipped; reads go to the primary",
        show: |c| millis(c.replica_max_lag),
    },
    VariableSpec {
        name: "DATABASE_POOL_MAX_SIZE",
        default: Value("10"),
        parse: Count {
            expected: "a pool size from 1 to 1000",
            min: 1,
            max: 1000,
        },
        secret: false,
        doc: "pool size",
        show: |c| c.pool.max_size.to_string(),
    },
    VariableSpec {
        name: "DATABASE_POOL_MIN_IDLE",
        // Two warm connections serve a health check and a request without a connect on the
        // request path, while holding few server slots per instance.
        default: Noted("2", "capped at the pool size"),
        parse: whole("a whole number of connections"),
        secret: false,
        doc: "connections kept open when idle",
        show: |c| c.pool.min_idle.to_string(),
    },
    VariableSpec {
        name: "DATABASE_ACQUIRE_TIMEOUT_MS",
        default: Value("5000"),
        parse: MS_NONZERO,
        secret: false,
        doc: "hard deadline for getting a connection",
        show: |c| millis(c.pool.acquire_timeout),
    },
    VariableSpec {
        name: "DATABASE_POOL_MAX_WAITERS",
        default: Noted("0", "unlimited"),
        parse: whole("a whole number of callers (0 = unlimited)"),
        secret: false,
        doc: "callers allowed to wait",
        show: |c| c.pool.max_waiters.to_string(),
    },
    VariableSpec {
        name: "DATABASE_CONNECT_TIMEOUT_MS",
        default: Value("5000"),
        parse: MS_NONZERO,
        secret: false,
        doc: "one connection attempt",
        show: |c| millis(c.pool.connect_timeout),
    },
    VariableSpec {
        name: "DATABASE_STARTUP_WAIT_MS",
        default: Value("30000"),
        parse: MS,
        secret: false,
        doc: "how long start-up waits for the database",
        show: |c| millis(c.pool.startup_wait),
    },
    VariableSpec {
        name: "DATABASE_IDLE_TIMEOUT_S",
        default: Value("600"),
        parse: Seconds { nonzero: true },
        secret: false,
        doc: "close idle connections after",
        show: |c| seconds(c.pool.idle_timeout),
    },
    VariableSpec {
        name: "DATABASE_MAX_LIFETIME_S",
        default: Value("1800"),
        parse: Seconds { nonzero: true },
        secret: false,
        doc: "recycle connections after",
        show: |c| seconds(c.pool.max_lifetime),
    },
    VariableSpec {
        name: "DATABASE_VALIDATE_IDLE_MS",
        // Like HikariCP's `aliveBypassWindow`: a connection used in the last 30 s is trusted;
        // the round trip is paid only after a quiet spell.
        default: Value("30000"),
        parse: MS,
        secret: false,
        doc: "a connection idle longer than this is pinged (under the deadline) before it is handed out",
        show: |c| millis(c.pool.validate_idle),
    },
    VariableSpec {
        name: "DATABASE_STATEMENT_TIMEOUT_MS",
        default: Value("30000"),
        parse: MS,
        secret: false,
        doc: "per statement (PostgreSQL)",
        show: |c| millis(c.session.statement_timeout),
    },
    VariableSpec {
        name: "DATABASE_LOCK_TIMEOUT_MS",
        default: Value("10000"),
        parse: MS,
        secret: false,
        doc: "waiting for a lock",
        show: |c| millis(c.session.lock_timeout),
    },
    VariableSpec {
        name: "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default: Value("60000"),
        parse: MS,
        secret: false,
        doc: "server kills idle transactions (PostgreSQL)",
        show: |c| millis(c.session.idle_in_transaction_timeout),
    },
    VariableSpec {
        name: "DATABASE_RETRY_ATTEMPTS",
        default: Value("3"),
        parse: whole("a whole number of retries"),
        secret: false,
        doc: "acquisition retries for transient errors",
        show: |c| c.pool.retry_attempts.to_string(),
    },
    VariableSpec {
        name: "DATABASE_RETRY_BASE_DELAY_MS",
        default: Value("50"),
        parse: MS,
        secret: false,
        doc: "first backoff delay (exponential, jittered)",
        show: |c| millis(c.pool.retry_base_delay),
    },
    VariableSpec {
        name: "DATABASE_TX_RETRY_ATTEMPTS",
        default: Value("5"),
        parse: whole("a whole number of re-runs"),
        secret: false,
        doc: "re-runs of a transaction on serialization failure / deadlock",
        show: |c| c.tx_retry_attempts.to_string(),
    },
    VariableSpec {
        name: "DATABASE_LEAK_THRESHOLD_MS",
        default: Noted("0", "off"),
        parse: MS,
        secret: false,
        doc: "report connections held longer than this",
        show: |c| c.pool.leak_threshold.map_or("0".into(), millis),
    },
    VariableSpec {
        name: "DATABASE_MIGRATE_ON_STARTUP",
        default: Value("true"),
        parse: Flag,
        secret: false,
        doc: "apply pending migrations in `Database::connect`",
        show: |c| c.migrate_on_startup.to_string(),
    },
    VariableSpec {
        name: "DATABASE_MIGRATION_LOCK_TIMEOUT_MS",
        // Short: a DDL statement queued for its lock blocks every query behind it, so it gives
        // up after this long and is re-tried with backoff within DATABASE_STARTUP_WAIT_MS.
        default: Value("2000"),
        parse: MS_NONZERO,
        secret: false,
        doc: "`lock_timeout` of each migration statement (PostgreSQL)",
        show: |c| millis(c.migration_lock_timeout),
    },
    VariableSpec {
        name: "DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS",
        // None by default: a CREATE INDEX CONCURRENTLY or a backfill on a big table may run for
        // hours, and cancelling it half-way leaves an INVALID index that fails again each start.
        default: Value("0"),
        parse: MS,
        secret: false,
        doc: "`statement_timeout` of the migration connection (PostgreSQL; 0 = none)",
        show: |c| millis(c.migration_statement_timeout),
    },
    VariableSpec {
        name: "DATABASE_PREPARED_STATEMENTS",
        default: Value("true"),
        parse: Flag,
        secret: false,
        doc: "false for transaction-mode poolers (PgBouncer)",
        show: |c| c.session.prepared_statements.to_string(),
    },
    VariableSpec {
        name: "DATABASE_REQUIRE_TLS",
        default: Value("auto"),
        parse: Parse::Tls,
        secret: false,
        doc: "`auto`: `sslmode=require` or stronger needed in production for non-loopback hosts",
        show: |c| c.require_tls.as_str().to_owned(),
    },
    VariableSpec {
        name: "DATABASE_APPLICATION_NAME",
        default: Value("taskstore"),
        parse: Text {
            check: Some(application_name),
        },
        secret: false,
        doc: "shown in `pg_stat_activity`",
        show: |c| c.session.application_name.clone(),
    },
    VariableSpec {
        name: "TASKSTORE_ENV",
        default: Value("development"),
        parse: Parse::Environment,
        secret: false,
        doc: "development, test or production; selects `.env.<env>`",
        show: |c| c.environment.as_str().to_owned(),
    },
    VariableSpec {
        name: "TASKSTORE_LOG",
        default: Value("info"),
        parse: Text { check: None },
        secret: false,
        doc: "log filter (tracing `EnvFilter` syntax)",
        show: |c| c.log_filter.clone(),
    },
];

/// Every variable taskstore reads, in documentation order (the names of [`SPECS`]).
pub const VARIABLES: &[&str] = &NAMES;

const NAMES: [&str; SPECS.len()] = {
    let mut names = [""; SPECS.len()];
    let mut i = 0;
    while i < SPECS.len() {
        names[i] = SPECS[i].name;
        i += 1;
    }
    names
};
