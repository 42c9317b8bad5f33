//! A throw-away PostgreSQL cluster for tests that stop, freeze or restart the server: its own
//! `initdb` in a temporary directory, on a free port, started and stopped with `pg_ctl`. Never
//! the shared server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where `initdb` and `pg_ctl` live (override with `TASKSTORE_PG_BIN`).
pub fn pg_bin() -> PathBuf {
    std::env::var_os("TASKSTORE_PG_BIN").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    )
}

/// A running private cluster. Dropping it stops the server and removes its files.
pub struct Cluster {
    pub port: u16,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// initdb refuses to run as root; run server commands as the `postgres` user then.
pub fn as_server_user(cmd: &str) -> Command {
    let is_root = unsafe { libc::geteuid() } == 0;
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", cmd]);
        c
    } else {
        Command::new(cmd)
    }
}

/// A temporary directory for a cluster's files, owned by the server's user when the tests
/// run as root (initdb and pg_basebackup refuse to write a data directory they do not own).
pub fn server_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    if unsafe { libc::geteuid() } == 0 {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
    }
    dir
}

impl Cluster {
    /// `initdb` + start, with `extra_conf` lines appended to postgresql.conf.
    pub fn start(extra_conf: &[&str]) -> Self {
        Self::start_with_hba(extra_conf, None)
    }

    /// Like [`Cluster::start`], but TCP logins of every role except `postgres` need a
    /// SCRAM-SHA-256 password (the superuser keeps trust so that set-up stays simple).
    pub fn start_scram(extra_conf: &[&str]) -> Self {
        let mut conf = vec!["password_encryption = 'scram-sha-256'"];
        conf.extend_from_slice(extra_conf);
        Self::start_with_hba(
            &conf,
            Some(
                "local all all trust\n\
                 host all postgres 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n",
            ),
        )
    }

    fn start_with_hba(extra_conf: &[&str], hba: Option<&str>) -> Self {
        let dir = server_tempdir("taskstore-pg-");
        let data = dir.path().join("data");
        let out = as_server_user(pg_bin().join("initdb").to_str().unwrap())
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 50\nshared_buffers = 16MB\n",
            dir.path().display()
        );
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");
        if let Some(hba) = hba {
            std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        }
        let cluster = Self { port, dir };
        cluster.pg_ctl_start();
        cluster
    }

    /// A cluster whose data directory `dir/data` was made elsewhere (a base backup, see
    /// `replica.rs`) and is configured for `port`: started here, stopped and removed on drop.
    pub fn adopt(dir: tempfile::TempDir, port: u16) -> Self {
        let cluster = Self { port, dir };
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// URL of database `db` on this cluster.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        as_server_user(pg_bin().join("pg_ctl").to_str().unwrap())
            .arg("-D")
            .arg(self.data())
            .args(args)
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl")
    }

    /// Starts the server and waits until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&["-w", "-t", "60", "-l", log.to_str().unwrap(), "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (fast mode: disconnects clients, like a restart at 3 a.m.).
    pub fn stop(&self) {
        let _ = self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }

    /// Restarts the server.
    pub fn restart(&self) {
        self.stop();
        self.pg_ctl_start();
    }

    /// The postmaster's pid, or `None` while the server is stopped.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Every process of this cluster: the postmaster and its children (none while stopped).
    pub fn pids(&self) -> Vec<i32> {
        let Some(root) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![root];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                    // Field 4 is the parent pid; the command name (field 2) may contain spaces.
                    if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                        let ppid: i32 = rest
                            .split_whitespace()
                            .nth(1)
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        if ppid == root {
                            pids.push(pid);
                        }
                    }
                }
            }
        }
        pids
    }

    /// SIGSTOP every process of the cluster: the server is frozen, sockets stay open.
    pub fn freeze(&self) {
        for pid in self.pids() {
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    }

    /// SIGCONT every process of the cluster.
    pub fn thaw(&self) {
        for pid in self.pids() {
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }

    /// Runs SQL through psql on this cluster (test set-up only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url_for(db),
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The data directory path (for logs in failure messages).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.thaw();
        self.stop();
    }
}

/// Waits until `f` returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Runs the project's `docs/<file>` with psql against `url` (`-v name=value` for each of
/// `vars`), stopping at the first error; panics with psql's stderr when it fails. Found from
/// either package's manifest directory (the library's tests and the command's share this
/// module).
pub fn psql_docs_file(url: &str, file: &str, vars: &[&str]) {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("docs"))
        .find(|d| d.join("roles.sql").exists())
        .expect("the project's docs/ directory");
    let mut cmd = Command::new(pg_bin().join("psql"));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
    for v in vars {
        cmd.args(["-v", v]);
    }
    let out = cmd
        .arg("-f")
        .arg(docs.join(file))
        .args(["-d", url])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql -f docs/{file} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
