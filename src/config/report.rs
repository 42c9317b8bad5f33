//! The effective-configuration report (`taskstore config`, `Config`'s `Display`): one row per
//! variable of the spec table, showing the value the program uses and where it came from.
//! Secret rows redact in their `show` (a URL keeps its shape, a password becomes `***`);
//! `build`'s tests check every secret row.

use std::fmt;
use std::time::Duration;

use super::Config;
use super::values::Source;
use super::variables::SPECS;
use crate::redact::MASK;

/// (variable, value, source) for every row of the spec table, in its order.
pub(super) fn rows(config: &Config) -> Vec<(&'static str, String, Source)> {
    SPECS
        .iter()
        .map(|spec| (spec.name, (spec.show)(config), config.source_of(spec.name)))
        .collect()
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v, source) in rows(self) {
            writeln!(f, "{k}={v} ({source})")?;
        }
        Ok(())
    }
}

/// A duration in whole milliseconds.
pub(super) fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A duration in whole seconds.
pub(super) fn seconds(d: Duration) -> String {
    d.as_secs().to_string()
}

/// `when_set` if `variable` was given, else `(unset)`: for values not worth printing.
pub(super) fn set_or_unset(config: &Config, variable: &str, when_set: &str) -> String {
    if config.source_of(variable) == Source::Default {
        "(unset)".into()
    } else {
        when_set.into()
    }
}

/// The mask if `variable` was given, else `(unset)`: for secrets with no redacted form.
pub(super) fn mask_if_set(config: &Config, variable: &str) -> String {
    set_or_unset(config, variable, MASK)
}
