//! `taskstore`: the layer's operations tool and quickest demo.
//!
//! Runs on the embedded SQLite default (`sqlite://taskstore.db`) when `DATABASE_URL` is unset.
//! `--json` prints machine-readable output on stdout; errors go to stderr (as JSON with
//! `--json`) with the fixed exit codes of [`exit`].

mod cli;
mod commands;
mod exit;
mod lint;
mod logs;
mod output;
mod serve;

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
    // Decided before parsing, so that a usage error under `--json` is JSON too.
    let json = output::json_requested(std::env::args_os());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return output::report_usage(&err, json),
    };
    let serving = matches!(cli.command, cli::Command::Serve { .. });
    logs::init(
        json,
        if serving {
            SERVE_LOG_FILTER
        } else {
            CLI_LOG_FILTER
        },
    );
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => output::report_error(&err, json),
    }
}

/// What the CLI logs unless `TASKSTORE_LOG` says otherwise (also what `taskstore config` shows).
pub const CLI_LOG_FILTER: &str = "warn";

/// What `taskstore serve` logs unless `TASKSTORE_LOG` says otherwise: the access log is `info`.
pub const SERVE_LOG_FILTER: &str = "info";
