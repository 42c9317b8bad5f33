//! The fixed exit codes of SPEC §8.

use taskstore::Error;
use taskstore::migrate::MigrateError;

pub const INTERNAL: u8 = 1;
/// A usage error: clap's own exit code for one.
pub const USAGE: u8 = 2;
pub const CONFIG: u8 = 3;
/// Bad input, nothing written; also `migrate check`'s "findings" (the migrations are the input).
pub const VALIDATION: u8 = 4;
pub const NOT_FOUND: u8 = 5;
pub const CONFLICT: u8 = 6;
pub const UNAVAILABLE: u8 = 7;

/// Errors the CLI itself raises about user input (bad file rows, bad timestamps, files that
/// cannot be read or written): exit 4, or exit 6 when `conflict` (an imported id that exists).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    pub message: String,
    pub details: Vec<String>,
    /// A conflict with what is stored (exit 6) rather than bad input (exit 4).
    pub conflict: bool,
}

impl InputError {
    /// The exit code: [`CONFLICT`] or [`VALIDATION`].
    pub fn code(&self) -> u8 {
        if self.conflict { CONFLICT } else { VALIDATION }
    }

    /// The error's kind in `--json` output, as [`taskstore::Error::kind_name`] names it.
    pub fn kind_name(&self) -> &'static str {
        if self.conflict {
            "conflict"
        } else {
            "validation"
        }
    }
}

/// Maps an error to its exit code.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if let Some(input) = err.downcast_ref::<InputError>() {
        return input.code();
    }
    match err.downcast_ref::<Error>() {
        Some(Error::Validation { .. }) => VALIDATION,
        Some(Error::NotFound { .. }) => NOT_FOUND,
        Some(Error::Conflict { .. } | Error::StaleVersion { .. }) => CONFLICT,
        Some(
            Error::PoolTimeout { .. } | Error::Unavailable { .. } | Error::QueryTimeout { .. },
        ) => UNAVAILABLE,
        Some(Error::Config { .. }) => CONFIG,
        // A migration that waited for a lock until DATABASE_STARTUP_WAIT_MS ran out timed
        // out: nothing of it stayed applied, and running it again later is the remedy.
        Some(Error::Migration(
            MigrateError::LockTimeout { .. }
            | MigrateError::StepLockTimeout { .. }
            | MigrateError::SqliteBusy { .. },
        )) => UNAVAILABLE,
        _ => INTERNAL,
    }
}
