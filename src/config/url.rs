//! [`DatabaseUrl`]: a database location whose connection string is a secret, parsed from the
//! forms `DATABASE_URL` accepts.
//!
//! PostgreSQL URLs are read with the `url` crate plus the checks libpq would otherwise fail on
//! later (echoing the string back); libpq's own URL and `key=value` grammar (multiple hosts,
//! `host=` parameters, Unix sockets) belongs here too, next to [`DatabaseUrl::parse`].

use std::fmt;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::postgres;
use super::rotate::Reload;
use crate::error::{Error, Result, UrlOrigin};
use crate::redact::{register_password, register_secret};

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
    /// What libpq connects to, one entry per host (`""`: the default socket directory).
    targets: Vec<String>,
    /// The `sslmode` libpq will use (PostgreSQL only).
    sslmode: Option<String>,
    /// The connection service (`service=` or `PGSERVICE`) libpq will read, whose entry in
    /// `pg_service.conf` may set the host and `sslmode` below the URL's own parameters.
    service: Option<String>,
    /// The `sslmode` the URL itself sets (the only one a service entry cannot override).
    own_sslmode: Option<String>,
    /// The variables the URL and password came from, named by connection errors.
    origin: UrlOrigin,
    /// How to build it again when its secrets come from files that may be rotated.
    reload: Option<Arc<Reload>>,
}

/// The forms accepted, for errors.
const FORMS: &str = "postgres://, postgresql://, sqlite://path or sqlite::memory:";

impl DatabaseUrl {
    /// Parses a URL as it would appear in `DATABASE_URL`, with `password` (from
    /// `DATABASE_PASSWORD`) merged in. `variable` names the source in errors.
    ///
    /// # Errors
    /// [`Error::Config`] naming `variable` when the URL is empty, has another scheme or is
    /// malformed, or when a password is given for SQLite; the message never contains the secret.
    pub fn parse(variable: &str, raw: &str, password: Option<&str>) -> Result<Self> {
        let raw = raw.trim();
        // Registered before anything can fail, so that no error below can echo them. A SQLite
        // location carries no secret (a password for SQLite is refused below), and registering
        // `sqlite::memory:` would mask the crate's own guidance text, which names that form.
        if !raw.to_ascii_lowercase().starts_with("sqlite:") {
            register_secret(raw);
        }
        if let Some(p) = password {
            register_password(p);
        }
        if let Some(p) = ::url::Url::parse(raw)
            .ok()
            .as_ref()
            .and_then(::url::Url::password)
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
        } else if lower.starts_with("sqlite:") {
            Self::parse_sqlite(variable, raw)
        } else {
            Err(Error::config(
                variable,
                format!("has an unsupported scheme; expected {FORMS}"),
            ))
        }
    }

    /// `sqlite::memory:`, `sqlite://path` or `sqlite:path`.
    fn parse_sqlite(variable: &str, raw: &str) -> Result<Self> {
        let lower = raw.to_ascii_lowercase();
        if lower == "sqlite::memory:" || lower == "sqlite://:memory:" {
            // Each `Database` gets its own named in-memory database, shared by its connections.
            let name = format!(
                "file:taskstore-mem-{}?mode=memory&cache=shared",
                uuid::Uuid::now_v7().simple()
            );
            return Ok(Self {
                backend: BackendKind::Sqlite,
                secret: SecretString::from(name),
                redacted: "sqlite::memory:".into(),
                host: None,
                targets: Vec::new(),
                sslmode: None,
                service: None,
                own_sslmode: None,
                origin: UrlOrigin::url(variable),
                reload: None,
            });
        }
        let prefix = if lower.starts_with("sqlite://") {
            "sqlite://"
        } else {
            "sqlite:"
        };
        let path = &raw[prefix.len()..];
        if path.is_empty() {
            return Err(Error::config(
                variable,
                "has no path; expected sqlite://path/to/file.db or sqlite::memory:",
            ));
        }
        // The path is handed to SQLite as a file name: a query string would become part of
        // it (and its parameters, `mode=ro` say, would silently not apply).
        if path.contains(['?', '#']) {
            return Err(Error::config(
                variable,
                "has a query string or '#'; SQLite URL parameters (mode, cache, ...) are not supported: give the path alone, as sqlite://path/to/file.db",
            ));
        }
        Ok(Self {
            backend: BackendKind::Sqlite,
            secret: SecretString::from(path.to_owned()),
            redacted: format!("sqlite://{path}"),
            host: None,
            targets: Vec::new(),
            sslmode: None,
            service: None,
            own_sslmode: None,
            origin: UrlOrigin::url(variable),
            reload: None,
        })
    }

    fn parse_postgres(variable: &str, raw: &str, password: Option<&str>) -> Result<Self> {
        let mut parsed = postgres::parse(raw).map_err(|m| Error::config(variable, m))?;
        if let Some(p) = password {
            parsed.set("password", p);
        }
        // Registered before the strings below exist, so that nothing can print them.
        for secret in parsed.secrets() {
            register_password(secret);
        }
        let conninfo = parsed.conninfo();
        register_secret(&conninfo);
        let targets = parsed.targets();
        Ok(Self {
            backend: BackendKind::Postgres,
            redacted: parsed.redacted(),
            host: parsed
                .get("host")
                .and_then(|h| h.split(',').next())
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            targets,
            sslmode: Some(parsed.effective_sslmode()),
            service: parsed.service(),
            own_sslmode: parsed
                .get("sslmode")
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            secret: SecretString::from(conninfo),
            origin: UrlOrigin::url(variable),
            reload: None,
        })
    }

    /// The variables this URL and its password came from: what a connection error's advice
    /// names.
    pub fn origin(&self) -> &UrlOrigin {
        &self.origin
    }

    pub(super) fn with_origin(mut self, origin: UrlOrigin) -> Self {
        self.origin = origin;
        self
    }

    pub(super) fn with_reload(mut self, reload: Arc<Reload>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// How to build this URL again from its secret files, when a secret comes from one.
    pub(crate) fn reload(&self) -> Option<&Arc<Reload>> {
        self.reload.as_ref()
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

    /// True when every host libpq will connect to (the URI's hosts, or the `host` / `hostaddr`
    /// parameters that replace them, or `PGHOST` / `PGHOSTADDR`) is local: a Unix socket, a
    /// loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.remote_host().is_none()
    }

    /// The first host libpq will connect to that is not local, if any.
    pub(super) fn remote_host(&self) -> Option<&str> {
        self.targets
            .iter()
            .map(String::as_str)
            .find(|t| !is_local(t))
    }

    /// The `sslmode` libpq will use: the URL's, else `PGSSLMODE`, else libpq's default.
    pub(super) fn sslmode(&self) -> &str {
        self.sslmode.as_deref().unwrap_or("prefer")
    }

    /// The connection service libpq reads for this URL (`service=` or `PGSERVICE`), if any.
    pub(super) fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The `sslmode` the URL sets itself, if any.
    pub(super) fn own_sslmode(&self) -> Option<&str> {
        self.own_sslmode.as_deref()
    }

    /// Where libpq's first connection attempt goes (PostgreSQL): the first target host (empty:
    /// the default socket directory) and its port (default 5432). The pool uses it to find a
    /// new connection's socket; nothing secret is returned.
    pub(crate) fn first_target(&self) -> Option<(String, u16)> {
        if self.backend != BackendKind::Postgres {
            return None;
        }
        let pairs = super::libpq::parse(self.expose()).ok()?;
        let port = pairs
            .iter()
            .find(|(k, _)| k == "port")
            .and_then(|(_, v)| v.split(',').next().and_then(|p| p.trim().parse().ok()))
            .unwrap_or(5432);
        Some((self.targets.first().cloned().unwrap_or_default(), port))
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
        let Ok(mut pairs) = super::libpq::parse(self.expose()) else {
            return self.clone();
        };
        for (k, v) in params {
            match pairs.iter_mut().find(|(key, _)| key == k) {
                // `-c` settings of both: the user's come last, so that libpq applies them last.
                Some((_, user)) if *k == "options" => *user = format!("{v} {user}"),
                Some(_) => {}
                None => pairs.push(((*k).to_owned(), v.clone())),
            }
        }
        let conninfo = postgres::Parsed { pairs }.conninfo();
        register_secret(&conninfo);
        Self {
            secret: SecretString::from(conninfo),
            ..self.clone()
        }
    }
}

/// A Unix socket (a path, or `@` for Linux's abstract namespace), `localhost`, a loopback
/// address, or empty (the default socket directory).
fn is_local(target: &str) -> bool {
    target.is_empty()
        || target.starts_with('/')
        || target.starts_with('@')
        || target.eq_ignore_ascii_case("localhost")
        || target
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn password_is_merged_and_never_shown() {
        let c = Config::from_vars([
            ("DATABASE_URL", "postgres://app@db.internal:5432/tasks"),
            ("DATABASE_PASSWORD", "pw-Merged-123"),
        ])
        .unwrap();
        assert!(c.database_url().expose().contains("pw-Merged-123"));
        let shown = format!("{c:?} {c} {}", c.database_url());
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
        // libpq reads the string handed to it back to exactly the configured password.
        let pairs = super::super::libpq::parse(c.database_url().expose()).unwrap();
        assert!(pairs.contains(&("password".into(), "50%off%41 @:/".into())));
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

    #[test]
    fn sqlite_forms() {
        let file = DatabaseUrl::parse("DATABASE_URL", "sqlite://dir/x.db", None).unwrap();
        assert_eq!(
            (file.backend(), file.expose()),
            (BackendKind::Sqlite, "dir/x.db")
        );
        let short = DatabaseUrl::parse("DATABASE_URL", "SQLite:x.db", None).unwrap();
        assert_eq!(short.redacted(), "sqlite://x.db");
        let mem = DatabaseUrl::parse("DATABASE_URL", "sqlite::memory:", None).unwrap();
        assert!(mem.is_memory());
        let e = DatabaseUrl::parse("DATABASE_URL", "sqlite://", None).unwrap_err();
        assert!(e.to_string().contains("has no path"), "{e}");
    }
}
