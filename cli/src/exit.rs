//! The fixed exit codes of SPEC §8.

use taskstore::Error;

pub const INTERNAL: u8 = 1;
/// A usage error: clap's own exit code for one.
pub const USAGE: u8 = 2;
pub const CONFIG: u8 = 3;
pub const VALIDATION: u8 = 4;
pub const NOT_FOUND: u8 = 5;
pub const CONFLICT: u8 = 6;
pub const UNAVAILABLE: u8 = 7;

/// Errors the CLI itself raises about user input (bad file rows, bad timestamps).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    pub message: String,
    pub details: Vec<String>,
}

/// Maps an error to its exit code.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<InputError>().is_some() {
        return VALIDATION;
    }
    match err.downcast_ref::<Error>() {
        Some(Error::Validation { .. }) => VALIDATION,
        Some(Error::NotFound { .. }) => NOT_FOUND,
        Some(Error::Conflict { .. } | Error::StaleVersion { .. }) => CONFLICT,
        Some(
            Error::PoolTimeout { .. } | Error::Unavailable { .. } | Error::QueryTimeout { .. },
        ) => UNAVAILABLE,
        Some(Error::Config { .. }) => CONFIG,
        _ => INTERNAL,
    }
}
