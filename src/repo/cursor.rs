//! Opaque keyset cursors.
//!
//! A cursor is URL-safe base64 (no padding) of
//! `version (1) | sort code (1) | id (16) | sort key (0, 2, 8 or up to 1020 bytes) | check (8)`,
//! where the check is the first 8 bytes of SHA-256 over a domain tag, the listing's scope (the
//! owner's id for tasks) and everything before it. A cursor that was altered, that belongs to
//! another owner or another sort order, or that is not a cursor at all is a validation error on
//! the `cursor` field — never a crash and never a wrong page.
//!
//! The check is an integrity check, not a secret: whoever knows this code can forge a cursor
//! for their own listing, which only moves where their own page starts. Isolation between users
//! never depends on it: every query is scoped by the owner's id regardless of the cursor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const CHECK_LEN: usize = 8;
const HEADER_LEN: usize = 2 + 16;
/// Longer strings are refused before decoding (the longest real cursor, a 255-character title
/// of 4-byte characters, is under 1 400 characters).
const MAX_ENCODED_LEN: usize = 2048;
const DOMAIN: &[u8] = b"taskstore.cursor.v1";

fn check(scope: Uuid, payload: &[u8]) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(scope.as_bytes());
    h.update(payload);
    let digest = h.finalize();
    let mut out = [0; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

/// Encodes the position after the row `(key, id)` of the listing `scope` sorted by `sort`.
pub(crate) fn encode(scope: Uuid, sort: u8, id: Uuid, key: &[u8]) -> String {
    let mut buf = Vec::with_capacity(HEADER_LEN + key.len() + CHECK_LEN);
    buf.push(VERSION);
    buf.push(sort);
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(key);
    let c = check(scope, &buf);
    buf.extend_from_slice(&c);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The error for any cursor that does not belong to this listing.
pub(crate) fn invalid(reason: &str) -> Error {
    Error::validation(
        "cursor",
        format!(
            "{reason}; pass the next_cursor of the previous page of the same listing, or none to start again"
        ),
    )
}

/// Decodes a cursor of the listing `scope` sorted by `sort`: the row id and the sort key bytes.
pub(crate) fn decode(scope: Uuid, sort: u8, cursor: &str) -> Result<(Uuid, Vec<u8>)> {
    if cursor.len() > MAX_ENCODED_LEN {
        return Err(invalid("is too long to be a cursor"));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid("is not a cursor (not URL-safe base64)"))?;
    if raw.len() < HEADER_LEN + CHECK_LEN || raw[0] != VERSION {
        return Err(invalid("is not a cursor of this version of taskstore"));
    }
    let (payload, given) = raw.split_at(raw.len() - CHECK_LEN);
    // Not constant-time on purpose: the check is not a secret (see the module doc).
    if check(scope, payload) != given {
        return Err(invalid(
            "does not belong to this listing (altered, or made for another user or listing)",
        ));
    }
    if payload[1] != sort {
        return Err(invalid("was made for another sort order"));
    }
    let id = Uuid::from_slice(&payload[2..HEADER_LEN]).map_err(|_| invalid("is damaged"))?;
    Ok((id, payload[HEADER_LEN..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_tampering() {
        let owner = Uuid::now_v7();
        let id = Uuid::now_v7();
        let c = encode(owner, 3, id, b"key");
        assert_eq!(decode(owner, 3, &c).unwrap(), (id, b"key".to_vec()));

        let field = |e: Error| match e {
            Error::Validation { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(field(decode(Uuid::now_v7(), 3, &c).unwrap_err()), "cursor");
        assert_eq!(field(decode(owner, 4, &c).unwrap_err()), "cursor");
        for bad in ["", "!!!", "AAAA", &"A".repeat(5000)] {
            assert_eq!(field(decode(owner, 3, bad).unwrap_err()), "cursor");
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(&raw);
            assert!(decode(owner, 3, &tampered).is_err(), "byte {i}");
            raw[i] ^= 1;
        }
    }
}
