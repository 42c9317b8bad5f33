//! [`UrlOrigin`]: which configuration variables a connection's URL and password came from, so
//! that the advice of a connection error names the ones actually used (a bad password in
//! `DATABASE_MIGRATION_URL` says to check `DATABASE_MIGRATION_URL`, not `DATABASE_URL`).

use super::ConnectFailure;

/// Where a connection's URL and password came from: the variables a connection error's advice
/// names. Built by the configuration; carried by every [`crate::DatabaseUrl`] and by the
/// [`Error::Unavailable`](super::Error::Unavailable) errors of connections to it. Holds names
/// only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlOrigin {
    /// The variable the URL came from: `DATABASE_URL`, `DATABASE_URL_FILE`,
    /// `DATABASE_MIGRATION_URL` or `DATABASE_REPLICA_URLS`.
    url: String,
    /// The URL was given on the command line rather than in `url`'s variable.
    url_on_command_line: bool,
    /// The variable the password came from when not from the URL: `DATABASE_PASSWORD` or
    /// `DATABASE_PASSWORD_FILE`.
    password: Option<String>,
    /// Variables among the two above whose value came from a `.env` file where dotenvy expanded
    /// a `$NAME` in it, with that file's name.
    expanded: Vec<(String, String)>,
    /// The password (from `password`'s variable) begins or ends with whitespace: a space
    /// written into a secret file by accident is part of the password libpq sends.
    padded_password: bool,
}

impl Default for UrlOrigin {
    /// `DATABASE_URL`, with the password (if any) in it.
    fn default() -> Self {
        Self::url("DATABASE_URL")
    }
}

impl UrlOrigin {
    /// A URL read from `variable`, carrying its own password.
    pub fn url(variable: impl Into<String>) -> Self {
        Self {
            url: variable.into(),
            url_on_command_line: false,
            password: None,
            expanded: Vec::new(),
            padded_password: false,
        }
    }

    /// The same origin with the URL given on the command line (in place of its variable).
    #[must_use]
    pub(crate) fn on_command_line(mut self) -> Self {
        self.url_on_command_line = true;
        self
    }

    /// The same origin with the password taken from `variable`.
    #[must_use]
    pub(crate) fn with_password(mut self, variable: impl Into<String>) -> Self {
        self.password = Some(variable.into());
        self
    }

    /// The same origin, noting that `variable` (the URL's or the password's) came from the
    /// `.env` file `file`, where `$NAME` in its value was expanded.
    #[must_use]
    pub(crate) fn with_expanded(mut self, variable: &str, file: &str) -> Self {
        self.expanded.push((variable.to_owned(), file.to_owned()));
        self
    }

    /// The same origin, noting that the password begins or ends with whitespace.
    #[must_use]
    pub(crate) fn with_padded_password(mut self) -> Self {
        self.padded_password = true;
        self
    }

    /// The variable the URL came from.
    pub fn url_variable(&self) -> &str {
        &self.url
    }

    /// The variable the password came from, when it was not in the URL.
    pub fn password_variable(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The variables (and `.env` files) whose value had `$NAME` expansion applied.
    pub fn expanded(&self) -> impl Iterator<Item = (&str, &str)> {
        self.expanded.iter().map(|(v, f)| (v.as_str(), f.as_str()))
    }

    /// "DATABASE_MIGRATION_URL", "the URL in the file named by DATABASE_URL_FILE", ...
    fn url_place(&self) -> String {
        if self.url_on_command_line {
            format!(
                "the URL given on the command line (in place of {})",
                self.url
            )
        } else if self.url.ends_with("_FILE") {
            format!("the URL in the file named by {}", self.url)
        } else {
            self.url.clone()
        }
    }

    /// "DATABASE_PASSWORD", "the file named by DATABASE_PASSWORD_FILE".
    fn password_place(&self) -> Option<String> {
        self.password.as_ref().map(|p| {
            if p.ends_with("_FILE") {
                format!("the file named by {p}")
            } else {
                p.clone()
            }
        })
    }

    /// What to do about a connection failure of `kind`, naming the variables used.
    pub(crate) fn advice(&self, kind: ConnectFailure) -> String {
        use ConnectFailure as C;
        let url = self.url_place();
        let mut advice = match kind {
            C::Refused | C::Starting | C::Unreachable | C::Timeout => format!(
                "check that the database server is running and reachable at the host and port in {url}"
            ),
            C::TooManyConnections => "the server is out of connection slots: lower \
                 DATABASE_POOL_MAX_SIZE across instances or raise max_connections on the server"
                .to_owned(),
            C::Authentication => match self.password_place() {
                Some(password) => format!(
                    "check the user in {url} and the password in {password}, and the server's \
                     pg_hba.conf"
                ),
                None => {
                    format!("check the user and password in {url} and the server's pg_hba.conf")
                }
            },
            C::UnknownDatabase => format!("create the database or fix its name in {url}"),
            C::UnknownHost => format!("fix the host name in {url}"),
            C::InvalidUrl => {
                format!("fix {url} (postgres://user@host:port/db or sqlite://path)")
            }
            C::Tls => format!(
                "check that the server has TLS enabled, that sslrootcert names the CA that \
                 signed its certificate and that the host in {url} is one the certificate \
                 names (sslmode=verify-full); or relax sslmode / DATABASE_REQUIRE_TLS"
            ),
            C::File => "check that the SQLite file's directory exists and is writable".to_owned(),
            C::Other => "see the message above".to_owned(),
        };
        // Only where the value's content matters: a wrong password or a wrong part of the URL.
        let relevant = |v: &str| match kind {
            C::Authentication => true,
            C::UnknownDatabase | C::UnknownHost | C::InvalidUrl => v == self.url,
            _ => false,
        };
        for (variable, file) in self.expanded.iter().filter(|(v, _)| relevant(v)) {
            advice.push_str(&format!(
                "; note: {variable} comes from {file}, where dotenvy expanded a $NAME in its \
                 value (unquoted and double-quoted values replace $NAME and ${{NAME}} with that \
                 variable, or with nothing when it is unset): if the value itself contains a $, \
                 write the value in {file} in single quotes ('...', taken literally) or \
                 escape each $ as \\$"
            ));
        }
        if kind == C::Authentication
            && self.padded_password
            && let Some(password) = self.password_place()
        {
            advice.push_str(&format!(
                "; note: the password in {password} begins or ends with whitespace (a space, \
                 tab or carriage return), which is sent as part of the password: remove it if \
                 it is not meant to be there (a secret file may end with one newline only)"
            ));
        }
        advice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_variables_used() {
        let migration = UrlOrigin::url("DATABASE_MIGRATION_URL");
        let a = migration.advice(ConnectFailure::Authentication);
        assert!(a.contains("DATABASE_MIGRATION_URL"), "{a}");
        assert!(!a.contains("DATABASE_URL "), "{a}");
        let file = UrlOrigin::url("DATABASE_URL").with_password("DATABASE_PASSWORD_FILE");
        let a = file.advice(ConnectFailure::Authentication);
        assert!(
            a.contains("the password in the file named by DATABASE_PASSWORD_FILE"),
            "{a}"
        );
        let a = UrlOrigin::url("DATABASE_URL_FILE").advice(ConnectFailure::UnknownDatabase);
        assert!(a.contains("the file named by DATABASE_URL_FILE"), "{a}");
        let expanded = UrlOrigin::url("DATABASE_URL")
            .with_password("DATABASE_PASSWORD")
            .with_expanded("DATABASE_PASSWORD", ".env");
        let a = expanded.advice(ConnectFailure::Authentication);
        assert!(
            a.contains("DATABASE_PASSWORD comes from .env") && a.contains("single quotes"),
            "{a}"
        );
        // The advice reaches the user through the scrubber, and must survive it whole (it
        // read "DATABASE_PASSWORD=***'...'" when it spelt out VAR='...').
        assert_eq!(crate::redact::scrub(&a), a);
        let padded = UrlOrigin::url("DATABASE_URL")
            .with_password("DATABASE_PASSWORD_FILE")
            .with_padded_password();
        let a = padded.advice(ConnectFailure::Authentication);
        assert!(
            a.contains("the password in the file named by DATABASE_PASSWORD_FILE begins or ends with whitespace"),
            "{a}"
        );
        assert!(
            !padded
                .advice(ConnectFailure::Refused)
                .contains("whitespace")
        );
        // A password's expansion says nothing about an unknown database.
        let a = expanded.advice(ConnectFailure::UnknownDatabase);
        assert!(!a.contains("dotenvy"), "{a}");
    }
}
