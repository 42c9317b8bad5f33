//! The raw values as found (text plus where it came from), and reading one variable through
//! its row of the spec table: its parser, its bounds, its default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::spec::{self, MAX_MILLIS, MAX_SECONDS, Parse, VariableSpec};
use super::{Environment, TlsRequirement};
use crate::error::{Error, Result};
use crate::redact::{register_password, register_secret};

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Source {
    /// The built-in default.
    Default,
    /// A `.env` file (its name).
    DotEnv(String),
    /// A real environment variable.
    Environment,
    /// A command-line flag (e.g. `taskstore --database-url`).
    CommandLine,
    /// The embedding program's own default (the `taskstore` command's, say), in place of the
    /// library's.
    ProgramDefault,
    /// The file named by a `_FILE` variable (its name), which came from `source`.
    File {
        /// The `_FILE` variable.
        variable: String,
        /// Where that variable came from.
        source: Box<Source>,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::DotEnv(file) => write!(f, "{file} file"),
            Self::Environment => f.write_str("environment"),
            Self::CommandLine => f.write_str("command line"),
            Self::ProgramDefault => f.write_str("default (CLI)"),
            Self::File { variable, source } => write!(f, "file from {variable} ({source})"),
        }
    }
}

/// Variable name → (text, source), as layered by `dotenv` or given to `Config::from_vars`.
pub(super) type Raw = BTreeMap<String, (String, Source)>;

/// The values being read, and the source of each one read so far (for the report).
pub(super) struct Values {
    raw: Raw,
    sources: BTreeMap<&'static str, Source>,
    /// Names whose value came from a `.env` file where dotenvy expanded a `$NAME` in it.
    expanded: BTreeSet<String>,
}

impl Values {
    pub(super) fn new(raw: Raw) -> Self {
        Self {
            raw,
            sources: BTreeMap::new(),
            expanded: BTreeSet::new(),
        }
    }

    /// The same values, noting which had `$NAME` expansion applied in their `.env` file.
    pub(super) fn with_expanded(mut self, expanded: BTreeSet<String>) -> Self {
        self.expanded = expanded;
        self
    }

    /// Every name given, known or not.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.raw.keys().map(String::as_str)
    }

    /// True when `name` was given at all (even empty).
    pub(super) fn is_set(&self, name: &str) -> bool {
        self.raw.contains_key(name)
    }

    /// The text of `name` as given, recording its source (`Default` when unset).
    pub(super) fn given(&mut self, name: &'static str) -> Option<String> {
        let spec = spec::known(name);
        match self.raw.get(name) {
            Some((v, source)) => {
                self.sources.insert(spec.name, source.clone());
                Some(v.clone())
            }
            None => {
                self.sources.insert(spec.name, Source::Default);
                None
            }
        }
    }

    /// `name` parsed by its row; its default when unset (or empty, for numbers and switches).
    pub(super) fn read<T: FromVar>(&mut self, name: &'static str) -> Result<T> {
        let spec = spec::known(name);
        let given = self
            .given(name)
            .filter(|v| !(T::BLANK_IS_UNSET && v.trim().is_empty()));
        let text = given.unwrap_or_else(|| self.default_text(name));
        T::from_var(&text, spec).map_err(|message| Error::config(name, message))
    }

    /// The text of `name`'s default, parsed like a value that was set.
    pub(super) fn default_text(&self, name: &'static str) -> String {
        spec::known(name)
            .default
            .value()
            .unwrap_or_else(|| panic!("{name} is read as a value but has no default"))
            .to_owned()
    }

    /// The sources of every variable read, for the report.
    pub(super) fn into_sources(self) -> BTreeMap<&'static str, Source> {
        self.sources
    }

    /// A secret that may come from `name` or from the file its `_FILE` variable names, with the
    /// variable it came from (for errors) and the file's path. A value read from a file is
    /// registered with the scrubber at once: a URL as a whole secret, anything else as a
    /// password (a URL registered as a password would mask every quoted word sharing four
    /// characters with it, such as the host and user in libpq's messages).
    pub(super) fn secret_or_file(&mut self, name: &'static str) -> Result<Option<Secret>> {
        let file_spec = spec::file_variable_for(name).unwrap_or_else(|| {
            panic!("{name} has no _FILE row in config::SPECS (src/config/variables.rs)")
        });
        let direct = self.given(name);
        let file = self.given(file_spec.name);
        match (direct, file) {
            (Some(_), Some(_)) => Err(Error::config(
                file_spec.name,
                format!("is set together with {name}; set only one of them"),
            )),
            (Some(value), None) => Ok(Some(Secret {
                value,
                variable: name,
                file: None,
            })),
            (None, Some(path)) => {
                let from = self
                    .sources
                    .get(file_spec.name)
                    .cloned()
                    .unwrap_or(Source::Default);
                self.sources.insert(
                    spec::known(name).name,
                    Source::File {
                        variable: file_spec.name.to_owned(),
                        source: Box::new(from),
                    },
                );
                let is_url = matches!(spec::known(name).parse, Parse::Url);
                let path = path.trim();
                read_secret_file(file_spec.name, path, is_url).map(|value| {
                    Some(Secret {
                        value,
                        variable: file_spec.name,
                        // Absolute, so that a re-read after rotation finds the same file
                        // whatever the working directory is by then; symbolic links are not
                        // resolved (a rotation that swaps one must be seen).
                        file: Some(
                            std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path)),
                        ),
                    })
                })
            }
            (None, None) => Ok(None),
        }
    }

    /// The `.env` file `name`'s value came from, when dotenvy expanded a `$NAME` in it there.
    pub(super) fn expanded_in(&self, name: &str) -> Option<&str> {
        match self.raw.get(name) {
            Some((_, Source::DotEnv(file))) if self.expanded.contains(name) => Some(file),
            _ => None,
        }
    }

    /// True when `name`'s value was given on the command line.
    pub(super) fn on_command_line(&self, name: &str) -> bool {
        matches!(self.raw.get(name), Some((_, Source::CommandLine)))
    }
}

/// A secret value with the variable it came from and, for a `_FILE` variable, the file.
pub(super) struct Secret {
    pub value: String,
    pub variable: &'static str,
    pub file: Option<PathBuf>,
}

/// Reads a secret file strictly — one value and at most one trailing `\n` or `\r\n` — and
/// registers its content with the scrubber before anything can print it. A second line (even an
/// empty one) is refused rather than glued onto the value: a stray line is a common accident,
/// and may itself be a secret, so the error shows nothing of the content.
pub(super) fn read_secret_file(variable: &'static str, path: &str, is_url: bool) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(
            variable,
            format!(
                "cannot read the file {path:?}: {e}; check the path (a relative one is resolved \
                 against the working directory) and that this process may read the file"
            ),
        )
    })?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .to_owned();
    // Registered before the checks below can fail.
    register_secret(&text);
    if value.contains(['\n', '\r']) {
        return Err(Error::config(
            variable,
            format!(
                "the file {path:?} has more than one line; a secret file holds one value and at most one trailing newline: remove the other lines"
            ),
        ));
    }
    if is_url {
        register_secret(value.trim());
    } else {
        register_password(&value);
    }
    if value.is_empty() {
        return Err(Error::config(
            variable,
            format!(
                "the file {path:?} is empty; write the secret into it, on one line (if it is \
                 being rewritten, run again once it is)"
            ),
        ));
    }
    Ok(value)
}

/// A type a variable's text can be read as, following the variable's [`Parse`].
pub(super) trait FromVar: Sized {
    /// Numbers and switches treat an empty value as unset; text keeps it.
    const BLANK_IS_UNSET: bool = true;

    /// The value, or what was expected (never echoing a secret).
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String>;
}

/// A row read as a type its parser does not produce: a mistake in this crate.
fn mismatch(spec: &VariableSpec, as_type: &str) -> ! {
    panic!(
        "config: {} is parsed as {:?} but read as {as_type}",
        spec.name, spec.parse
    )
}

impl FromVar for u32 {
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        let Parse::Count { expected, min, max } = spec.parse else {
            mismatch(spec, "u32")
        };
        let n: u32 = text
            .trim()
            .parse()
            .map_err(|_| format!("expected {expected}, got {text:?}"))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("expected {expected}, got {n}"))
        }
    }
}

impl FromVar for Duration {
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        let (unit, max, nonzero, make): (_, _, _, fn(u64) -> Duration) = match spec.parse {
            Parse::Millis { nonzero } => {
                ("milliseconds", MAX_MILLIS, nonzero, Duration::from_millis)
            }
            Parse::Seconds { nonzero } => ("seconds", MAX_SECONDS, nonzero, Duration::from_secs),
            _ => mismatch(spec, "Duration"),
        };
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number of {unit}, got {text:?}"))?;
        if nonzero && n == 0 {
            return Err("must be greater than 0".into());
        }
        if n > max {
            return Err(format!("expected at most {max} {unit}, got {n}"));
        }
        Ok(make(n))
    }
}

impl FromVar for bool {
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        if !matches!(spec.parse, Parse::Flag) {
            mismatch(spec, "bool");
        }
        switch(text).ok_or_else(|| format!("expected true or false, got {:?}", text.trim()))
    }
}

/// The spellings of a switch accepted everywhere.
pub(super) fn switch(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl FromVar for TlsRequirement {
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        if !matches!(spec.parse, Parse::Tls) {
            mismatch(spec, "TlsRequirement");
        }
        Self::parse(text)
            .ok_or_else(|| format!("expected auto, true or false, got {:?}", text.trim()))
    }
}

impl FromVar for Environment {
    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        if !matches!(spec.parse, Parse::Environment) {
            mismatch(spec, "Environment");
        }
        Self::parse(text)
    }
}

impl FromVar for String {
    const BLANK_IS_UNSET: bool = false;

    fn from_var(text: &str, spec: &VariableSpec) -> std::result::Result<Self, String> {
        let Parse::Text { check } = spec.parse else {
            mismatch(spec, "String")
        };
        match check.map(|check| check(text)) {
            Some(Err(expected)) => Err(expected.to_owned()),
            _ => Ok(text.to_owned()),
        }
    }
}
