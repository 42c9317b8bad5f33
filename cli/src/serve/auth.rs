//! HTTP Basic authentication against the stored PHC `password_hash` (Argon2id, RFC 9106, via
//! the `argon2` crate).
//!
//! - Unknown email, wrong password and inactive user are the same 401. An unknown email is
//!   verified against a dummy hash made at start-up with the same parameters, so that it costs
//!   what a wrong password costs (no timing oracle for which emails exist).
//! - A successful verification is remembered as SHA-256(stored hash, password) for
//!   [`VERIFIED_TTL`], so that a client sending the same credentials on every request pays
//!   Argon2's deliberate cost once, not per request. The user row is still read on every request
//!   (deactivation and password changes take effect at once: a new hash misses the cache);
//!   failures are never remembered, so every wrong guess pays the full cost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use taskstore::Error;
use taskstore::models::User;

/// How long a successful verification is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// At most this many remembered verifications; the memory is cleared when it is full.
const VERIFIED_MAX: usize = 10_000;

/// Passwords are 8 to 1024 characters (NIST SP 800-63B §5.1.1.2: at least 8, allow long ones).
pub const PASSWORD_MIN: usize = 8;
/// See [`PASSWORD_MIN`]; the upper bound keeps hashing cost bounded.
pub const PASSWORD_MAX: usize = 1024;

/// Hashes `password` as an Argon2id PHC string with the crate's default parameters
/// (m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum) and a random salt.
pub fn hash_password(password: &str) -> Result<String, Error> {
    check_password(password)?;
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::validation("password", format!("cannot be hashed: {e}")))
}

/// Refuses a password outside [`PASSWORD_MIN`]..=[`PASSWORD_MAX`] characters.
pub fn check_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(Error::validation(
            "password",
            format!("must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {n}"),
        ));
    }
    Ok(())
}

/// Verifies credentials; holds the dummy hash and the memory of recent successes.
pub struct Authenticator {
    dummy: String,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            dummy: hash_password("dummy password for unknown emails")
                .expect("a fixed valid password hashes"),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The email and password of an `Authorization: Basic ...` header value, if it is one.
    pub fn parse_basic(value: &str) -> Option<(String, String)> {
        let (scheme, b64) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (email, password) = text.split_once(':')?;
        Some((email.to_owned(), password.to_owned()))
    }

    /// Whether `password` matches `user` (looked up by the caller; `None` for an unknown email)
    /// and the user is active. Blocking: call it on a blocking thread.
    pub fn verify(&self, user: Option<&User>, password: &str) -> bool {
        let Some(user) = user else {
            // Same work as for a known user, then refuse.
            let _ = self.argon2_verify(&self.dummy, password);
            return false;
        };
        let key = cache_key(&user.password_hash, password);
        if self.remembered(&key) {
            return user.is_active;
        }
        let ok = self.argon2_verify(&user.password_hash, password);
        if ok {
            let mut map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
            map.insert(key, Instant::now());
        }
        ok && user.is_active
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        let map = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|t| t.elapsed() < VERIFIED_TTL)
    }

    fn argon2_verify(&self, phc: &str, password: &str) -> bool {
        // A stored hash that is not a PHC string (e.g. set with `--password-hash` to something
        // else) cannot match; verify the dummy so that the answer takes the usual time.
        match PasswordHash::new(phc) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => {
                let hash = PasswordHash::new(&self.dummy).expect("dummy hash parses");
                let _ = Argon2::default().verify_password(password.as_bytes(), &hash);
                false
            }
        }
    }
}

fn cache_key(phc: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(phc.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let hash = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &hash)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", &hash)
                .is_err()
        );
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn basic_headers_parse() {
        // "ada@example.com:pa:ss" — a colon in the password is kept.
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ada@example.com:pa:ss")
        );
        assert_eq!(
            Authenticator::parse_basic(&v),
            Some(("ada@example.com".into(), "pa:ss".into()))
        );
        assert_eq!(Authenticator::parse_basic("Bearer abc"), None);
        assert_eq!(Authenticator::parse_basic("Basic !!!"), None);
    }
}
