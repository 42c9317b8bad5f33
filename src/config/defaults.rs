//! The defaults as named constants, for code and documentation that want them typed.
//!
//! Each one is read out of [`SPECS`](super::SPECS) at compile time, so a constant cannot drift
//! from the table (a missing row or a non-numeric default stops the build).

use super::spec::VariableSpec;
use super::variables::SPECS;

/// Default for `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = text("DATABASE_URL");
/// Default for `DATABASE_POOL_MAX_SIZE`.
pub const DEFAULT_POOL_MAX_SIZE: u32 = count("DATABASE_POOL_MAX_SIZE");
/// Default for `DATABASE_POOL_MIN_IDLE` (capped at the pool size): two warm connections serve
/// a health check and a request without a connect on the request path, while holding few
/// server slots per instance.
pub const DEFAULT_POOL_MIN_IDLE: u32 = count("DATABASE_POOL_MIN_IDLE");
/// Default for `DATABASE_ACQUIRE_TIMEOUT_MS`.
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = number("DATABASE_ACQUIRE_TIMEOUT_MS");
/// Default for `DATABASE_POOL_MAX_WAITERS` (0 = unlimited).
pub const DEFAULT_POOL_MAX_WAITERS: u32 = count("DATABASE_POOL_MAX_WAITERS");
/// Default for `DATABASE_CONNECT_TIMEOUT_MS`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = number("DATABASE_CONNECT_TIMEOUT_MS");
/// Default for `DATABASE_STARTUP_WAIT_MS`.
pub const DEFAULT_STARTUP_WAIT_MS: u64 = number("DATABASE_STARTUP_WAIT_MS");
/// Default for `DATABASE_IDLE_TIMEOUT_S`.
pub const DEFAULT_IDLE_TIMEOUT_S: u64 = number("DATABASE_IDLE_TIMEOUT_S");
/// Default for `DATABASE_MAX_LIFETIME_S`.
pub const DEFAULT_MAX_LIFETIME_S: u64 = number("DATABASE_MAX_LIFETIME_S");
/// Default for `DATABASE_VALIDATE_IDLE_MS`: like HikariCP's `aliveBypassWindow`, a connection
/// used in the last 30 s is trusted; the round trip is paid only after a quiet spell.
pub const DEFAULT_VALIDATE_IDLE_MS: u64 = number("DATABASE_VALIDATE_IDLE_MS");
/// Default for `DATABASE_STATEMENT_TIMEOUT_MS`.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = number("DATABASE_STATEMENT_TIMEOUT_MS");
/// Default for `DATABASE_LOCK_TIMEOUT_MS`.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = number("DATABASE_LOCK_TIMEOUT_MS");
/// Default for `DATABASE_MIGRATION_LOCK_TIMEOUT_MS`.
pub const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS: u64 = number("DATABASE_MIGRATION_LOCK_TIMEOUT_MS");
/// Default for `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS`.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 =
    number("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS");
/// Default for `DATABASE_RETRY_ATTEMPTS`.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = count("DATABASE_RETRY_ATTEMPTS");
/// Default for `DATABASE_RETRY_BASE_DELAY_MS`.
pub const DEFAULT_RETRY_BASE_DELAY_MS: u64 = number("DATABASE_RETRY_BASE_DELAY_MS");
/// Default for `DATABASE_TX_RETRY_ATTEMPTS`.
pub const DEFAULT_TX_RETRY_ATTEMPTS: u32 = count("DATABASE_TX_RETRY_ATTEMPTS");
/// Default for `DATABASE_APPLICATION_NAME`.
pub const DEFAULT_APPLICATION_NAME: &str = text("DATABASE_APPLICATION_NAME");
/// Default for `TASKSTORE_LOG`.
pub const DEFAULT_LOG_FILTER: &str = text("TASKSTORE_LOG");

/// The row named `name` (`SPECS` lookup usable in a constant).
const fn row(name: &str) -> &'static VariableSpec {
    let mut i = 0;
    while i < SPECS.len() {
        if same(SPECS[i].name.as_bytes(), name.as_bytes()) {
            return &SPECS[i];
        }
        i += 1;
    }
    panic!("a DEFAULT_ constant names a variable without a row in SPECS")
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The default text of `name`'s row.
const fn text(name: &str) -> &'static str {
    match row(name).default.value() {
        Some(v) => v,
        None => panic!("a DEFAULT_ constant names a variable without a default value"),
    }
}

/// The default of `name`'s row as a whole number.
const fn number(name: &str) -> u64 {
    let digits = text(name).as_bytes();
    assert!(!digits.is_empty(), "an empty numeric default");
    let mut n: u64 = 0;
    let mut i = 0;
    while i < digits.len() {
        assert!(
            digits[i].is_ascii_digit(),
            "a numeric default with a non-digit"
        );
        n = n * 10 + (digits[i] - b'0') as u64;
        i += 1;
    }
    n
}

/// Like [`number`], for `u32` values.
const fn count(name: &str) -> u32 {
    let n = number(name);
    assert!(n <= u32::MAX as u64, "a count default beyond u32");
    n as u32
}
