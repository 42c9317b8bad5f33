//! Keeping secrets out of every message the crate produces.
//!
//! Two defences, applied together by [`scrub`]:
//! 1. every secret the process was configured with (passwords in their raw, percent-encoded and
//!    decoded forms, whole connection strings) is registered in a process-wide registry when a
//!    [`crate::Config`] is built, and any occurrence is replaced by `***`;
//! 2. shapes that carry credentials whatever their value — `scheme://user:password@`,
//!    `password=...` — are masked, and quoted fragments of a connection string that libpq echoes
//!    back in its error text are masked too.
//!
//! The registry is the crate's own: only building a [`crate::Config`] fills it, so no caller
//! can unregister, replace or flood it.

use std::borrow::Cow;
use std::sync::RwLock;

/// The mask that replaces a secret.
pub const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static PASSWORDS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a password: [`scrub`] removes it, and any quoted fragment that shares four or more
/// characters with it, from every message from now on.
pub(crate) fn register_password(password: &str) {
    register_secret(password);
    if password.len() < 3 {
        return;
    }
    let mut pws = PASSWORDS.write().unwrap_or_else(|e| e.into_inner());
    if !pws.iter().any(|p| p == password) {
        pws.push(password.to_owned());
    }
}

/// Remembers `secret` (a whole connection string, say) so that [`scrub`] removes every
/// occurrence of it from every message from now on. Strings shorter than three characters are
/// ignored (they would mask ordinary words).
pub(crate) fn register_secret(secret: &str) {
    if secret.len() < 3 {
        return;
    }
    let mut variants = vec![secret.to_owned()];
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    variants.push(encoded);
    if let Ok(decoded) = percent_encoding::percent_decode_str(secret).decode_utf8() {
        variants.push(decoded.into_owned());
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in variants {
        if v.len() >= 3 && !secrets.contains(&v) {
            secrets.push(v);
        }
    }
    // Longest first, so that a URL is masked whole before its password is.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Returns `message` with every registered secret and every credential-shaped fragment masked.
pub fn scrub(message: &str) -> String {
    let mut out: Cow<'_, str> = Cow::Borrowed(message);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        // A quoted fragment that overlaps a password (libpq echoes tokens such as
        // `invalid percent-encoded token: "p%zzw0rd@host"`).
        let passwords = PASSWORDS.read().unwrap_or_else(|e| e.into_inner());
        out = Cow::Owned(mask_quoted(&out, |frag| {
            frag.contains("://")
                || frag.contains('@')
                || passwords.iter().any(|p| overlaps(frag, p))
        }));
    }
    let out = mask_userinfo(&out);
    mask_key_value(&out, "password")
}

/// Redacts a connection URL for display: `postgres://app:***@db.example.com:5432/tasks`.
/// Anything that does not parse as a URL is shown only as its scheme.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some(MASK));
            }
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let secretish =
                        k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
                    (
                        k.into_owned(),
                        if secretish {
                            MASK.to_owned()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string().replace("%2A%2A%2A", MASK)
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _))
                if scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+') =>
            {
                format!("{scheme}://{MASK} (unparseable, redacted)")
            }
            _ => format!("{MASK} (unparseable, redacted)"),
        },
    }
}

/// True when `frag` and `secret` share a run of at least four characters (or all of a shorter
/// secret).
fn overlaps(frag: &str, secret: &str) -> bool {
    if frag.is_empty() {
        return false;
    }
    let window = secret.len().min(4);
    if frag.len() < window {
        return secret.contains(frag) && frag.len() >= 3;
    }
    let bytes = secret.as_bytes();
    (0..=bytes.len() - window)
        .any(|i| std::str::from_utf8(&bytes[i..i + window]).is_ok_and(|w| frag.contains(w)))
}

fn mask_quoted(s: &str, secretish: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('"') {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let after = &after[1..];
        match after.find('"') {
            Some(end) => {
                let frag = &after[..end];
                out.push('"');
                out.push_str(if secretish(frag) { MASK } else { frag });
                out.push('"');
                rest = &after[end + 1..];
            }
            None => {
                // An unterminated quote: mask the tail if it looks secret.
                out.push('"');
                out.push_str(if secretish(after) { MASK } else { after });
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn mask_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end; userinfo at its last '@'.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == '?')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `password=secret` (libpq key/value form or URL query) → `password=***`; a quoted value
/// (`password='top secret'`, libpq's key/value quoting) is masked whole, quotes included. An
/// empty value (`password=` before a space, `&` or the end) carries nothing and is left as is.
fn mask_key_value(s: &str, key: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let needle = format!("{key}=");
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(&needle) {
        let value_start = search + found + needle.len();
        let rest = &s[value_start..];
        let value_end = match rest.chars().next() {
            // Up to the closing quote, or to the end when there is none.
            Some(q @ ('\'' | '"')) => rest[1..]
                .find(q)
                .map_or(s.len(), |e| value_start + 1 + e + 1),
            _ => rest
                .find(|c: char| c.is_whitespace() || c == '&' || c == '"' || c == '\'')
                .map_or(s.len(), |e| value_start + e),
        };
        out.push_str(&s[last..value_start]);
        if value_end > value_start {
            out.push_str(MASK);
        }
        last = value_end;
        search = value_end;
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_for_display() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example.com:5432/tasks"),
            "postgres://app:***@db.example.com:5432/tasks"
        );
        assert_eq!(
            redact_url("postgres://app@db/tasks"),
            "postgres://app@db/tasks"
        );
        assert!(!redact_url("postgres://app:s3cr%zzet@db/tasks").contains("s3cr"));
        assert!(!redact_url("postgres://h/db?password=hunter22").contains("hunter22"));
    }

    #[test]
    fn scrub_masks_shapes_without_registration() {
        let s = scrub("could not connect to postgres://u:pw-unregistered@h/db please");
        assert!(!s.contains("pw-unregistered"), "{s}");
        let s =
            scrub("missing \"=\" after \"host=h password=topsecret\" in connection info string");
        assert!(!s.contains("topsecret"), "{s}");
    }

    #[test]
    fn scrub_masks_quoted_key_values_whole_and_leaves_empty_ones() {
        let s = scrub("missing \"=\" after \"host=h password='Top Secret9' x\"");
        assert!(!s.contains("Top") && !s.contains("Secret9"), "{s}");
        let s = scrub("host=h password=\"Dq-Secret7 x\" port=1");
        assert!(!s.contains("Dq-Secret7") && s.contains("port=1"), "{s}");
        let s = scrub("host=h password='Unclosed-Secret5");
        assert!(!s.contains("Unclosed-Secret5"), "{s}");
        assert_eq!(scrub("password=&user=u"), "password=&user=u");
        assert_eq!(scrub("password= x"), "password= x");
    }

    #[test]
    fn scrub_masks_registered_fragments() {
        register_password("Zq9-registered-pw");
        let s = scrub("invalid percent-encoded token: \"Zq9-regis%zz\"");
        assert!(!s.contains("Zq9-regis"), "{s}");
    }
}
