//! A streaming replica for tests (issue 13 item 2): a throw-away primary cluster and a second
//! throw-away cluster made from it with `pg_basebackup -R` (which writes `standby.signal` and
//! `primary_conninfo`), on another free port. Never the shared server.
//!
//! The primary keeps PostgreSQL's defaults for replication (`wal_level = replica`,
//! `max_wal_senders = 10`) and gets `max_wal_senders = 5` set explicitly; initdb's
//! `pg_hba.conf` (`-A trust`) already has `replication` trust lines for local connections, and
//! one is added for 127.0.0.1 in case a packaging changes that.

use std::process::Stdio;
use std::time::Duration;

use super::cluster::{Cluster, as_server_user, free_port, pg_bin, server_tempdir, wait_for};

/// A primary and one streaming replica of it.
pub struct Replicated {
    /// Declared first: dropped (stopped) before the primary.
    pub replica: Cluster,
    pub primary: Cluster,
}

impl Replicated {
    /// Starts a primary, creates database `db` on it, and a streaming replica of it.
    pub fn start(db: &str) -> Self {
        let primary = Cluster::start(&["max_wal_senders = 5", "wal_keep_size = 64MB"]);
        let hba = primary.dir().join("data").join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        text.push_str("\nhost replication all 127.0.0.1/32 trust\n");
        std::fs::write(&hba, text).expect("write pg_hba.conf");
        primary.psql("postgres", "SELECT pg_reload_conf()");
        primary.psql("postgres", &format!("CREATE DATABASE {db}"));
        let replica = base_backup(&primary);
        let r = Self { replica, primary };
        assert!(
            wait_for(Duration::from_secs(30), || r.streaming()),
            "the replica did not start streaming; see {}",
            r.replica.dir().display()
        );
        r
    }

    /// Whether the primary sees the replica streaming.
    pub fn streaming(&self) -> bool {
        self.primary.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        ) == "1"
    }

    /// Waits until the replica has replayed everything the primary has written so far.
    pub fn wait_caught_up(&self) {
        let target = self.primary.psql("postgres", "SELECT pg_current_wal_lsn()");
        let ok = wait_for(Duration::from_secs(30), || {
            self.replica.psql(
                "postgres",
                &format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"),
            ) == "t"
        });
        assert!(ok, "the replica did not catch up with {target}");
    }

    /// Stops replaying WAL on the replica (it keeps receiving): it falls behind.
    pub fn pause_replay(&self) {
        self.replica
            .psql("postgres", "SELECT pg_wal_replay_pause()");
    }

    /// Resumes replaying WAL on the replica.
    pub fn resume_replay(&self) {
        self.replica
            .psql("postgres", "SELECT pg_wal_replay_resume()");
    }
}

/// `pg_basebackup -R` of `primary` into a new directory, configured for its own port and
/// socket directory, started.
fn base_backup(primary: &Cluster) -> Cluster {
    let dir = server_tempdir("taskstore-pg-replica-");
    let data = dir.path().join("data");
    let out = as_server_user(pg_bin().join("pg_basebackup").to_str().unwrap())
        .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "stream", "-R"])
        .args(["--checkpoint=fast", "--no-sync", "-p"])
        .arg(primary.port.to_string())
        .arg("-D")
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    // The copied postgresql.conf carries the primary's port and socket directory; later lines
    // win.
    let conf_path = data.join("postgresql.conf");
    let mut conf = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
    conf.push_str(&format!(
        "\nport = {port}\nunix_socket_directories = '{}'\nhot_standby = on\nhot_standby_feedback = on\n",
        dir.path().display()
    ));
    std::fs::write(&conf_path, conf).expect("write postgresql.conf");
    Cluster::adopt(dir, port)
}
