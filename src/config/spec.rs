//! What a row of the variable table says — [`VariableSpec`]: name, [`DefaultValue`],
//! [`Parse`] (how the text becomes a value, within which bounds), whether it is secret, a doc
//! line — and lookups by name. The table itself is `variables.rs`.
//!
//! [`find`] answers "does taskstore read this variable?"; a "did you mean" for misspelt names
//! would look next to it.

use super::Config;
use super::variables::SPECS;

/// One configuration variable. Rows live in [`SPECS`](super::SPECS); they cannot be built
/// outside the crate.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct VariableSpec {
    /// The environment variable's name.
    pub name: &'static str,
    /// What an unset (or, for numbers and switches, empty) variable means, as documented.
    pub default: DefaultValue,
    /// How the text is turned into a value, and the bounds it must respect.
    pub parse: Parse,
    /// True when the value (or the file it names) holds a secret: the report and every error
    /// show it only redacted.
    pub secret: bool,
    /// One line saying what it does; the README's "meaning" cell starts with it.
    pub doc: &'static str,
    /// The value the report prints, read from the built configuration (so that the report
    /// shows what the program uses). Secret rows must return a redacted form.
    pub(crate) show: fn(&Config) -> String,
}

/// A variable's default, as the README documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefaultValue {
    /// No default: unset means "not configured" (documented as `—`).
    None,
    /// This text, parsed exactly like a value that was set.
    Value(&'static str),
    /// Like `Value`, with a note the documentation shows in parentheses after it.
    Noted(&'static str, &'static str),
    /// Unset means "the same as this other variable".
    SameAs(&'static str),
}

impl DefaultValue {
    /// The text parsed when the variable is unset, if there is one.
    pub const fn value(self) -> Option<&'static str> {
        match self {
            Self::Value(v) | Self::Noted(v, _) => Some(v),
            Self::None | Self::SameAs(_) => None,
        }
    }

    /// The default as the README's table shows it (without Markdown backticks).
    pub fn documented(self) -> String {
        match self {
            Self::None => "—".to_owned(),
            Self::Value(v) | Self::SameAs(v) => v.to_owned(),
            Self::Noted(v, note) => format!("{v} ({note})"),
        }
    }
}

/// How a variable's text becomes a value. Rules that involve two variables (minimum idle at
/// most the pool size, idle timeout below the lifetime, matching backends, TLS) are checked
/// afterwards, when the configuration is assembled.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Parse {
    /// A database URL: `postgres://…`, `postgresql://…`, `sqlite://path` or `sqlite::memory:`.
    Url,
    /// Comma-separated PostgreSQL URLs.
    UrlList,
    /// The path of a file that holds the named variable's value (container secrets); setting
    /// both is an error.
    FileOf(&'static str),
    /// Text, checked by `check` when there is one (which returns what is expected).
    Text {
        /// Refuses text the database would reject later, saying what is expected.
        check: Option<TextCheck>,
    },
    /// A whole number from `min` to `max`; errors say "expected {expected}".
    Count {
        /// What the number is, for errors: "a pool size from 1 to 1000".
        expected: &'static str,
        /// The smallest value accepted.
        min: u32,
        /// The largest value accepted.
        max: u32,
    },
    /// Whole milliseconds, at most [`MAX_MILLIS`].
    Millis {
        /// Refuse 0 (the pool cannot work with it).
        nonzero: bool,
    },
    /// Whole seconds, at most [`MAX_SECONDS`].
    Seconds {
        /// Refuse 0 (the pool cannot work with it).
        nonzero: bool,
    },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Flag,
    /// `auto`, `true` or `false` (also the other switch spellings): [`super::TlsRequirement`].
    Tls,
    /// `development`, `test` or `production` (also `dev`, `prod`): [`super::Environment`].
    Environment,
}

/// Accepts a text, or says what is expected instead (without echoing it: it may be secret).
pub type TextCheck = fn(&str) -> Result<(), &'static str>;

/// The largest millisecond value accepted (`i32::MAX`, about 24.8 days): PostgreSQL's limit
/// for its timeouts and SQLite's for `busy_timeout`. Above it the server refuses the session.
pub const MAX_MILLIS: u64 = i32::MAX as u64;

/// The largest second value accepted (`i32::MAX`, about 68 years): far beyond any useful
/// lifetime, and small enough that adding it to a clock reading cannot overflow.
pub const MAX_SECONDS: u64 = i32::MAX as u64;

/// The row for `name`, if taskstore reads such a variable. (A "did you mean" for misspelt
/// names would look here.)
pub(super) fn find(name: &str) -> Option<&'static VariableSpec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The row for a name the crate itself uses. A name missing from the table is a mistake in
/// this crate that every test building a configuration trips over, not a user error.
pub(super) fn known(name: &str) -> &'static VariableSpec {
    find(name)
        .unwrap_or_else(|| panic!("{name} has no row in config::SPECS (src/config/variables.rs)"))
}

/// The variable holding the path of a file that may hold `name`'s value (`NAME_FILE`).
pub(super) fn file_variable_for(name: &str) -> Option<&'static VariableSpec> {
    SPECS
        .iter()
        .find(|s| matches!(s.parse, Parse::FileOf(of) if of == name))
}
