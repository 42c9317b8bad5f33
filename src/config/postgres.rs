//! A PostgreSQL connection string read by libpq's own grammar ([`super::libpq`]), its values
//! checked as libpq checks them when connecting (so that a bad one is a configuration error,
//! not a failed connection), and the two strings built from it: the `key='value'` string handed
//! to libpq and the redacted URI shown to people.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::libpq::{self, Pairs, Refusal};

/// Keywords whose value is a secret.
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

/// Keywords with a closed set of values (as in libpq 18's `pqConnectOptions2`).
const ENUMS: &[(&str, &[&str])] = &[
    (
        "sslmode",
        &[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ],
    ),
    ("sslnegotiation", &["postgres", "direct"]),
    ("sslcertmode", &["disable", "allow", "require"]),
    ("gssencmode", &["disable", "prefer", "require"]),
    ("channel_binding", &["disable", "prefer", "require"]),
    (
        "target_session_attrs",
        &[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ],
    ),
    ("load_balance_hosts", &["disable", "random"]),
    ("ssl_min_protocol_version", TLS_VERSIONS),
    ("ssl_max_protocol_version", TLS_VERSIONS),
    ("min_protocol_version", &["3.0", "3.2", "latest"]),
    ("max_protocol_version", &["3.0", "3.2", "latest"]),
];

const TLS_VERSIONS: &[&str] = &["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// Keywords libpq reads as integers.
const INTEGERS: &[&str] = &[
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
];

const AUTH_METHODS: &[&str] = &[
    "password",
    "md5",
    "gss",
    "sspi",
    "scram-sha-256",
    "oauth",
    "none",
];

/// libpq's reading of a URL, with taskstore's checks applied.
pub(super) struct Parsed {
    pub pairs: Pairs,
}

/// Why a URL was refused; the text names parameters, never values.
pub(super) type Refused = String;

/// Reads `raw` (a `postgres://` or `postgresql://` URI) as libpq does and checks its values.
pub(super) fn parse(raw: &str) -> Result<Parsed, Refused> {
    // libpq matches the scheme case-sensitively; taskstore has always accepted `POSTGRES://`.
    let raw = match raw.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => raw.to_owned(),
    };
    let pairs = libpq::parse(&raw).map_err(|r| match r {
        Refusal::Nul => "contains a NUL byte".to_owned(),
        Refusal::UnknownParameter(Some(name)) => format!(
            "has the parameter {name:?}, which libpq does not know; see libpq's list of parameter keywords"
        ),
        Refusal::UnknownParameter(None) => {
            "has a query parameter libpq does not know; see libpq's list of parameter keywords"
                .to_owned()
        }
        Refusal::PercentEncoding => {
            "contains invalid percent-encoding; encode special characters as %XX".to_owned()
        }
        Refusal::Malformed => "is not a connection URL libpq can read; expected postgres://user:password@host:port/database?param=value with special characters percent-encoded".to_owned(),
    })?;
    check(&pairs)?;
    Ok(Parsed { pairs })
}

fn get<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The checks libpq makes only when connecting.
fn check(pairs: &Pairs) -> Result<(), Refused> {
    for (key, allowed) in ENUMS {
        if let Some(v) = get(pairs, key) {
            let ok = if key.starts_with("ssl_") {
                allowed.iter().any(|a| a.eq_ignore_ascii_case(v))
            } else {
                v.is_empty() || allowed.contains(&v)
            };
            if !ok {
                return Err(format!(
                    "has a value for the parameter {key} that libpq does not accept; expected one of {}",
                    allowed.join(", ")
                ));
            }
        }
    }
    for key in INTEGERS {
        if let Some(v) = get(pairs, key)
            && !v.trim().is_empty()
            && v.trim().parse::<i32>().is_err()
        {
            return Err(format!(
                "has a value for the parameter {key} that is not a whole number"
            ));
        }
    }
    if let Some(v) = get(pairs, "require_auth") {
        let methods: Vec<&str> = v.split(',').collect();
        let negated = methods.iter().filter(|m| m.starts_with('!')).count();
        let known = methods
            .iter()
            .all(|m| AUTH_METHODS.contains(&m.trim_start_matches('!')));
        if !known || (negated != 0 && negated != methods.len()) {
            return Err(format!(
                "has a value for the parameter require_auth that libpq does not accept; expected a list of {} (all or none negated with !)",
                AUTH_METHODS.join(", ")
            ));
        }
    }
    let hosts = list(get(pairs, "host"));
    let addrs = list(get(pairs, "hostaddr"));
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(format!(
            "names {} hosts but {} hostaddr values; give one hostaddr (or an empty entry) per host",
            hosts.len(),
            addrs.len()
        ));
    }
    if addrs
        .iter()
        .any(|a| !a.is_empty() && a.parse::<std::net::IpAddr>().is_err())
    {
        return Err("has a hostaddr entry that is not a numeric IP address".into());
    }
    let ports = list(get(pairs, "port"));
    if ports
        .iter()
        .any(|p| !p.is_empty() && !p.trim().parse::<u16>().is_ok_and(|n| n > 0))
    {
        return Err("has an invalid port number; expected 1 to 65535".into());
    }
    let entries = hosts.len().max(addrs.len()).max(1);
    if ports.len() > 1 && ports.len() != entries {
        return Err(format!(
            "names {entries} hosts but {} ports; give one port, or one per host",
            ports.len()
        ));
    }
    let sslmode = get(pairs, "sslmode").filter(|m| !m.is_empty());
    if get(pairs, "sslrootcert") == Some("system") && sslmode.is_some_and(|m| m != "verify-full") {
        return Err("has sslrootcert=system, which needs sslmode=verify-full".into());
    }
    if get(pairs, "sslnegotiation") == Some("direct")
        && !matches!(
            sslmode.unwrap_or("prefer"),
            "require" | "verify-ca" | "verify-full"
        )
    {
        return Err("has sslnegotiation=direct, which needs sslmode=require or stronger".into());
    }
    Ok(())
}

/// A comma-separated libpq list (`host`, `hostaddr`, `port`); empty when unset.
fn list(value: Option<&str>) -> Vec<&str> {
    value.map(|v| v.split(',').collect()).unwrap_or_default()
}

impl Parsed {
    /// The value libpq will use for `key` from this string (no environment).
    pub fn get(&self, key: &str) -> Option<&str> {
        get(&self.pairs, key)
    }

    /// Sets `key` (replacing a value from the string).
    pub fn set(&mut self, key: &str, value: &str) {
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.push((key.to_owned(), value.to_owned()));
    }

    /// The secret values (passwords) this string carries.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(|(k, _)| SECRET_KEYS.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// What libpq connects to, one entry per host: `hostaddr` when set, else `host`, else
    /// the default socket directory (`""`). libpq's environment fallbacks (`PGHOST`,
    /// `PGHOSTADDR`) apply when the string sets neither.
    pub fn targets(&self) -> Vec<String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let host = self
            .get("host")
            .map(str::to_owned)
            .or_else(|| env("PGHOST"));
        let addr = self
            .get("hostaddr")
            .map(str::to_owned)
            .or_else(|| env("PGHOSTADDR"));
        let hosts = list(host.as_deref());
        let addrs = list(addr.as_deref());
        let n = hosts.len().max(addrs.len()).max(1);
        (0..n)
            .map(|i| {
                let a = addrs.get(i).copied().unwrap_or("");
                let h = hosts.get(i).copied().unwrap_or("");
                if a.is_empty() { h } else { a }.trim().to_owned()
            })
            .collect()
    }

    /// The connection service libpq will read: the string's `service`, else `PGSERVICE`.
    pub fn service(&self) -> Option<String> {
        self.get("service")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| std::env::var("PGSERVICE").ok().filter(|s| !s.is_empty()))
    }

    /// The `sslmode` libpq will use: the string's, else `PGSSLMODE`, else libpq's default.
    pub fn effective_sslmode(&self) -> String {
        self.get("sslmode")
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .or_else(|| std::env::var("PGSSLMODE").ok().filter(|m| !m.is_empty()))
            .unwrap_or_else(|| {
                if self.get("sslrootcert") == Some("system") {
                    "verify-full".into()
                } else {
                    "prefer".into()
                }
            })
    }

    /// The `key='value'` string handed to libpq: exact for every value, no percent-encoding.
    pub fn conninfo(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.pairs {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push_str("='");
            out.push_str(&v.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push('\'');
        }
        out
    }

    /// The URI shown to people, built from libpq's reading (never from the raw string):
    /// passwords are `***`.
    pub fn redacted(&self) -> String {
        let mut out = String::from("postgres://");
        if let Some(user) = self.get("user") {
            out.extend(utf8_percent_encode(user, USERINFO));
        }
        if self.get("password").is_some() {
            out.push_str(":***");
        }
        if self.get("user").is_some() || self.get("password").is_some() {
            out.push('@');
        }
        let hosts = list(self.get("host"));
        let ports = list(self.get("port"));
        let n = hosts
            .len()
            .max(if ports.len() > 1 { ports.len() } else { 0 });
        let mut entries = Vec::new();
        for i in 0..n.max(usize::from(!ports.is_empty())) {
            let h = hosts.get(i).copied().unwrap_or("");
            let mut e = if h.contains(':') && !h.starts_with('/') {
                format!("[{h}]")
            } else {
                utf8_percent_encode(h, HOST).to_string()
            };
            let p = if ports.len() == 1 {
                ports[0]
            } else {
                ports.get(i).copied().unwrap_or("")
            };
            if !p.is_empty() {
                e.push(':');
                e.push_str(p);
            }
            entries.push(e);
        }
        out.push_str(&entries.join(","));
        if let Some(db) = self.get("dbname") {
            out.push('/');
            out.extend(utf8_percent_encode(db, PATH));
        }
        let rest: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "user" | "password" | "host" | "port" | "dbname")
            })
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) {
                    "***".to_owned()
                } else {
                    utf8_percent_encode(v, QUERY).to_string()
                };
                format!("{k}={v}")
            })
            .collect();
        if !rest.is_empty() {
            out.push('?');
            out.push_str(&rest.join("&"));
        }
        out
    }
}

const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'@')
    .add(b':')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b',');
const HOST: &AsciiSet = &USERINFO.add(b'[').add(b']');
const PATH: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'/').add(b'?').add(b'#');
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'&').add(b'=').add(b'#');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redacted_form_is_built_from_libpq_reading() {
        for (raw, shown) in [
            (
                "postgres://app:pw-Xy@h1:1,h2:5432/db?sslmode=require",
                "postgres://app:***@h1:1,h2:5432/db?sslmode=require",
            ),
            (
                "postgresql://u@%2Fvar%2Frun%2Fpostgresql:5433/db",
                "postgres://u@%2Fvar%2Frun%2Fpostgresql:5433/db",
            ),
            (
                "postgres://app@localhost/app?host=db.example.com&password=pw-Xy",
                "postgres://app:***@db.example.com/app",
            ),
        ] {
            assert_eq!(parse(raw).unwrap().redacted(), shown, "{raw}");
        }
    }

    #[test]
    fn values_libpq_checks_when_connecting_are_checked_here() {
        for raw in [
            "postgres://h/db?sslmode=bogus",
            "postgres://h/db?connect_timeout=soon",
            "postgres://h1,h2/db?hostaddr=127.0.0.1",
            "postgres://h1,h2/db?port=1,2,3",
            "postgres://h/db?hostaddr=db.example.com",
            "postgres://h/db?require_auth=password,!md5",
            "postgres://h/db?sslnegotiation=direct",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }
}
