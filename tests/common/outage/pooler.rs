//! A throw-away PgBouncer (Debian's, installed by `scripts/install-test-deps.sh`) in front of a
//! throw-away [`Cluster`], in session or transaction mode, for tests that must hold "through a pooler": the
//! client's socket then leads to PgBouncer, and the server sees PgBouncer's address and port,
//! not ours.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::super::cluster::Cluster;

/// A running PgBouncer; killed on drop.
pub struct Pgbouncer {
    /// Where clients connect (127.0.0.1).
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn pgbouncer_bin() -> &'static str {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("the pooler tests need pgbouncer: run scripts/install-test-deps.sh")
}

impl Pgbouncer {
    /// Starts PgBouncer on a free port, forwarding every database to `cluster` over TCP, and
    /// waits (at most 10 s) until it accepts connections.
    ///
    /// The layer sends its session timeouts as the `options` startup parameter, which
    /// PgBouncer 1.18 refuses unless told to ignore it: through this pooler the server's
    /// `statement_timeout` is not set, so only a client-side bound can end a statement.
    pub fn start(cluster: &Cluster) -> Self {
        Self::start_with(cluster, "session", 50)
    }

    /// Like [`Pgbouncer::start`], in transaction mode (a server session per transaction, as
    /// Neon's pooled endpoint and most managed poolers run) with at most `server_pool_size`
    /// server sessions per database and user, so that clients share server sessions.
    pub fn start_transaction_mode(cluster: &Cluster, server_pool_size: u32) -> Self {
        Self::start_with(cluster, "transaction", server_pool_size)
    }

    fn start_with(cluster: &Cluster, pool_mode: &str, pool_size: u32) -> Self {
        let bin = pgbouncer_bin();
        let dir = tempfile::Builder::new()
            .prefix("taskstore-pgbouncer-")
            .tempdir()
            .expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let d = dir.path().display();
        let ini = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={server}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {d}/userlist.txt\n\
             pool_mode = {pool_mode}\n\
             max_client_conn = 200\n\
             default_pool_size = {pool_size}\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {d}/pgbouncer.log\n\
             pidfile = {d}/pgbouncer.pid\n",
            server = cluster.port,
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        let mut users =
            std::fs::File::create(dir.path().join("userlist.txt")).expect("write userlist.txt");
        writeln!(users, "\"postgres\" \"\"").expect("write userlist.txt");
        for role in extra_users() {
            writeln!(users, "\"{role}\" \"\"").expect("write userlist.txt");
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = if root {
            // PgBouncer refuses to run as root.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", bin]);
            c
        } else {
            Command::new(bin)
        };
        let child = cmd
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let mut this = Self { port, child, dir };
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = this.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", this.log());
            }
            assert!(
                Instant::now() < end,
                "pgbouncer did not listen within 10 s: {}",
                this.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        this
    }

    /// `postgres://postgres@127.0.0.1:<pgbouncer port>/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// URL of database `db` through PgBouncer.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// PgBouncer's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

/// Roles besides `postgres` that tests log in as through the pooler (trust authentication in
/// the throw-away cluster, so no password is needed).
fn extra_users() -> [&'static str; 2] {
    ["taskstore_owner", "taskstore_app"]
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to our own child (runuser forwards it to PgBouncer).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
