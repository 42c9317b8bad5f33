//! Secrets rotated in place: a URL whose password or whole string comes from a file
//! (`DATABASE_PASSWORD_FILE`, `DATABASE_URL_FILE`) can be built again from the files as they
//! are now, so that new connections use a rotated secret without a restart
//! (see `conn::Connector`, which re-reads when a file changes and once after an authentication
//! failure).
//!
//! A rebuilt URL goes through every check the first one did (strict file reading, libpq's
//! grammar, the production TLS rule), and its secrets are registered with the scrubber before
//! it exists. The parts that did not come from a file are kept as [`SecretString`]s; exposing
//! them here, to parse them again, is the one other place besides `DatabaseUrl::expose`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use super::values::read_secret_file;
use super::{DatabaseUrl, Environment, TlsRequirement, tls};
use crate::error::{Result, UrlOrigin};

/// One part of a connection string: given once, or read from a file each time.
pub(super) enum Part {
    Fixed(SecretString),
    File(PathBuf),
}

/// How to build a [`DatabaseUrl`] again from the files its secrets came from.
pub(crate) struct Reload {
    /// The variable the URL came from (`DATABASE_URL_FILE`, `DATABASE_URL`, ...), for errors.
    url_variable: &'static str,
    url: Part,
    /// The password variable (`DATABASE_PASSWORD_FILE`, `DATABASE_PASSWORD`) and its value.
    password: Option<(&'static str, Part)>,
    origin: UrlOrigin,
    require_tls: TlsRequirement,
    environment: Environment,
}

/// What a file looked like: modification time, length and inode (a rename onto it, as
/// Kubernetes' secret volumes and most secret agents do, changes the inode).
pub(crate) type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload")
            .field("url_variable", &self.url_variable)
            .field("password_variable", &self.password.as_ref().map(|(v, _)| v))
            .finish_non_exhaustive()
    }
}

impl Reload {
    /// `None` unless a part comes from a file: nothing else can change while the process runs.
    pub(super) fn new(
        url_variable: &'static str,
        url: Part,
        password: Option<(&'static str, Part)>,
        origin: UrlOrigin,
        (require_tls, environment): (TlsRequirement, Environment),
    ) -> Option<Arc<Self>> {
        let from_file =
            matches!(url, Part::File(_)) || matches!(password, Some((_, Part::File(_))));
        from_file.then(|| {
            Arc::new(Self {
                url_variable,
                url,
                password,
                origin,
                require_tls,
                environment,
            })
        })
    }

    /// The `_FILE` variables this URL is read from, for log lines.
    pub(crate) fn file_variables(&self) -> String {
        let mut names = Vec::new();
        if matches!(self.url, Part::File(_)) {
            names.push(self.url_variable);
        }
        if let Some((v, Part::File(_))) = &self.password {
            names.push(v);
        }
        names.join(" and ")
    }

    fn files(&self) -> impl Iterator<Item = &Path> {
        let url = match &self.url {
            Part::File(p) => Some(p.as_path()),
            Part::Fixed(_) => None,
        };
        let password = match &self.password {
            Some((_, Part::File(p))) => Some(p.as_path()),
            _ => None,
        };
        url.into_iter().chain(password)
    }

    /// What the files look like now (a file that cannot be read stamps as `None`).
    pub(crate) fn stamp(&self) -> Stamp {
        self.files()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                Some((m.modified().ok()?, m.len(), m.ino()))
            })
            .collect()
    }

    /// The URL built from the files as they are now.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the `_FILE` variable (or the URL's variable) when a file
    /// cannot be read, is empty or has a second line, or when the URL it yields is refused; the
    /// message shows no content.
    pub(crate) fn rebuild(self: &Arc<Self>) -> Result<DatabaseUrl> {
        let url = match &self.url {
            Part::Fixed(s) => s.expose_secret().to_owned(),
            Part::File(p) => read_secret_file(self.url_variable, &p.to_string_lossy(), true)?,
        };
        let password = match &self.password {
            None => None,
            Some((_, Part::Fixed(s))) => Some(s.expose_secret().to_owned()),
            Some((v, Part::File(p))) => Some(read_secret_file(v, &p.to_string_lossy(), false)?),
        };
        let url = DatabaseUrl::parse(self.url_variable, &url, password.as_deref())?
            .with_origin(self.origin.clone())
            .with_reload(Arc::clone(self));
        tls::check(
            self.require_tls,
            self.environment,
            [(self.url_variable, &url)],
        )?;
        Ok(url)
    }
}
