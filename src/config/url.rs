//! [`DatabaseUrl`]: a database location whose connection string is a secret, parsed from the
//! forms `DATABASE_URL` accepts.
//!
//! PostgreSQL URLs are read with the `url` crate plus the checks libpq would otherwise fail on
//! later (echoing the string back); libpq's own URL and `key=value` grammar (multiple hosts,
//! `host=` parameters, Unix sockets) belongs here too, next to [`DatabaseUrl::parse`].

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::redact::{redact_url, register_password, register_secret};

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
        // Registered before anything can fail, so that no error below can echo them.
        register_secret(raw);
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
        Ok(Self {
            backend: BackendKind::Sqlite,
            secret: SecretString::from(path.to_owned()),
            redacted: format!("sqlite://{path}"),
            host: None,
        })
    }

    fn parse_postgres(variable: &str, raw: &str, password: Option<&str>) -> Result<Self> {
        let mut url = ::url::Url::parse(raw).map_err(|e| {
            Error::config(variable, format!("is not a valid URL ({e}); expected postgres://user:password@host:port/database with special characters percent-encoded"))
        })?;
        // libpq would reject these later and echo the string back; refuse them here instead.
        for part in [url.username(), url.password().unwrap_or(""), url.path()] {
            if percent_decode_str(part).decode_utf8().is_err() || has_bad_percent(part) {
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
            let encoded = utf8_percent_encode(p, USERINFO_STRICT).to_string();
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
    pub(super) fn query_param(&self, key: &str) -> Option<String> {
        ::url::Url::parse(self.expose())
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
        let Ok(mut url) = ::url::Url::parse(self.expose()) else {
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
                query.extend(utf8_percent_encode(v, NON_ALPHANUMERIC));
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
const USERINFO_STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// True when a `%` is not followed by two hex digits.
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
        let url = ::url::Url::parse(c.database_url().expose()).unwrap();
        let sent = url.password().unwrap();
        // libpq percent-decodes the userinfo once; it must get the password back unchanged.
        let decoded = percent_decode_str(sent).decode_utf8().unwrap();
        assert_eq!(decoded, "50%off%41 @:/");
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
