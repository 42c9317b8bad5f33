//! `migrate check [DIR]`: lints migrations (see `crate::lint`) without touching a database.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use taskstore::BackendKind;

use super::Ctx;
use crate::exit;
use crate::lint::{self, MigrationText};

pub fn run(ctx: &Ctx, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let migrations = match dir {
        Some(dir) => read_dir(dir)?,
        None => taskstore::migrate::embedded_up_sql(BackendKind::Postgres)?
            .into_iter()
            .map(|m| MigrationText {
                file: format!("migrations/postgres/{}/up.sql (embedded)", m.name),
                sql: m.up_sql.to_owned(),
                run_in_transaction: m.run_in_transaction,
            })
            .collect(),
    };
    let report = lint::check(&migrations);
    if ctx.out.json {
        ctx.out.json_value(&json!({
            "migrations": report.migrations,
            "statements": report.statements,
            "findings": report.findings,
            "acknowledged": report.acknowledged,
        }))?;
    } else {
        for f in &report.findings {
            println!(
                "{}:{}: {} — {}\n    statement: {}\n    safe: {}",
                f.file, f.line, f.rule, f.why, f.statement, f.safe
            );
        }
        for a in &report.acknowledged {
            println!(
                "{}:{}: {} acknowledged: {}",
                a.file, a.line, a.rule, a.reason
            );
        }
        println!(
            "{} migration(s), {} statement(s): {} finding(s), {} acknowledged",
            report.migrations,
            report.statements,
            report.findings.len(),
            report.acknowledged.len()
        );
    }
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::VALIDATION)
    })
}

/// What `migrate check` expects as DIR, for its error messages.
const WHAT_DIR_IS: &str = "DIR must be a Diesel migration directory (one sub-directory per \
    migration, each with an up.sql), such as migrations/postgres; without DIR the migrations \
    embedded in this binary are checked";

/// Why `dir` holds no migration, and what to pass instead.
fn no_migrations(dir: &Path) -> String {
    let shown = dir.display();
    if dir.join("up.sql").is_file() {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return format!(
            "{shown} is one migration, not a migration directory: pass its parent, {}, to \
             check it with the migrations before it (a rule such as set-not-null reads earlier \
             migrations)",
            parent.display()
        );
    }
    let mut nested: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_dir(e.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .any(|m| m.path().join("up.sql").is_file())
        })
        .map(|e| e.path().display().to_string())
        .collect();
    nested.sort();
    if nested.is_empty() {
        format!("no migration in {shown} (no sub-directory with an up.sql); {WHAT_DIR_IS}")
    } else {
        format!(
            "{shown} holds migration directories ({}), not migrations: pass the PostgreSQL one \
             (the check reads PostgreSQL's SQL)",
            nested.join(", ")
        )
    }
}

/// The migrations of a Diesel migration directory, oldest first: each sub-directory with an
/// `up.sql`, and `run_in_transaction` from its `metadata.toml` (default true).
fn read_dir(dir: &Path) -> anyhow::Result<Vec<MigrationText>> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        run_in_transaction: Option<bool>,
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read migration directory {}: {e}; {WHAT_DIR_IS}",
            dir.display()
        )
    })?;
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("up.sql").is_file())
        .map(|e| e.file_name())
        .collect();
    if names.is_empty() {
        // Checking nothing and reporting "0 findings" would pass a mistyped DIR.
        anyhow::bail!("{}", no_migrations(dir));
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let up = path.join("up.sql");
            let sql = std::fs::read_to_string(&up)
                .with_context(|| format!("reading {}", up.display()))?;
            let meta = path.join("metadata.toml");
            let run_in_transaction = if meta.is_file() {
                let text = std::fs::read_to_string(&meta)
                    .with_context(|| format!("reading {}", meta.display()))?;
                toml::from_str::<Metadata>(&text)
                    .with_context(|| format!("parsing {}", meta.display()))?
                    .run_in_transaction
                    .unwrap_or(true)
            } else {
                true
            };
            Ok(MigrationText {
                file: up.display().to_string(),
                sql,
                run_in_transaction,
            })
        })
        .collect()
}
