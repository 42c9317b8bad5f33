//! Command-line grammar (SPEC §8).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The taskstore persistence layer's operations tool.
///
/// With no DATABASE_URL it works on the embedded SQLite file `taskstore.db` in the current
/// directory. Exit codes: 0 ok, 1 internal/database error, 2 usage, 3 configuration,
/// 4 validation, 5 not found, 6 conflict, 7 unavailable or timed out.
#[derive(Debug, Parser)]
#[command(name = "taskstore", version, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Database URL (overrides DATABASE_URL; shown redacted everywhere).
    #[arg(long, value_name = "URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what the layer does on a demo user (creates or resets its data).
    Demo,
    /// Apply, inspect or revert schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage a user's tasks.
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Task statistics for a user.
    Stats {
        /// The user (id or email).
        #[arg(long)]
        user: String,
    },
    /// Check that the database answers and the schema is current (exit 7 when unreachable).
    Health,
    /// Print the effective configuration, secrets redacted, with each value's source.
    Config,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations.
    Run,
    /// List applied and pending migrations.
    Status,
    /// Revert the most recent migrations.
    Revert {
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1)]
        steps: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user.
    Add {
        #[arg(long)]
        email: String,
        /// An already-hashed password (e.g. a PHC string); never a plain password.
        #[arg(long)]
        password_hash: String,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
    },
    /// Show a user.
    Get { user: String },
    /// List users (keyset-paginated).
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a user's fields.
    ///
    /// An empty value clears an optional field (`--first-name ""` clears the first name); with
    /// no field given, nothing changes.
    Update {
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        password_hash: Option<String>,
    },
    /// Deactivate a user.
    Deactivate { user: String },
    /// Activate a user.
    Activate { user: String },
    /// Delete a user and all their tasks.
    Delete { user: String },
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Create a task.
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        description: Option<String>,
        /// 1 (lowest) to 5.
        #[arg(long)]
        priority: Option<i16>,
    },
    /// Show a task.
    Get {
        #[arg(long)]
        user: String,
        task: String,
    },
    /// List tasks with filters, sorting and a cursor.
    List(ListArgs),
    /// Change a task (optionally only if it is still at an expected version).
    ///
    /// An empty value clears the description (`--description ""`); with no field given, nothing
    /// changes (same version, same updated_at).
    Update {
        #[arg(long)]
        user: String,
        task: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        priority: Option<i16>,
        #[arg(long)]
        completed: Option<bool>,
        #[arg(long)]
        expected_version: Option<i32>,
    },
    /// Mark a task completed.
    Done {
        #[arg(long)]
        user: String,
        task: String,
    },
    /// Reopen a completed task.
    Reopen {
        #[arg(long)]
        user: String,
        task: String,
    },
    /// Delete a task.
    Delete {
        #[arg(long)]
        user: String,
        task: String,
    },
    /// Import tasks from CSV or JSON Lines: every row is validated first; all or nothing.
    Import {
        #[arg(long)]
        user: String,
        file: PathBuf,
        /// Defaults to the file's extension (.csv, .jsonl / .ndjson).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Export a user's tasks as CSV or JSON Lines (stdout by default).
    Export {
        #[arg(long)]
        user: String,
        /// Defaults to --output's extension (.csv, .jsonl / .ndjson); CSV on stdout.
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub completed: Option<bool>,
    #[arg(long)]
    pub priority_min: Option<i16>,
    #[arg(long)]
    pub priority_max: Option<i16>,
    /// Literal text to find in title or description (% and _ are not wildcards).
    #[arg(long)]
    pub search: Option<String>,
    /// RFC 3339 timestamp, e.g. 2026-11-27T10:00:00Z.
    #[arg(long)]
    pub created_after: Option<String>,
    #[arg(long)]
    pub created_before: Option<String>,
    /// created|-created|updated|-updated|priority|-priority|title|-title
    #[arg(long, default_value = "-created", allow_hyphen_values = true)]
    pub sort: String,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}
