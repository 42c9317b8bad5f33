//! The field rules of SPEC §2, checked in Rust before any SQL is sent.
//!
//! Each check returns [`Error::Validation`] naming the field and the rule it broke. The same
//! rules are CHECK constraints in the migrations (the second wall); lengths are counted in
//! characters (Unicode scalar values), which is what PostgreSQL's `char_length` and SQLite's
//! `length` count.
//!
//! NUL (`\0`) is refused in every text field: PostgreSQL cannot store it in `text` at all, and
//! SQLite would store it but truncate it in `length()` and friends, so accepting it would make
//! the two backends behave differently.

use chrono::{DateTime, Datelike, Utc};

use crate::error::{Error, Result};

/// Longest email address accepted (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Longest local part (before the `@`) of an email address (RFC 5321).
pub const EMAIL_LOCAL_MAX_CHARS: usize = 64;
/// Longest password hash accepted.
pub const PASSWORD_HASH_MAX_CHARS: usize = 1024;
/// Longest first or last name.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest task title, after trimming.
pub const TITLE_MAX_CHARS: usize = 255;
/// Longest task description.
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Lowest task priority.
pub const PRIORITY_MIN: i16 = 1;
/// Highest task priority.
pub const PRIORITY_MAX: i16 = 5;
/// Priority of a task created without one.
pub const PRIORITY_DEFAULT: i16 = 3;
/// Longest search string for task listings.
pub const SEARCH_MAX_CHARS: usize = 255;

fn no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::validation(
            field,
            "must not contain NUL (\\0) characters",
        ));
    }
    Ok(())
}

fn max_chars(field: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(Error::validation(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    Ok(())
}

/// Normalises an email address (trimmed, lower-cased) and checks its shape: one `@`, a local
/// part of dot-separated atoms (RFC 5322 `dot-atom`, non-ASCII allowed), a domain of at least two
/// dot-separated labels of letters, digits and inner hyphens, at most 254 characters in all.
///
/// Quoted local parts and IP-literal domains are refused: nobody signs up with them, and refusing
/// them keeps `@` unique in the address.
pub fn email(raw: &str) -> Result<String> {
    no_nul("email", raw)?;
    let email = raw.trim().to_lowercase();
    let bad = |reason: &str| Err(Error::validation("email", reason));
    if email.is_empty() {
        return bad("is required");
    }
    max_chars("email", &email, EMAIL_MAX_CHARS)?;
    let Some((local, domain)) = email.split_once('@') else {
        return bad("must be an address of the form name@example.com (no @ found)");
    };
    if domain.contains('@') {
        return bad("must contain exactly one @");
    }
    if local.is_empty() || local.chars().count() > EMAIL_LOCAL_MAX_CHARS {
        return bad("the part before the @ must be 1 to 64 characters");
    }
    let atom_char = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+/=?^_`{|}~-".contains(c)
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
    };
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atom_char))
    {
        return bad(
            "the part before the @ may contain letters, digits and !#$%&'*+/=?^_`{|}~- \
             separated by single dots",
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return bad(
            "the domain after the @ must be dot-separated labels of letters, digits and inner \
             hyphens, such as example.com",
        );
    }
    Ok(email)
}

/// An already-hashed password (a PHC string or similar): 1..=1024 characters, no whitespace.
pub fn password_hash(value: &str) -> Result<()> {
    no_nul("password_hash", value)?;
    if value.is_empty() {
        return Err(Error::validation("password_hash", "is required"));
    }
    max_chars("password_hash", value, PASSWORD_HASH_MAX_CHARS)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::validation(
            "password_hash",
            "must not contain whitespace or control characters (expected an encoded hash such \
             as a PHC string)",
        ));
    }
    Ok(())
}

/// An optional text field (`description`, `first_name`, `last_name`) as it is stored: the
/// empty string is stored as absent (`NULL`), so that empty and absent are one value everywhere
/// (create, update, import) and an export re-imports identically in both formats (CSV cannot
/// tell an empty cell from a missing one). Any other value is kept exactly as given.
///
/// ```
/// use taskstore::models::validate::optional_text;
/// assert_eq!(optional_text(Some("")), None);
/// assert_eq!(optional_text(Some(" x ")), Some(" x "));
/// assert_eq!(optional_text(None), None);
/// ```
pub fn optional_text(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// A first or last name: at most 100 characters, stored exactly as given.
pub fn name(field: &str, value: &str) -> Result<()> {
    no_nul(field, value)?;
    max_chars(field, value, NAME_MAX_CHARS)
}

/// A task title: trimmed, then 1..=255 characters. Returns the trimmed title.
pub fn title(value: &str) -> Result<&str> {
    no_nul("title", value)?;
    let title = value.trim();
    let n = title.chars().count();
    if n == 0 || n > TITLE_MAX_CHARS {
        return Err(Error::validation(
            "title",
            format!("must be 1 to {TITLE_MAX_CHARS} characters after trimming, got {n}"),
        ));
    }
    Ok(title)
}

/// A task description: at most 1000 characters, stored exactly as given.
pub fn description(value: &str) -> Result<()> {
    no_nul("description", value)?;
    max_chars("description", value, DESCRIPTION_MAX_CHARS)
}

/// A priority, 1 (lowest) to 5 (highest); `field` names it in the error.
pub fn priority(field: &str, value: i16) -> Result<i16> {
    if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&value) {
        return Err(Error::validation(
            field,
            format!("must be from {PRIORITY_MIN} to {PRIORITY_MAX}, got {value}"),
        ));
    }
    Ok(value)
}

/// A search string: at most 255 characters, no NUL.
pub fn search(value: &str) -> Result<()> {
    no_nul("search", value)?;
    max_chars("search", value, SEARCH_MAX_CHARS)
}

/// A timestamp both backends can store and compare: years 1 to 9999.
pub fn timestamp(field: &str, value: &DateTime<Utc>) -> Result<()> {
    if !(1..=9999).contains(&value.year()) {
        return Err(Error::validation(
            field,
            format!("must be between the years 1 and 9999, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_shaped() {
        assert_eq!(
            email("  Ann.Lee+x@Example.COM ").unwrap(),
            "ann.lee+x@example.com"
        );
        assert_eq!(email("josé@exämple.de").unwrap(), "josé@exämple.de");
        for bad in [
            "",
            "   ",
            "no-at",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a..b@c.com",
            ".a@c.com",
            "a.@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@b.com.",
            "\"a\"@b.com",
            "a@[1.2.3.4]",
            "a\0@b.com",
        ] {
            let err = email(bad).unwrap_err();
            assert!(
                matches!(&err, Error::Validation { field, .. } if field == "email"),
                "{bad:?}: {err}"
            );
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(63));
        assert!(email(&long).is_ok());
        let too_long = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(60)
        );
        assert!(email(&too_long).is_err());
        assert!(email(&format!("{}@b.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn titles_are_trimmed_and_counted_in_characters() {
        assert_eq!(title("  x \t").unwrap(), "x");
        assert!(title(" \n ").is_err());
        assert!(title(&"é".repeat(255)).is_ok());
        assert!(title(&"🦀".repeat(256)).is_err());
        assert!(title("a\0b").is_err());
    }

    #[test]
    fn other_fields() {
        assert!(password_hash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA").is_ok());
        assert!(password_hash("").is_err());
        assert!(password_hash("with space").is_err());
        assert!(password_hash(&"x".repeat(1025)).is_err());
        assert!(name("first_name", &"n".repeat(100)).is_ok());
        assert!(name("first_name", &"n".repeat(101)).is_err());
        assert!(description(&"d".repeat(1000)).is_ok());
        assert!(description(&"d".repeat(1001)).is_err());
        assert!(priority("priority", 0).is_err());
        assert!(priority("priority", 6).is_err());
        assert_eq!(priority("priority", 5).unwrap(), 5);
    }
}
