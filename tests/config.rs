//! Configuration: `.env` layering, `*_FILE` secrets, validation messages, the README's table
//! against the spec table, and the bounds of what is accepted.

mod common;

use std::time::Duration;

use common::{Backend, TestDb};
use diesel::RunQueryDsl;
use taskstore::config::{
    DEFAULT_DATABASE_URL, DEFAULT_POOL_MAX_SIZE, MAX_MILLIS, MAX_SECONDS, Parse, SPECS, Source,
    VARIABLES,
};
use taskstore::{BackendKind, Config, Error};

#[test]
fn dotenv_files_are_layered_by_environment_and_sources_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TASKSTORE_ENV=test\nDATABASE_POOL_MAX_SIZE=7\nDATABASE_LEAK_THRESHOLD_MS=1234\nUNRELATED=1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env.test"), "DATABASE_POOL_MAX_SIZE=8\n").unwrap();
    std::fs::write(
        dir.path().join(".env.production"),
        "DATABASE_POOL_MAX_SIZE=99\n",
    )
    .unwrap();
    let c = Config::from_env_in(dir.path()).unwrap();
    assert_eq!(c.pool().max_size, 8);
    assert_eq!(
        c.source_of("DATABASE_POOL_MAX_SIZE"),
        Source::DotEnv(".env.test".into())
    );
    assert_eq!(c.pool().leak_threshold, Some(Duration::from_millis(1234)));
    assert_eq!(
        c.source_of("DATABASE_LEAK_THRESHOLD_MS"),
        Source::DotEnv(".env".into())
    );
    assert_eq!(c.source_of("DATABASE_IDLE_TIMEOUT_S"), Source::Default);
}

#[test]
fn malformed_dotenv_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DATABASE_POOL_MAX_SIZE='unterminated\n",
    )
    .unwrap();
    let e = Config::from_env_in(dir.path()).unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains(".env"), "{e}");
}

#[test]
fn password_and_url_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    let url = dir.path().join("url");
    std::fs::write(&pw, "file-Pw-77x\n").unwrap();
    std::fs::write(&url, "postgres://app@db.internal:5432/tasks\n").unwrap();
    let c = Config::from_vars([
        ("DATABASE_URL_FILE", url.to_str().unwrap()),
        ("DATABASE_PASSWORD_FILE", pw.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(c.database_url().backend(), BackendKind::Postgres);
    assert_eq!(
        c.database_url().redacted(),
        "postgres://app:***@db.internal:5432/tasks"
    );
    let shown = format!("{c} {c:?}");
    assert!(!shown.contains("file-Pw-77x"), "{shown}");
}

#[test]
fn conflicting_or_missing_secret_files_are_clear_errors() {
    let e = Config::from_vars([
        ("DATABASE_PASSWORD", "a-secret-1"),
        ("DATABASE_PASSWORD_FILE", "/nonexistent"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("DATABASE_PASSWORD_FILE"), "{e}");
    let e = Config::from_vars([("DATABASE_PASSWORD_FILE", "/nonexistent/pw")]).unwrap_err();
    assert!(
        e.to_string().contains("DATABASE_PASSWORD_FILE") && e.to_string().contains("cannot read"),
        "{e}"
    );
}

/// A secret file that is missing, empty (caught while a rotation rewrites it) or has a second
/// line: the error names the variable and what to do, never the content.
#[test]
fn unusable_secret_files_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    let error_for = |content: Option<&str>| {
        match content {
            Some(text) => std::fs::write(&path, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        Config::from_vars([
            ("DATABASE_URL", "postgres://app@db.internal/tasks"),
            ("DATABASE_PASSWORD_FILE", path.to_str().unwrap()),
        ])
        .unwrap_err()
        .to_string()
    };
    for (content, advice) in [
        (None, "check the path"),
        (Some(""), "write the secret into it"),
        (Some("\n"), "write the secret into it"),
        (Some("pw-Line-1\nline-2\n"), "remove the other lines"),
    ] {
        let text = error_for(content);
        assert!(text.contains("DATABASE_PASSWORD_FILE"), "{text}");
        assert!(text.contains(advice), "{content:?}: {text}");
        assert!(
            !text.contains("pw-Line-1") && !text.contains("line-2"),
            "{text}"
        );
    }
}

#[test]
fn every_numeric_variable_names_itself_when_malformed() {
    for var in [
        "DATABASE_POOL_MAX_SIZE",
        "DATABASE_POOL_MIN_IDLE",
        "DATABASE_ACQUIRE_TIMEOUT_MS",
        "DATABASE_POOL_MAX_WAITERS",
        "DATABASE_CONNECT_TIMEOUT_MS",
        "DATABASE_STARTUP_WAIT_MS",
        "DATABASE_IDLE_TIMEOUT_S",
        "DATABASE_MAX_LIFETIME_S",
        "DATABASE_VALIDATE_IDLE_MS",
        "DATABASE_STATEMENT_TIMEOUT_MS",
        "DATABASE_LOCK_TIMEOUT_MS",
        "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        "DATABASE_RETRY_ATTEMPTS",
        "DATABASE_RETRY_BASE_DELAY_MS",
        "DATABASE_TX_RETRY_ATTEMPTS",
        "DATABASE_LEAK_THRESHOLD_MS",
        "DATABASE_MIGRATE_ON_STARTUP",
        "DATABASE_PREPARED_STATEMENTS",
        "DATABASE_REQUIRE_TLS",
        "TASKSTORE_ENV",
    ] {
        let e = Config::from_vars([(var, "-x-")]).unwrap_err();
        assert!(
            matches!(&e, Error::Config { variable, .. } if variable == var),
            "{var}: {e}"
        );
        assert!(e.to_string().contains("expected"), "{var}: {e}");
    }
}

#[test]
fn replica_and_migration_urls_must_match_the_backend() {
    let e = Config::from_vars([("DATABASE_REPLICA_URLS", "postgres://r@h/db")]).unwrap_err();
    assert!(e.to_string().contains("DATABASE_REPLICA_URLS"), "{e}");
    let e = Config::from_vars([
        ("DATABASE_URL", "postgres://a@h/db"),
        ("DATABASE_MIGRATION_URL", "sqlite://x.db"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("DATABASE_MIGRATION_URL"), "{e}");
    let c = Config::from_vars([
        ("DATABASE_URL", "postgres://a@h/db"),
        (
            "DATABASE_REPLICA_URLS",
            "postgres://r1@h1/db, postgres://r2@h2/db",
        ),
    ])
    .unwrap();
    assert_eq!(c.replica_urls().len(), 2);
}

/// The README's configuration table as (variable, default, meaning) rows, in order. Markdown
/// backticks are dropped from the default; a row may name several variables (`A`, `B`).
fn readme_rows() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md at the package root");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README.md has a '## Configuration' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        let [names, default, meaning] = cells[..] else {
            panic!("README configuration row without three cells: {line}");
        };
        for name in names.split(',') {
            rows.push((
                name.trim().trim_matches('`').to_owned(),
                default.replace('`', ""),
                meaning.to_owned(),
            ));
        }
    }
    rows
}

/// One source for each fact: every variable in `config::SPECS` has its README row with the same
/// default, a meaning that starts with the row's doc line, in the same order — and the README
/// documents no variable the code does not read.
#[test]
fn the_readme_table_matches_the_spec_table() {
    let readme = readme_rows();
    let mut problems = Vec::new();
    for spec in SPECS {
        let documented = spec.default.documented();
        match readme.iter().find(|(name, _, _)| name == spec.name) {
            None => problems.push(format!(
                "{} has no README row; add: | `{}` | {} | {} |",
                spec.name, spec.name, documented, spec.doc
            )),
            Some((_, default, meaning)) => {
                if *default != documented {
                    problems.push(format!(
                        "{}: the README says the default is {default:?}, the table {documented:?}",
                        spec.name
                    ));
                }
                if !meaning.starts_with(spec.doc) {
                    problems.push(format!(
                        "{}: the README's meaning {meaning:?} does not start with the table's {:?}",
                        spec.name, spec.doc
                    ));
                }
            }
        }
    }
    for (name, _, _) in &readme {
        if !VARIABLES.contains(&name.as_str()) {
            problems.push(format!(
                "the README documents {name}, which has no row in config::SPECS (src/config/variables.rs): add one there or remove the README row"
            ));
        }
    }
    let readme_order: Vec<&str> = readme.iter().map(|(name, _, _)| name.as_str()).collect();
    if problems.is_empty() && readme_order != VARIABLES {
        problems.push(format!(
            "the README lists the variables in another order than config::SPECS:\n  README: {readme_order:?}\n  SPECS:  {VARIABLES:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README check itself: a table missing a row, or with a wrong default, is caught (so the
/// test above cannot pass by reading nothing).
#[test]
fn the_readme_check_sees_rows_and_defaults() {
    let readme = readme_rows();
    assert_eq!(readme.len(), SPECS.len(), "{readme:?}");
    let url = readme.iter().find(|(n, _, _)| n == "DATABASE_URL").unwrap();
    assert_eq!(url.1, DEFAULT_DATABASE_URL);
    let size = readme
        .iter()
        .find(|(n, _, _)| n == "DATABASE_POOL_MAX_SIZE")
        .unwrap();
    assert_eq!(size.1, DEFAULT_POOL_MAX_SIZE.to_string());
}

/// The largest durations the configuration accepts are ones the pool and both servers can
/// work with: connecting and running a query neither panics (clock arithmetic) nor is refused
/// (PostgreSQL's `i32::MAX` ms limit on its timeouts, SQLite's `busy_timeout`).
#[test]
fn the_largest_accepted_durations_work_on_both_backends() {
    let max_ms = MAX_MILLIS.to_string();
    let max_s = MAX_SECONDS.to_string();
    let below_max_s = (MAX_SECONDS - 1).to_string();
    let mut vars: Vec<(&str, &str)> = SPECS
        .iter()
        .filter_map(|spec| match spec.parse {
            Parse::Millis { .. } => Some((spec.name, max_ms.as_str())),
            Parse::Seconds { .. } => Some((spec.name, max_s.as_str())),
            _ => None,
        })
        .collect();
    // The idle timeout must stay below the lifetime; the start-up wait and acquisition
    // deadline only bound waiting that does not happen here.
    for (name, value) in &mut vars {
        if *name == "DATABASE_IDLE_TIMEOUT_S" {
            *value = below_max_s.as_str();
        }
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend, &vars);
        let mut conn = db.conn().unwrap();
        diesel::sql_query("SELECT 1").execute(&mut *conn).unwrap();
        assert_eq!(
            db.config().session().statement_timeout,
            Duration::from_millis(MAX_MILLIS)
        );
    }
}

/// A SQLite location is not a secret: parsing `sqlite::memory:` must not make the scrubber
/// mask the crate's own guidance, which names that form (found in the issue 10 review).
#[test]
fn sqlite_locations_do_not_mask_the_guidance_text() {
    Config::from_vars([("DATABASE_URL", "sqlite::memory:")]).unwrap();
    let err = Config::from_vars([("DATABASE_URL", "mysql://u@h/db")]).unwrap_err();
    assert!(
        err.to_string().contains("sqlite::memory:"),
        "the guidance was masked: {err}"
    );
}
