//! One module per subcommand family; `dispatch` wires them to the grammar in `cli`.

mod check;
mod demo;
pub mod io;
mod ops;
mod task;
mod user;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use taskstore::models::{User, UserId};
use taskstore::{Config, Database, Error};

use crate::cli::{Cli, Command, MigrateAction};
use crate::output::Out;

/// Start-up wait used by the CLI when `DATABASE_STARTUP_WAIT_MS` is not set: a person at a
/// terminal should hear about a down database in seconds, not after the library's 30 s.
const CLI_STARTUP_WAIT_MS: &str = "5000";

/// What every command needs: output settings and how to reach the database.
pub struct Ctx {
    pub out: Out,
    database_url: Option<String>,
}

impl Ctx {
    /// The effective configuration: environment and `.env` files, then command-line flags,
    /// then the CLI's own defaults for what the user left unset (start-up wait, one-shot pool).
    pub fn config(&self, extra: &[(&'static str, &str)]) -> anyhow::Result<Config> {
        let mut overrides: Vec<(&str, String)> = Vec::new();
        if let Some(url) = &self.database_url {
            overrides.push(("DATABASE_URL", url.clone()));
        }
        for (k, v) in extra {
            overrides.push((k, (*v).to_owned()));
        }
        // The CLI's own defaults, reported as such by `taskstore config`; then a one-shot pool
        // (one connection, no idle minimum) unless the user sized the pool.
        let defaults = [
            ("DATABASE_STARTUP_WAIT_MS", CLI_STARTUP_WAIT_MS.to_owned()),
            ("TASKSTORE_LOG", crate::CLI_LOG_FILTER.to_owned()),
        ];
        let config = Config::from_env_with_defaults(Path::new("."), &overrides, &defaults)?;
        Ok(config.with_one_shot_pool())
    }

    /// The configuration of a long-running server (`serve`): environment, `.env` and
    /// `--database-url`, with the library's pool defaults (not the one-shot pool) and `info`
    /// logs.
    pub fn server_config(&self) -> anyhow::Result<Config> {
        let mut overrides: Vec<(&str, String)> = Vec::new();
        if let Some(url) = &self.database_url {
            overrides.push(("DATABASE_URL", url.clone()));
        }
        let defaults = [("TASKSTORE_LOG", crate::SERVE_LOG_FILTER.to_owned())];
        Ok(Config::from_env_with_defaults(
            Path::new("."),
            &overrides,
            &defaults,
        )?)
    }

    /// Connects (applying pending migrations unless configured otherwise).
    pub fn connect(&self) -> anyhow::Result<Database> {
        Ok(Database::connect(&self.config(&[])?)?)
    }
}

/// A user named by id or by email.
pub fn resolve_user(db: &Database, name: &str) -> anyhow::Result<User> {
    let user = match name.parse::<UserId>() {
        Ok(id) => db.users().get(id),
        Err(_) if name.contains('@') => db.users().get_by_email(name),
        Err(_) => Err(Error::validation(
            "user",
            "expected a user id (UUID) or an email address",
        )),
    };
    Ok(user?)
}

/// Runs the parsed command and returns its exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx {
        out: Out { json: cli.json },
        database_url: cli.database_url,
    };
    match cli.command {
        Command::Demo => demo::run(&ctx),
        Command::Migrate {
            action: MigrateAction::Check { dir },
        } => check::run(&ctx, dir.as_deref()),
        Command::Migrate { action } => ops::migrate(&ctx, action),
        Command::User { action } => user::run(&ctx, action),
        Command::Task { action } => task::run(&ctx, action),
        Command::Stats { user } => {
            let db = ctx.connect()?;
            let user = resolve_user(&db, &user)?;
            let stats = db.tasks().stats(user.id).context("reading statistics")?;
            ctx.out.stats(&stats)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health => ops::health(&ctx),
        Command::Config => ops::config(&ctx),
        Command::Serve {
            addr,
            shutdown_grace_ms,
        } => crate::serve::run(&ctx, &addr, Duration::from_millis(shutdown_grace_ms)),
    }
}
