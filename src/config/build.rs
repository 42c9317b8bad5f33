//! From raw values to a validated [`Config`], one named step per group of settings. Each value
//! is read through its row of the spec table; the rules that involve two variables, which the
//! pool relies on (r2d2 panics on some of them), are checked here, so that a `Config` that
//! exists is one `Database::connect` can use.

use std::time::Duration;

use secrecy::SecretString;

use super::rotate::{Part, Reload};
use super::values::{Secret, Values};
use super::variables::VARIABLES;
use super::{
    BackendKind, Config, DatabaseUrl, Environment, PoolConfig, SessionConfig, TlsRequirement, tls,
};
use crate::error::{Error, Result, UrlOrigin};

/// The whole construction; the first invalid value ends it with an error naming its variable.
pub(super) fn build(mut values: Values) -> Result<Config> {
    refuse_unknown(&values)?;
    let environment = values.read("TASKSTORE_ENV")?;
    // Read before the URLs: a URL rebuilt from a rotated secret file is judged by it again.
    let require_tls = values.read("DATABASE_REQUIRE_TLS")?;
    let urls = urls(&mut values, (require_tls, environment))?;
    let pool = pool(&mut values)?;
    let session = session(&mut values)?;
    let tx_retry_attempts = values.read("DATABASE_TX_RETRY_ATTEMPTS")?;
    let migrate_on_startup = values.read("DATABASE_MIGRATE_ON_STARTUP")?;
    let migration_lock_timeout = values.read("DATABASE_MIGRATION_LOCK_TIMEOUT_MS")?;
    let migration_statement_timeout = values.read("DATABASE_MIGRATION_STATEMENT_TIMEOUT_MS")?;
    let log_filter = values.read("TASKSTORE_LOG")?;
    let replica_max_lag = values.read("DATABASE_REPLICA_MAX_LAG_MS")?;
    tls::check(require_tls, environment, urls.labelled())?;
    Ok(Config {
        environment,
        database_url: urls.database,
        migration_url: urls.migration,
        replica_urls: urls.replicas,
        replica_max_lag,
        pool,
        session,
        tx_retry_attempts,
        migrate_on_startup,
        migration_lock_timeout,
        migration_statement_timeout,
        require_tls,
        log_filter,
        sources: values.into_sources(),
    })
}

/// A name with taskstore's prefixes that taskstore does not read is a mistake (a misspelling,
/// a removed variable): refuse it rather than run without the setting it meant.
fn refuse_unknown(values: &Values) -> Result<()> {
    let unknown = values.names().find(|k| {
        (k.starts_with("DATABASE_") || k.starts_with("TASKSTORE_")) && !VARIABLES.contains(k)
    });
    match unknown {
        Some(k) => Err(Error::config(
            k,
            "is not a taskstore variable; see the README's table for the supported names",
        )),
        None => Ok(()),
    }
}

/// The URLs the configuration connects to.
struct Urls {
    database: DatabaseUrl,
    migration: Option<DatabaseUrl>,
    replicas: Vec<DatabaseUrl>,
}

impl Urls {
    /// Each URL with the variable it came from.
    fn labelled(&self) -> impl Iterator<Item = (&'static str, &DatabaseUrl)> {
        std::iter::once(("DATABASE_URL", &self.database))
            .chain(self.migration.iter().map(|u| ("DATABASE_MIGRATION_URL", u)))
            .chain(self.replicas.iter().map(|u| ("DATABASE_REPLICA_URLS", u)))
    }
}

/// The TLS rule's inputs, for URLs rebuilt later from rotated secret files.
type TlsRule = (TlsRequirement, Environment);

/// `DATABASE_URL` (or its file) with the password merged in, the migration URL and replicas;
/// each knows the variables it came from (named by connection errors) and, when a secret comes
/// from a file, how to build it again from the file (rotation).
fn urls(values: &mut Values, rule: TlsRule) -> Result<Urls> {
    let password = values.secret_or_file("DATABASE_PASSWORD")?;
    let (raw, variable, file) = match values.secret_or_file("DATABASE_URL")? {
        Some(found) => (found.value, found.variable, found.file),
        None => (values.default_text("DATABASE_URL"), "DATABASE_URL", None),
    };
    let pw = password.as_ref().map(|p| p.value.as_str());
    let mut origin = UrlOrigin::url(variable);
    if values.on_command_line("DATABASE_URL") {
        origin = origin.on_command_line();
    }
    let origin = with_password(values, origin, password.as_ref(), "DATABASE_URL");
    if let Some(p) = &password
        && raw.trim().to_ascii_lowercase().starts_with("sqlite:")
    {
        let url = if file.is_some() {
            "the URL in the file named by DATABASE_URL_FILE points at SQLite".to_owned()
        } else if values.is_set("DATABASE_URL") {
            "DATABASE_URL points at SQLite".to_owned()
        } else {
            "DATABASE_URL is unset, so the embedded SQLite default is used".to_owned()
        };
        return Err(Error::config(
            p.variable,
            format!(
                "is set but {url}, which has no password; unset it or set DATABASE_URL to a postgres:// URL"
            ),
        ));
    }
    let database = DatabaseUrl::parse(variable, &raw, pw)?.with_origin(origin.clone());
    let url_part = match file {
        Some(path) => Part::File(path),
        None => Part::Fixed(SecretString::from(raw)),
    };
    let database = attach(
        database,
        variable,
        url_part,
        password.as_ref(),
        origin,
        rule,
    );
    let migration = migration_url(values, &database)?;
    let replicas = replica_urls(values, &database, password.as_ref(), rule)?;
    Ok(Urls {
        database,
        migration,
        replicas,
    })
}

/// `origin` with the password variable (when the password did not come from the URL) and every
/// `.env` expansion of the URL's variable `url_variable` or the password's.
fn with_password(
    values: &Values,
    mut origin: UrlOrigin,
    password: Option<&Secret>,
    url_variable: &str,
) -> UrlOrigin {
    if let Some(p) = password {
        origin = origin.with_password(p.variable);
        if p.value.trim() != p.value {
            origin = origin.with_padded_password();
        }
    }
    for name in [url_variable, "DATABASE_PASSWORD"] {
        if let Some(file) = values.expanded_in(name) {
            origin = origin.with_expanded(name, file);
        }
    }
    origin
}

/// `url` with the way to build it again when its URL or password comes from a file.
fn attach(
    url: DatabaseUrl,
    variable: &'static str,
    url_part: Part,
    password: Option<&Secret>,
    origin: UrlOrigin,
    rule: TlsRule,
) -> DatabaseUrl {
    let password = password.map(|p| {
        let part = match &p.file {
            Some(path) => Part::File(path.clone()),
            None => Part::Fixed(SecretString::from(p.value.clone())),
        };
        (p.variable, part)
    });
    match Reload::new(variable, url_part, password, origin, rule) {
        Some(reload) => url.with_reload(reload),
        None => url,
    }
}

/// `DATABASE_MIGRATION_URL`: same backend as `DATABASE_URL`; its own credentials.
fn migration_url(values: &mut Values, database: &DatabaseUrl) -> Result<Option<DatabaseUrl>> {
    const VAR: &str = "DATABASE_MIGRATION_URL";
    let Some(raw) = values.given(VAR).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let origin = with_password(values, UrlOrigin::url(VAR), None, VAR);
    let url = DatabaseUrl::parse(VAR, &raw, None)?.with_origin(origin);
    if url.backend() != database.backend() {
        return Err(Error::config(
            VAR,
            format!(
                "points at {} but DATABASE_URL points at {}; both must use the same backend",
                url.backend(),
                database.backend()
            ),
        ));
    }
    Ok(Some(url))
}

/// `DATABASE_REPLICA_URLS`: PostgreSQL only, sharing `DATABASE_PASSWORD`.
fn replica_urls(
    values: &mut Values,
    database: &DatabaseUrl,
    password: Option<&Secret>,
    rule: TlsRule,
) -> Result<Vec<DatabaseUrl>> {
    const VAR: &str = "DATABASE_REPLICA_URLS";
    let list = values.given(VAR).unwrap_or_default();
    let origin = with_password(values, UrlOrigin::url(VAR), password, VAR);
    let pw = password.map(|p| p.value.as_str());
    let mut urls = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let url = DatabaseUrl::parse(VAR, part, pw)?.with_origin(origin.clone());
        if url.backend() != BackendKind::Postgres {
            return Err(Error::config(
                VAR,
                "read replicas are supported on PostgreSQL only; use postgres:// URLs",
            ));
        }
        let fixed = Part::Fixed(SecretString::from(part.to_owned()));
        urls.push(attach(url, VAR, fixed, password, origin.clone(), rule));
    }
    if !urls.is_empty() && database.backend() != BackendKind::Postgres {
        return Err(Error::config(
            VAR,
            "is set but DATABASE_URL is not PostgreSQL",
        ));
    }
    Ok(urls)
}

/// Pool sizing, deadlines and retries.
fn pool(values: &mut Values) -> Result<PoolConfig> {
    let max_size = values.read("DATABASE_POOL_MAX_SIZE")?;
    let min_idle = min_idle(values, max_size)?;
    let acquire_timeout = values.read("DATABASE_ACQUIRE_TIMEOUT_MS")?;
    let max_waiters = values.read("DATABASE_POOL_MAX_WAITERS")?;
    let connect_timeout = values.read("DATABASE_CONNECT_TIMEOUT_MS")?;
    let startup_wait = values.read("DATABASE_STARTUP_WAIT_MS")?;
    let (idle_timeout, max_lifetime) = lifetimes(values)?;
    let validate_idle = values.read("DATABASE_VALIDATE_IDLE_MS")?;
    let retry_attempts = values.read("DATABASE_RETRY_ATTEMPTS")?;
    let retry_base_delay = values.read("DATABASE_RETRY_BASE_DELAY_MS")?;
    let leak: Duration = values.read("DATABASE_LEAK_THRESHOLD_MS")?;
    Ok(PoolConfig {
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
    })
}

/// `DATABASE_POOL_MIN_IDLE`: at most the pool size. The default is capped at it; a value set
/// above it is refused, since it cannot be what was meant.
fn min_idle(values: &mut Values, max_size: u32) -> Result<u32> {
    const VAR: &str = "DATABASE_POOL_MIN_IDLE";
    let set = values.is_set(VAR);
    let min_idle: u32 = values.read(VAR)?;
    if !set {
        return Ok(min_idle.min(max_size));
    }
    if min_idle > max_size {
        return Err(Error::config(
            VAR,
            format!(
                "is {min_idle}, larger than DATABASE_POOL_MAX_SIZE ({max_size}); it must be at most the pool size"
            ),
        ));
    }
    Ok(min_idle)
}

/// `DATABASE_IDLE_TIMEOUT_S` and `DATABASE_MAX_LIFETIME_S`: an idle timeout at or above the
/// lifetime would never fire.
fn lifetimes(values: &mut Values) -> Result<(Duration, Duration)> {
    let idle_timeout: Duration = values.read("DATABASE_IDLE_TIMEOUT_S")?;
    let max_lifetime: Duration = values.read("DATABASE_MAX_LIFETIME_S")?;
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
    Ok((idle_timeout, max_lifetime))
}

/// Per-session settings applied to every new connection.
fn session(values: &mut Values) -> Result<SessionConfig> {
    Ok(SessionConfig {
        statement_timeout: values.read("DATABASE_STATEMENT_TIMEOUT_MS")?,
        lock_timeout: values.read("DATABASE_LOCK_TIMEOUT_MS")?,
        idle_in_transaction_timeout: values.read("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS")?,
        prepared_statements: values.read("DATABASE_PREPARED_STATEMENTS")?,
        application_name: values.read("DATABASE_APPLICATION_NAME")?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::Error;
    use crate::config::{
        BackendKind, Config, DEFAULT_ACQUIRE_TIMEOUT_MS, MAX_MILLIS, MAX_SECONDS, Parse, SPECS,
        Source, VARIABLES,
    };

    fn refused(vars: &[(&str, &str)]) -> Error {
        Config::from_vars(vars.iter().copied()).unwrap_err()
    }

    fn names(e: &Error, var: &str) -> bool {
        matches!(e, Error::Config { variable, .. } if variable == var)
    }

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
    fn a_password_with_surrounding_whitespace_is_noted_on_authentication_failures() {
        use crate::error::ConnectFailure;
        let dir = std::env::temp_dir().join(format!("ts_padded_pw_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        for (content, padded) in [("Pw-x1 \n", true), ("Pw-x1\r\n", false), ("Pw-x1\n", false)] {
            std::fs::write(&file, content).unwrap();
            let c = Config::from_vars([
                ("DATABASE_URL", "postgres://app@127.0.0.1:1/db"),
                ("DATABASE_PASSWORD_FILE", file.to_str().unwrap()),
            ])
            .unwrap();
            let a = c
                .database_url
                .origin()
                .advice(ConnectFailure::Authentication);
            assert_eq!(
                a.contains("begins or ends with whitespace"),
                padded,
                "{content:?}: {a}"
            );
            assert!(!a.contains("Pw-x1"), "{a}");
        }
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app@127.0.0.1:1/db"),
            ("DATABASE_PASSWORD", "\tPw-x2"),
        ])
        .unwrap();
        let a = c
            .database_url
            .origin()
            .advice(ConnectFailure::Authentication);
        assert!(
            a.contains("the password in DATABASE_PASSWORD begins or ends"),
            "{a}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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

    /// Each rule r2d2 or the server would otherwise enforce later (by panicking, or by refusing
    /// every connection) is a configuration error naming the variable.
    #[test]
    fn what_the_pool_relies_on_is_refused_at_construction() {
        for (vars, var) in [
            (
                &[("DATABASE_POOL_MAX_SIZE", "0")][..],
                "DATABASE_POOL_MAX_SIZE",
            ),
            (
                &[("DATABASE_POOL_MAX_SIZE", "1001")],
                "DATABASE_POOL_MAX_SIZE",
            ),
            (
                &[
                    ("DATABASE_POOL_MAX_SIZE", "3"),
                    ("DATABASE_POOL_MIN_IDLE", "4"),
                ],
                "DATABASE_POOL_MIN_IDLE",
            ),
            (
                &[("DATABASE_ACQUIRE_TIMEOUT_MS", "0")],
                "DATABASE_ACQUIRE_TIMEOUT_MS",
            ),
            (
                &[("DATABASE_CONNECT_TIMEOUT_MS", "0")],
                "DATABASE_CONNECT_TIMEOUT_MS",
            ),
            (
                &[("DATABASE_IDLE_TIMEOUT_S", "0")],
                "DATABASE_IDLE_TIMEOUT_S",
            ),
            (
                &[("DATABASE_MAX_LIFETIME_S", "0")],
                "DATABASE_MAX_LIFETIME_S",
            ),
            (
                &[
                    ("DATABASE_IDLE_TIMEOUT_S", "60"),
                    ("DATABASE_MAX_LIFETIME_S", "60"),
                ],
                "DATABASE_IDLE_TIMEOUT_S",
            ),
            (
                &[("DATABASE_APPLICATION_NAME", "é")],
                "DATABASE_APPLICATION_NAME",
            ),
        ] {
            let e = refused(vars);
            assert!(names(&e, var), "{vars:?}: {e}");
        }
        // A default minimum above a small pool is capped rather than refused.
        let c = Config::from_vars([("DATABASE_POOL_MAX_SIZE", "1")]).unwrap();
        assert_eq!((c.pool.max_size, c.pool.min_idle), (1, 1));
    }

    /// Durations beyond what the server accepts (PostgreSQL refuses a session whose timeout
    /// exceeds `i32::MAX` ms) or what a clock reading can carry are refused, for every
    /// duration variable; the largest accepted value is accepted.
    #[test]
    fn every_duration_is_bounded() {
        for spec in SPECS {
            let max = match spec.parse {
                Parse::Millis { .. } => MAX_MILLIS,
                Parse::Seconds { .. } => MAX_SECONDS,
                _ => continue,
            };
            let over = (max + 1).to_string();
            let e = refused(&[(spec.name, &over)]);
            assert!(names(&e, spec.name), "{}: {e}", spec.name);
            assert!(e.to_string().contains("at most"), "{}: {e}", spec.name);
            let at = max.to_string();
            // The idle timeout must stay below the lifetime.
            let mut vars = vec![(spec.name, at.as_str())];
            if spec.name == "DATABASE_IDLE_TIMEOUT_S" {
                vars.push(("DATABASE_MAX_LIFETIME_S", "2147483647"));
                vars[0].1 = "2147483646";
            }
            Config::from_vars(vars).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
    }

    /// A row that `build` never reads would be documented and reported but do nothing.
    #[test]
    fn build_reads_every_row() {
        let c = Config::from_vars::<&str, &str>([]).unwrap();
        let read: Vec<&str> = c.sources.keys().copied().collect();
        let mut all = VARIABLES.to_vec();
        all.sort_unstable();
        assert_eq!(read, all);
    }

    #[test]
    fn the_report_has_one_row_per_variable_in_table_order() {
        let c = Config::from_vars([("DATABASE_POOL_MAX_SIZE", "7")]).unwrap();
        let rows = c.effective();
        let order: Vec<&str> = rows.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(order, VARIABLES);
        let row = rows.iter().find(|(k, _, _)| *k == "DATABASE_POOL_MAX_SIZE");
        assert_eq!(
            row,
            Some(&(
                "DATABASE_POOL_MAX_SIZE",
                "7".to_owned(),
                Source::Environment
            ))
        );
    }

    /// Every secret row: its value never reaches the report, `Display` or `Debug`.
    #[test]
    fn secret_rows_are_redacted_in_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join("pw");
        std::fs::write(&pw_file, "ReportPwFile-Q1\n").unwrap();
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app:ReportUrl-Q2@127.0.0.1/db"),
            (
                "DATABASE_MIGRATION_URL",
                "postgres://own:ReportMig-Q3@127.0.0.1/db",
            ),
            (
                "DATABASE_REPLICA_URLS",
                "postgres://r:ReportRep-Q4@127.0.0.1/db",
            ),
            ("DATABASE_PASSWORD_FILE", pw_file.to_str().unwrap()),
        ])
        .unwrap();
        let shown = format!("{:?} {c} {c:?}", c.effective());
        for secret in ["ReportPwFile", "ReportUrl", "ReportMig", "ReportRep"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for spec in SPECS.iter().filter(|s| s.secret) {
            assert!(shown.contains(spec.name), "{} missing", spec.name);
        }
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app@127.0.0.1/db"),
            ("DATABASE_PASSWORD", "ReportPw-Q5"),
        ])
        .unwrap();
        let shown = format!("{:?} {c} {c:?}", c.effective());
        assert!(!shown.contains("ReportPw-Q5"), "{shown}");
        assert!(
            shown.contains("DATABASE_PASSWORD=*** (environment)"),
            "{shown}"
        );
    }
}
