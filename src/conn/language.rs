//! The language of the server's messages. Diesel 2.3 exposes no SQLSTATE for lock timeouts
//! (55P03), statement timeouts (57014) or deadlocks (40P01), so the crate recognises them by
//! their English text; a server with `lc_messages = 'de_DE.utf8'` would make them "other"
//! errors. A role that may set `lc_messages` (a superuser, or one granted `SET` on it,
//! PostgreSQL 15+) gets `lc_messages=C` in its startup packet, which `RESET ALL` keeps; for any
//! other role the crate warns, once per process, naming the setting and the fix.

use std::sync::atomic::{AtomicBool, Ordering};

use diesel::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Nullable, Text};

/// The first PostgreSQL release with `has_parameter_privilege` (and `GRANT SET ON PARAMETER`).
const PG15: i32 = 150_000;

/// Whether a new connection's session must be reopened with `lc_messages=C`: its messages are
/// not English and the role may set them. Warns instead when the role may not.
pub(super) fn must_force_english(pg: &mut PgConnection) -> QueryResult<bool> {
    let (language, version, superuser) = diesel::select((
        diesel::dsl::sql::<Text>("current_setting('lc_messages')"),
        diesel::dsl::sql::<Integer>("current_setting('server_version_num')::int"),
        diesel::dsl::sql::<Nullable<Bool>>(
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        ),
    ))
    .get_result::<(String, i32, Option<bool>)>(pg)?;
    if is_english(&language) {
        return Ok(false);
    }
    let may_set = superuser == Some(true)
        || (version >= PG15
            // Sent only to 15+: older servers reject the unknown function at parse time.
            && diesel::select(diesel::dsl::sql::<Bool>(
                "has_parameter_privilege('lc_messages', 'SET')",
            ))
            .get_result::<bool>(pg)?);
    if may_set {
        tracing::debug!(lc_messages = %language, "the server's messages are not English; sessions ask for lc_messages=C");
    } else {
        warn_once(&language);
    }
    Ok(may_set)
}

/// `C`, `POSIX` and `en*` are English; an empty value (the server process's environment) is
/// taken as English too, since it cannot be known from here.
fn is_english(language: &str) -> bool {
    let l = language.to_ascii_lowercase();
    l.is_empty() || l == "c" || l.starts_with("c.") || l == "posix" || l.starts_with("en")
}

fn warn_once(language: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        lc_messages = %language,
        "the server's messages are not in English (lc_messages = '{language}') and this role \
         may not set lc_messages: lock timeouts, statement timeouts and deadlocks cannot be \
         recognised (they become 'database error (other)' and deadlocks are not re-run); fix: \
         as a superuser run ALTER ROLE <this role> SET lc_messages = 'C', or GRANT SET ON \
         PARAMETER lc_messages TO <this role> (PostgreSQL 15+)"
    );
}

#[cfg(test)]
mod tests {
    use super::is_english;

    #[test]
    fn english_is_c_posix_or_en() {
        for english in ["C", "c.UTF-8", "POSIX", "en_US.UTF-8", "en_GB.utf8", ""] {
            assert!(is_english(english), "{english}");
        }
        for other in ["de_DE.utf8", "fr_FR.UTF-8", "sv_SE", "Chinese"] {
            assert!(!is_english(other), "{other}");
        }
    }
}
