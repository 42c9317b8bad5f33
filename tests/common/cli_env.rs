//! The `taskstore` binary driven as a user would: a clean environment (only `PATH`, plus what
//! a test sets), its own working directory, and a database on either backend.
//!
//! [`taskstore_bin`] is the one place that knows where the binary is: when the CLI moves to a
//! workspace member, only that function changes.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use super::{Backend, PgTestDb};

/// The `taskstore` executable under test.
///
/// Cargo tells an integration test where its own package's binaries are. If the CLI moves to
/// another workspace member, that variable disappears (and with `option_env!` this still
/// compiles): the binary is then looked up beside the test executable, in `target/<profile>/`.
pub fn taskstore_bin() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_taskstore") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/taskstore
    let candidate = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|profile| profile.join("taskstore"))
        .expect("the test executable lives in target/<profile>/deps");
    assert!(
        candidate.exists(),
        "no taskstore binary at {}: build the CLI first (cargo build --bins --workspace)",
        candidate.display()
    );
    candidate
}

/// One environment for the binary: a working directory and, unless it is bare, a database
/// URL given as `DATABASE_URL`.
pub struct CliEnv {
    pub dir: tempfile::TempDir,
    pub url: Option<String>,
    pub backend: Option<Backend>,
    _pg: Option<PgTestDb>,
}

impl CliEnv {
    /// A fresh database on `backend` (a file in the working directory for SQLite, a database
    /// of its own on the shared server for PostgreSQL).
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("cli.db").display()),
                None,
            ),
            Backend::Postgres => {
                let pg = PgTestDb::create();
                (pg.url.clone(), Some(pg))
            }
        };
        Self {
            dir,
            url: Some(url),
            backend: Some(backend),
            _pg: pg,
        }
    }

    /// `DATABASE_URL` set to `url` (a throw-away cluster, an unusual URL form, ...).
    pub fn with_url(url: &str) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            url: Some(url.to_owned()),
            backend: None,
            _pg: None,
        }
    }

    /// No `DATABASE_URL` at all: the embedded default in an empty working directory.
    pub fn bare() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            url: None,
            backend: None,
            _pg: None,
        }
    }

    /// The command, ready to run: clean environment, working directory, `DATABASE_URL`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(taskstore_bin());
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        if let Some(url) = &self.url {
            c.env("DATABASE_URL", url);
        }
        c.args(args);
        c
    }

    /// Runs the command and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run taskstore")
    }

    /// Runs with `--json`, expects success, parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", stdout(&out)))
    }

    /// Runs with `--json`, expects exit `code`, returns the error object printed on stderr
    /// (its last line: the one JSON error object).
    #[track_caller]
    pub fn fails(&self, code: i32, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {}",
            stdout(&out),
            stderr(&out)
        );
        json_error(&out)
    }

    /// A path inside the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path inside the working directory, as a string argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Creates a user with `email` through the binary and returns its id.
    #[track_caller]
    pub fn add_user(&self, email: &str) -> String {
        let user = self.json(&[
            "user",
            "add",
            "--email",
            email,
            "--password-hash",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        ]);
        user["id"].as_str().expect("user id").to_owned()
    }
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything the binary printed, stdout then stderr.
pub fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The JSON error object on the last non-empty line of stderr.
#[track_caller]
pub fn json_error(out: &Output) -> Value {
    let text = stderr(out);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let err: Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("the last stderr line is not JSON: {text}"));
    assert!(err["error"]["message"].is_string(), "{err}");
    err
}

/// The `details` of an error object as strings (empty when there are none).
pub fn details(err: &Value) -> Vec<String> {
    err["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The message and every detail of an error object, as one text to search.
pub fn error_text(err: &Value) -> String {
    let mut text = err["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for d in details(err) {
        text.push('\n');
        text.push_str(&d);
    }
    text
}
