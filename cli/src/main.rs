//! `taskstore`: the layer's operations tool and quickest demo.
//!
//! Runs on the embedded SQLite default (`sqlite://taskstore.db`) when `DATABASE_URL` is unset.
//! `--json` prints machine-readable output on stdout; errors go to stderr (as JSON with
//! `--json`) with the fixed exit codes of [`exit`].

mod cli;
mod commands;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`taskstore task export | head`) like other Unix tools,
    // instead of panicking on the failed write.
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing();
    let json = cli.json;
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => output::report_error(&err, json),
    }
}

/// What the CLI logs unless `TASKSTORE_LOG` says otherwise (also what `taskstore config` shows).
pub const CLI_LOG_FILTER: &str = "warn";

/// Logs go to stderr so that stdout stays machine-readable. The CLI logs warnings only unless
/// `TASKSTORE_LOG` says otherwise (the library's default of `info` would drown a terminal).
fn init_tracing() {
    let filter = std::env::var("TASKSTORE_LOG").unwrap_or_else(|_| CLI_LOG_FILTER.into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(CLI_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
