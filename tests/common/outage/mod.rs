//! Fault harness for the deadline tests (issue 8), built on [`super::cluster::Cluster`]:
//!
//! - [`socket`]: the same throw-away cluster reached over its Unix socket as well as TCP;
//! - [`freeze`]: SIGSTOP/SIGCONT of the postmaster and every backend as a guard that thaws on
//!   drop, and `pg_ctl stop -m immediate` (a crash, as far as clients can tell);
//! - [`pooler`]: a throw-away PgBouncer in front of a cluster (the socket leads to the pooler);
//! - [`netns`]: a network namespace joined to this machine by a veth pair, a throw-away cluster
//!   listening inside it, and an `iptables -j DROP` blackhole that is lifted on drop, on panic,
//!   and at the latest after a bound given when it is switched on.
//!
//! The blackhole needs root, `ip` and `iptables` (`scripts/install-test-deps.sh` installs the
//! latter). Nothing here skips a test: a missing tool fails it with a message saying what to
//! install.

pub mod freeze;
pub mod netns;
pub mod pooler;
pub mod socket;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd args`, killing it if it has not finished within `limit`: a fault harness must
/// never be the thing that hangs a test.
pub fn run_bounded(cmd: &str, args: &[&str], limit: Duration) -> Result<Output, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => {
                return child.wait_with_output().map_err(|e| format!("{cmd}: {e}"));
            }
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{cmd} {} did not finish within {limit:?}",
                    args.join(" ")
                ));
            }
            Err(e) => return Err(format!("{cmd}: {e}")),
        }
    }
}

/// Like [`run_bounded`], but a failure (non-zero exit included) is a panic naming the command.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run_bounded(cmd, args, Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
