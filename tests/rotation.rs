//! Issue 13 item 7: rotated credentials. When the file behind `DATABASE_PASSWORD_FILE` or
//! `DATABASE_URL_FILE` changes, new connections use the new secret without a restart; an
//! authentication failure re-reads the file once before it is reported; connections opened
//! with the old secret keep working until their normal end (PostgreSQL keeps sessions open
//! across `ALTER ROLE ... PASSWORD`).
//!
//! Each test rotates the role's password on a throw-away SCRAM cluster (`ALTER ROLE ...
//! PASSWORD`) and rewrites the secret file, under a 4-thread load through one `Database`, and
//! counts failed calls: there must be none. PostgreSQL only: SQLite has no credentials.

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use taskstore::models::{NewTask, UserId};
use taskstore::{Config, ConnectFailure, Database, Error};

/// Where the secret lives.
#[derive(Debug, Clone, Copy)]
enum Secret {
    /// `DATABASE_URL` without a password, `DATABASE_PASSWORD_FILE` with it.
    PasswordFile,
    /// `DATABASE_URL_FILE` with the password in the URL.
    UrlFile,
}

struct Setup {
    cluster: Cluster,
    dir: tempfile::TempDir,
    secret: Secret,
}

impl Setup {
    fn new(secret: Secret, first_password: &str) -> Self {
        let cluster = Cluster::start_scram(&[]);
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE app LOGIN PASSWORD '{first_password}'"),
        );
        cluster.psql("postgres", "CREATE DATABASE app OWNER app");
        let setup = Self {
            cluster,
            dir: tempfile::tempdir().unwrap(),
            secret,
        };
        setup.write(first_password, Write::InPlace);
        setup
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("secret")
    }

    /// The secret file's content for `password`.
    fn content(&self, password: &str) -> String {
        match self.secret {
            Secret::PasswordFile => format!("{password}\n"),
            Secret::UrlFile => format!(
                "postgres://app:{password}@127.0.0.1:{}/app\n",
                self.cluster.port
            ),
        }
    }

    fn write(&self, password: &str, how: Write) {
        let path = self.file();
        let content = self.content(password);
        match how {
            Write::InPlace => std::fs::write(&path, content).unwrap(),
            Write::Rename => {
                let tmp = self.dir.path().join("secret.tmp");
                std::fs::write(&tmp, content).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
            Write::SameStamp => {
                let before = std::fs::metadata(&path).unwrap();
                assert_eq!(before.len(), content.len() as u64, "same length");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .unwrap();
                std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
                f.set_modified(before.modified().unwrap()).unwrap();
                drop(f);
                let after = std::fs::metadata(&path).unwrap();
                assert_eq!(
                    (after.modified().unwrap(), after.len(), after.ino()),
                    (before.modified().unwrap(), before.len(), before.ino()),
                    "the rewrite must leave the file's stamp as it was"
                );
            }
        }
    }

    /// The configuration, read now (the file as it is now).
    fn config(&self, pool: &[(&str, &str)]) -> Config {
        let file = self.file().display().to_string();
        let url = format!("postgres://app@127.0.0.1:{}/app", self.cluster.port);
        let mut vars: Vec<(&str, &str)> = match self.secret {
            Secret::PasswordFile => vec![
                ("DATABASE_URL", url.as_str()),
                ("DATABASE_PASSWORD_FILE", file.as_str()),
            ],
            Secret::UrlFile => vec![("DATABASE_URL_FILE", file.as_str())],
        };
        vars.extend_from_slice(pool);
        // Generous: these tests count failures caused by the rotation, not deadlines missed
        // on a loaded 2-core machine.
        vars.push(("DATABASE_STARTUP_WAIT_MS", "20000"));
        vars.push(("DATABASE_ACQUIRE_TIMEOUT_MS", "20000"));
        Config::from_vars(vars).unwrap()
    }

    /// `ALTER ROLE app PASSWORD ...`, as the superuser.
    fn alter(&self, password: &str) {
        self.cluster
            .psql("postgres", &format!("ALTER ROLE app PASSWORD '{password}'"));
    }

    /// The server's log lines for failed password authentications so far.
    fn auth_failures_logged(&self) -> usize {
        std::fs::read_to_string(self.cluster.dir().join("server.log"))
            .unwrap_or_default()
            .matches("password authentication failed for user \"app\"")
            .count()
    }
}

#[derive(Debug, Clone, Copy)]
enum Write {
    /// Truncate and write the same file (a half-written file can be seen).
    InPlace,
    /// Write a new file and rename it over the old one (what secret agents and Kubernetes do).
    Rename,
    /// In place, keeping length, inode and modification time: the change is invisible to a
    /// `stat`, so only the re-read after an authentication failure can find it.
    SameStamp,
}

/// A load of `threads` threads through `db` (create a task, read it back) until `stop`,
/// counting calls and keeping every failure.
struct Load {
    calls: AtomicU64,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Load {
    fn new() -> Self {
        Self {
            calls: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    fn run(&self, db: &Database, owner: UserId) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let title = format!("rotation {n}");
            let result = db
                .tasks()
                .create(
                    owner,
                    &NewTask {
                        title: &title,
                        ..NewTask::default()
                    },
                )
                .and_then(|t| db.tasks().get(owner, t.id));
            self.calls.fetch_add(2, Ordering::Relaxed);
            if let Err(e) = result {
                self.failures.lock().unwrap().push(e.to_string());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn assert_clean(&self, what: &str, secrets: &[&str]) {
        let failures = self.failures.lock().unwrap();
        let calls = self.calls.load(Ordering::Relaxed);
        assert!(calls >= 200, "{what}: only {calls} calls ran");
        for f in failures.iter() {
            for s in secrets {
                assert!(!f.contains(s), "{what}: an error printed a secret: {f}");
            }
        }
        assert!(
            failures.is_empty(),
            "{what}: {} of {calls} calls failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }
}

impl Load {
    /// Lets the load run for at least `ms` and at least 200 more calls (a loaded machine is
    /// slow), then stops it.
    fn finish(&self, ms: u64) {
        let target = self.calls.load(Ordering::Relaxed) + 200;
        sleep_ms(ms);
        common::cluster::wait_for(Duration::from_secs(60), || {
            self.calls.load(Ordering::Relaxed) >= target
        });
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Checks out `n` connections at once beside the load (a pool of `n` must then have them
    /// all open), holds them briefly and gives them back; a checkout that fails counts.
    fn hold(&self, db: &Database, n: usize) {
        let held: Vec<_> = (0..n).map(|_| db.conn()).collect();
        for c in &held {
            if let Err(e) = c {
                self.failures.lock().unwrap().push(e.to_string());
            }
        }
        sleep_ms(200);
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The whole rotation story for one kind of secret file.
fn rotation_story(secret: Secret) {
    const P1: &str = "first-Pw-11";
    const P2: &str = "second-Pw-2";
    const P3: &str = "third-Pw-33";
    const P4: &str = "fourth-Pw-4";
    const P5: &str = "fifth-Pw-55";
    let all = [P1, P2, P3, P4, P5];
    let s = Setup::new(secret, P1);

    // 1. A warm pool under a 4-thread load: rotate (ALTER ROLE, then rewrite the file in
    // place). The pool's four connections, all opened with the old password before the
    // rotation, keep serving (PostgreSQL keeps their sessions): no call fails and none is
    // replaced.
    let db = Database::connect(&s.config(&[
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_POOL_MIN_IDLE", "4"),
    ]))
    .unwrap();
    let owner = common::factories::user(&db).id;
    assert!(common::cluster::wait_for(Duration::from_secs(20), || {
        db.stats().pool.connections == 4
    }));
    let created_before = db.stats().connections_created;
    let load = Load::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| load.run(&db, owner));
        }
        sleep_ms(400);
        s.alter(P2);
        s.write(P2, Write::InPlace);
        load.finish(600);
    });
    load.assert_clean(&format!("{secret:?} warm pool"), &all);
    assert_eq!(
        db.stats().connections_created,
        created_before,
        "{secret:?}: the old connections were replaced"
    );
    drop(db);

    // 2. A fresh pool (min idle 0) whose configuration was read before the rotation: every
    // connection its load uses is opened after it. The file is replaced by a rename.
    let config = s.config(&[
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_POOL_MIN_IDLE", "0"),
    ]);
    s.alter(P3);
    s.write(P3, Write::Rename);
    let db = Database::connect(&config).unwrap();
    let load = Load::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| load.run(&db, owner));
        }
        sleep_ms(300);
        load.hold(&db, 4);
        load.finish(300);
    });
    load.assert_clean(&format!("{secret:?} fresh pool"), &all);
    assert!(db.stats().connections_created >= 4);

    // 3. A change that a `stat` cannot see (same length, inode and modification time): the
    // pool's new connections first try the secret it holds, fail authentication, read the
    // file once more and succeed. The server logged the failed attempt; no call failed.
    drop(db);
    let db = Database::connect(&s.config(&[
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_POOL_MIN_IDLE", "0"),
    ]))
    .unwrap();
    // One pooled connection exists (start-up's capacity check): the pool's connector has read
    // the file and noted its stamp.
    let before = db.stats().connections_created;
    assert!(
        before >= 1,
        "the pool opened its first connection at start-up"
    );
    let logged = s.auth_failures_logged();
    s.alter(P4);
    s.write(P4, Write::SameStamp);
    let load = Load::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| load.run(&db, owner));
        }
        sleep_ms(300);
        load.hold(&db, 4);
        load.finish(300);
    });
    load.assert_clean(&format!("{secret:?} unseen change"), &all);
    assert!(
        db.stats().connections_created > before,
        "the load opened new connections"
    );
    assert!(
        common::cluster::wait_for(Duration::from_secs(5), || s.auth_failures_logged() > logged),
        "{secret:?}: no connection tried the old secret, so the re-read after an authentication failure was not exercised"
    );
    drop(db);

    // 4. A file that still holds the old secret: the failure is reported once re-read, naming
    // the file's variable, printing no secret.
    s.alter(P5);
    let started = Instant::now();
    let err = Database::connect(&s.config(&[("DATABASE_POOL_MAX_SIZE", "2")])).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Authentication,
                ..
            }
        ),
        "{text}"
    );
    let variable = match secret {
        Secret::PasswordFile => "DATABASE_PASSWORD_FILE",
        Secret::UrlFile => "DATABASE_URL_FILE",
    };
    assert!(text.contains(variable), "{text}");
    for p in all {
        assert!(!text.contains(p), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an authentication failure is not retried for the start-up wait (20 s)"
    );
}

#[test]
fn rotated_password_file_is_used_without_a_restart_postgres() {
    rotation_story(Secret::PasswordFile);
}

#[test]
fn rotated_url_file_is_used_without_a_restart_postgres() {
    rotation_story(Secret::UrlFile);
}

/// Everything the tracing subscriber writes, from every thread (the pool's too).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replicas share `DATABASE_PASSWORD_FILE` and follow its rotation; a secret file caught
/// half-written (empty) keeps the previous secret instead of failing connections; and the log
/// lines of all this name variables, never a secret.
#[test]
fn rotation_reaches_replicas_and_survives_a_half_written_file_postgres() {
    const P1: &str = "first-Pw-11";
    const P2: &str = "second-Pw-2";
    let logs = Logs::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let s = Setup::new(Secret::PasswordFile, P1);
    let url = format!("postgres://app@127.0.0.1:{}/app", s.cluster.port);
    let file = s.file().display().to_string();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_PASSWORD_FILE", file.as_str()),
        // The same server stands in for a replica: what matters is the replica's URL.
        ("DATABASE_REPLICA_URLS", url.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_POOL_MIN_IDLE", "0"),
        ("DATABASE_STARTUP_WAIT_MS", "20000"),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "20000"),
    ];
    let config = Config::from_vars(vars).unwrap();

    // Read with P1; rotated to P2 before any connection: the replica's connections use P2.
    s.alter(P2);
    s.write(P2, Write::Rename);
    taskstore::conn::open(&config, &config.replica_urls()[0])
        .unwrap_or_else(|e| panic!("replica after rotation: {e}"));
    let db = Database::connect(&config).unwrap();
    let owner = common::factories::user(&db).id;

    // Half-written: the file is empty for a moment. New connections keep P2.
    std::fs::write(s.file(), "").unwrap();
    let load = Load::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| load.run(&db, owner));
        }
        sleep_ms(300);
        load.hold(&db, 4);
        load.finish(300);
    });
    load.assert_clean("half-written file", &[P1, P2]);
    // ... while building a configuration from the empty file is refused (strict reading).
    match Config::from_vars(vars) {
        Err(Error::Config { variable, .. }) => assert_eq!(variable, "DATABASE_PASSWORD_FILE"),
        other => panic!("an empty secret file was accepted at start-up: {other:?}"),
    }

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("could not re-read a secret file"),
        "no warning about the empty file: {logs}"
    );
    assert!(
        logs.contains("a secret file changed"),
        "no line about the rotation: {logs}"
    );
    for secret in [P1, P2] {
        assert!(!logs.contains(secret), "a log line holds a secret: {logs}");
    }
}
