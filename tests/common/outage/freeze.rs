//! Freezing a cluster (SIGSTOP of the postmaster and every backend) as a guard, and stopping
//! it the way a crash would (`pg_ctl stop -m immediate` is SIGQUIT to the postmaster).

use std::time::{Duration, Instant};

use super::super::cluster::Cluster;

/// A frozen cluster: every process stopped, sockets open, the kernel still completing TCP
/// handshakes and accepting bytes, no answer ever. Thawed on drop (also when a test panics).
#[must_use = "the cluster is thawed when the guard is dropped"]
pub struct Frozen<'a> {
    cluster: &'a Cluster,
    thawed: bool,
}

/// Stops the postmaster first (so that it forks no new backend), then every child, and
/// repeats until no running child is left: `Cluster::freeze` lists before it stops, and a
/// backend forked in between would keep answering.
pub fn freeze(cluster: &Cluster) -> Frozen<'_> {
    let root = cluster
        .postmaster_pid()
        .expect("freeze: the cluster is not running");
    // SAFETY: kill(2) with a pid of our own cluster; no memory is involved.
    unsafe { libc::kill(root, libc::SIGSTOP) };
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let running: Vec<i32> = cluster
            .pids()
            .into_iter()
            .filter(|pid| process_state(*pid).is_some_and(|s| s != 'T' && s != 'Z'))
            .collect();
        if running.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "freeze: processes {running:?} still running after 5 s"
        );
        for pid in running {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Frozen {
        cluster,
        thawed: false,
    }
}

impl Frozen<'_> {
    /// Resumes every process now (idempotent).
    pub fn thaw(&mut self) {
        if !self.thawed {
            self.cluster.thaw();
            self.thawed = true;
        }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T` for stopped, ...).
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().next()?.chars().next()
}

/// `pg_ctl stop -m immediate`: SIGQUIT to the postmaster, which makes every backend exit at
/// once without finishing its statement or answering its client, then waits (at most 20 s)
/// until the postmaster is gone. The next start runs crash recovery. Restart with
/// `Cluster::pg_ctl_start`.
pub fn stop_immediate(cluster: &Cluster) {
    let root = cluster
        .postmaster_pid()
        .expect("stop_immediate: the cluster is not running");
    cluster.thaw();
    // SAFETY: kill(2) with our own cluster's postmaster pid.
    unsafe { libc::kill(root, libc::SIGQUIT) };
    let end = Instant::now() + Duration::from_secs(20);
    while process_state(root).is_some_and(|s| s != 'Z') || cluster.postmaster_pid().is_some() {
        assert!(
            Instant::now() < end,
            "stop_immediate: postmaster {root} still there after 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
