//! The production TLS rule: in production a PostgreSQL connection to a non-loopback host must
//! ask for TLS (`sslmode=require` or stronger) unless `DATABASE_REQUIRE_TLS=false` says
//! otherwise.

use super::values::switch;
use super::{BackendKind, DatabaseUrl, Environment};
use crate::error::{Error, Result};

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

impl TlsRequirement {
    /// `auto` (or empty), or a switch: `true`/`1`/`yes`/`on`, `false`/`0`/`no`/`off`.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("auto") {
            return Some(Self::Auto);
        }
        switch(text).map(|on| if on { Self::Required } else { Self::Off })
    }

    /// The lowercase name shown by `taskstore config`: `auto`, `required` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Required => "required",
            Self::Off => "off",
        }
    }

    /// Whether a connection to `url` must use TLS in `environment`.
    fn required_for(self, environment: Environment, url: &DatabaseUrl) -> bool {
        match self {
            Self::Off => false,
            Self::Required => true,
            Self::Auto => environment == Environment::Production && !url.is_loopback(),
        }
    }
}

/// Refuses a plain-text PostgreSQL connection where TLS is required. `urls` are the URLs the
/// configuration connects to, each with the variable it came from (named in the error).
pub(super) fn check<'a>(
    requirement: TlsRequirement,
    environment: Environment,
    urls: impl IntoIterator<Item = (&'static str, &'a DatabaseUrl)>,
) -> Result<()> {
    for (variable, url) in urls {
        if url.backend() != BackendKind::Postgres {
            continue;
        }
        // A connection service's entry in pg_service.conf may set the host and sslmode, and
        // libpq applies it below the URL's own parameters but above PGHOST / PGSSLMODE: what it
        // connects to cannot be judged from here, so where the rule may apply the URL must ask
        // for TLS itself.
        if let Some(service) = url.service()
            && (requirement == TlsRequirement::Required
                || (requirement == TlsRequirement::Auto && environment == Environment::Production))
            && !matches!(
                url.own_sslmode(),
                Some("require" | "verify-ca" | "verify-full")
            )
        {
            return Err(Error::config(
                variable,
                format!(
                    "uses the connection service {service:?} (service= or PGSERVICE), whose host and sslmode taskstore cannot judge; add sslmode=require (or verify-full) to the URL itself, or set DATABASE_REQUIRE_TLS=false to allow plain TCP explicitly"
                ),
            ));
        }
        if !requirement.required_for(environment, url) {
            continue;
        }
        if !matches!(url.sslmode(), "require" | "verify-ca" | "verify-full") {
            return Err(Error::config(
                variable,
                format!(
                    "connects to the non-loopback host {:?} without TLS; add sslmode=require (or verify-full) to the URL, or set DATABASE_REQUIRE_TLS=false to allow it explicitly",
                    url.remote_host().unwrap_or("?")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;

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
    fn replicas_and_the_migration_url_are_judged_too() {
        for (var, extra) in [
            (
                "DATABASE_REPLICA_URLS",
                "postgres://r@replica.example.com/t",
            ),
            (
                "DATABASE_MIGRATION_URL",
                "postgres://m@direct.example.com/t",
            ),
        ] {
            let e = Config::from_vars([
                ("TASKSTORE_ENV", "production"),
                (
                    "DATABASE_URL",
                    "postgres://a@db.example.com/t?sslmode=require",
                ),
                (var, extra),
            ])
            .unwrap_err();
            assert!(
                matches!(&e, crate::Error::Config { variable, .. } if variable == var),
                "{e}"
            );
        }
        let e = Config::from_vars([
            ("DATABASE_REQUIRE_TLS", "true"),
            ("DATABASE_URL", "postgres://a@127.0.0.1/t"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("sslmode=require"), "{e}");
    }
}
