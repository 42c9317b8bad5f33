//! Command-line grammar (SPEC §8).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The taskstore persistence layer's operations tool.
///
/// With no DATABASE_URL it works on the embedded SQLite file `taskstore.db` in the current
/// directory. Each run opens one connection (set DATABASE_POOL_MAX_SIZE /
/// DATABASE_POOL_MIN_IDLE to change that). Exit codes: 0 ok, 1 internal/database error,
/// 2 usage, 3 configuration, 4 validation, 5 not found, 6 conflict, 7 unavailable or timed out.
#[derive(Debug, Parser)]
#[command(name = "taskstore", version, about, long_about = None)]
pub struct Cli {
    /// Print machine-readable JSON on stdout; every error, usage errors included, is one JSON
    /// object on stderr, and nothing else is logged unless TASKSTORE_LOG asks (as JSON lines).
    #[arg(long, global = true)]
    pub json: bool,
    /// Database URL: postgres://user@host:port/db, sqlite://path or sqlite::memory: (overrides
    /// DATABASE_URL; shown redacted everywhere).
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
        /// The user: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
    },
    /// Check that the database answers and the schema is current; writes nothing.
    ///
    /// Exit codes: 0 reachable and current; 1 reachable but the schema is not current
    /// (pending, changed or unknown migrations); 3 configuration error; 7 unreachable, or the
    /// database does not exist (a missing SQLite file included: it is not created).
    Health,
    /// Print the effective configuration, secrets redacted, with each value's source.
    Config,
    /// Serve the JSON HTTP API (README "Serving HTTP") until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on, HOST:PORT (port 0 picks a free one; the address is printed).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080", value_parser = crate::serve::listen_addr)]
        addr: String,
        /// After SIGTERM or Ctrl-C, how long in-flight requests may take to finish before the
        /// pool is dropped, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 10_000)]
        shutdown_grace_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations.
    Run,
    /// List applied and pending migrations (reads only: creates and changes nothing).
    Status,
    /// Revert the most recent migrations.
    Revert {
        /// How many of the most recently applied migrations to revert (a whole number).
        #[arg(long, value_name = "N", default_value_t = 1)]
        steps: usize,
    },
    /// Check migrations for statements that lock or rewrite tables in use, or break the
    /// running release (PostgreSQL rules); connects to no database.
    ///
    /// Exit codes: 0 no findings (acknowledged ones are listed); 4 findings; 1 when DIR cannot
    /// be read.
    Check {
        /// A Diesel migration directory (`<name>/up.sql`, optional `metadata.toml`); default:
        /// the PostgreSQL migrations embedded in this binary.
        #[arg(value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user.
    Add {
        /// The user's email address (unique, at most 254 characters).
        #[arg(long)]
        email: String,
        /// An already-hashed password (e.g. a PHC string); never a plain password.
        #[arg(long, value_name = "HASH", required_unless_present = "password")]
        password_hash: Option<String>,
        /// Hash a password with Argon2id instead (so the user can log in to `taskstore serve`):
        /// prompted for without echo on a terminal, else the first line of standard input.
        /// Never a command-line value.
        #[arg(long, conflicts_with = "password_hash")]
        password: bool,
        /// First name (at most 100 characters; optional).
        #[arg(long, value_name = "NAME")]
        first_name: Option<String>,
        /// Last name (at most 100 characters; optional).
        #[arg(long, value_name = "NAME")]
        last_name: Option<String>,
    },
    /// Show a user.
    Get {
        /// The user: a user id (UUID) or an email address.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// List users (keyset-paginated).
    List {
        /// How many users per page (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// Where to continue: the cursor printed after the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Change a user's fields.
    ///
    /// An empty value clears an optional field (`--first-name ""` clears the first name); with
    /// no field given, nothing changes.
    Update {
        /// The user: a user id (UUID) or an email address.
        #[arg(value_name = "USER")]
        user: String,
        /// New email address (unique, at most 254 characters).
        #[arg(long)]
        email: Option<String>,
        /// New first name (at most 100 characters); an empty string "" clears it.
        #[arg(long, value_name = "NAME")]
        first_name: Option<String>,
        /// New last name (at most 100 characters); an empty string "" clears it.
        #[arg(long, value_name = "NAME")]
        last_name: Option<String>,
        /// New already-hashed password (e.g. a PHC string); never a plain password.
        #[arg(long, value_name = "HASH")]
        password_hash: Option<String>,
        /// Set a new password, hashed with Argon2id (a reset): prompted for without echo on a
        /// terminal, else the first line of standard input. Never a command-line value.
        #[arg(long, conflicts_with = "password_hash")]
        password: bool,
    },
    /// Deactivate a user.
    Deactivate {
        /// The user: a user id (UUID) or an email address.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Activate a user.
    Activate {
        /// The user: a user id (UUID) or an email address.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Delete a user and all their tasks.
    Delete {
        /// The user: a user id (UUID) or an email address.
        #[arg(value_name = "USER")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// Create a task.
    Add {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's title (1 to 255 characters).
        #[arg(long)]
        title: String,
        /// A longer description (at most 1000 characters; optional).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Priority, a whole number from 1 (lowest) to 5 (default 3).
        #[arg(long, value_name = "1-5")]
        priority: Option<i16>,
    },
    /// Show a task.
    Get {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's id (UUID).
        #[arg(value_name = "TASK_ID")]
        task: String,
    },
    /// List tasks with filters, sorting and a cursor.
    List(ListArgs),
    /// Change a task (optionally only if it is still at an expected version).
    ///
    /// An empty value clears the description (`--description ""`); with no field given, nothing
    /// changes (same version, same updated_at).
    Update {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's id (UUID).
        #[arg(value_name = "TASK_ID")]
        task: String,
        /// New title (1 to 255 characters).
        #[arg(long)]
        title: Option<String>,
        /// New description (at most 1000 characters); an empty string "" clears it.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// New priority, a whole number from 1 (lowest) to 5.
        #[arg(long, value_name = "1-5")]
        priority: Option<i16>,
        /// Mark completed (true) or open (false).
        #[arg(long, value_name = "true|false")]
        completed: Option<bool>,
        /// Change the task only if its version is still this number (from `task get`);
        /// else exit 6 (conflict).
        #[arg(long, value_name = "VERSION")]
        expected_version: Option<i32>,
    },
    /// Mark a task completed.
    Done {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's id (UUID).
        #[arg(value_name = "TASK_ID")]
        task: String,
    },
    /// Reopen a completed task.
    Reopen {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's id (UUID).
        #[arg(value_name = "TASK_ID")]
        task: String,
    },
    /// Delete a task.
    Delete {
        /// The user who owns the task: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The task's id (UUID).
        #[arg(value_name = "TASK_ID")]
        task: String,
    },
    /// Import tasks from CSV or JSON Lines: every row is validated first; all or nothing.
    Import {
        /// The user who will own the imported tasks: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The file to read (CSV with a header line, or JSON Lines: one object per line).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The file's format; defaults to its extension (.csv, .jsonl / .ndjson).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Export a user's tasks as CSV or JSON Lines (stdout by default).
    Export {
        /// The user whose tasks are exported: a user id (UUID) or an email address.
        #[arg(long, value_name = "ID|EMAIL")]
        user: String,
        /// The format to write; defaults to --output's extension (.csv, .jsonl / .ndjson), and
        /// to CSV on stdout.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// The file to write (created or replaced); stdout when absent.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The user whose tasks are listed: a user id (UUID) or an email address.
    #[arg(long, value_name = "ID|EMAIL")]
    pub user: String,
    /// Only completed tasks (true) or only open ones (false); all when absent.
    #[arg(long, value_name = "true|false")]
    pub completed: Option<bool>,
    /// Only tasks with at least this priority (1 to 5).
    #[arg(long, value_name = "1-5")]
    pub priority_min: Option<i16>,
    /// Only tasks with at most this priority (1 to 5).
    #[arg(long, value_name = "1-5")]
    pub priority_max: Option<i16>,
    /// Literal text to find in title or description (% and _ are not wildcards).
    #[arg(long)]
    pub search: Option<String>,
    /// Only tasks created after this RFC 3339 timestamp, e.g. 2026-11-27T10:00:00Z.
    #[arg(long, value_name = "TIMESTAMP")]
    pub created_after: Option<String>,
    /// Only tasks created before this RFC 3339 timestamp, e.g. 2026-11-27T10:00:00Z.
    #[arg(long, value_name = "TIMESTAMP")]
    pub created_before: Option<String>,
    /// Sort order, one of created|-created|updated|-updated|priority|-priority|title|-title
    /// (a leading - means descending).
    #[arg(
        long,
        value_name = "ORDER",
        default_value = "-created",
        allow_hyphen_values = true
    )]
    pub sort: String,
    /// How many tasks per page (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
    /// Where to continue: the cursor printed after the previous page (valid with the same
    /// filters and sort only).
    #[arg(long)]
    pub cursor: Option<String>,
}

/// A file format for import and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// JSON Lines: one JSON object per line.
    Jsonl,
}
