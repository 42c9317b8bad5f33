//! Issue 12, item 7: no error classification depends on the language of the server's messages.
//!
//! Every test here runs on a throw-away cluster whose `lc_messages` is `de_DE.utf8`, so that
//! the server answers "storniere Anfrage wegen Zeitüberschreitung einer Sperre" instead of
//! "canceling statement due to lock timeout". The locale must exist before the cluster starts:
//! run `scripts/install-locales.sh` once (it is idempotent; it needs root when the locale is
//! missing).
//!
//! The rule: lock timeouts (55P03) and statement timeouts (57014) are `Error::QueryTimeout`
//! (CLI exit 7) and deadlocks (40P01) are re-run by `with_transaction`, whatever language the
//! server speaks. Where the layer cannot know the SQLSTATE (Diesel 2.3 does not expose it) and
//! cannot make the session speak English (an unprivileged role may not set `lc_messages`), it
//! says so loudly at start-up, naming `lc_messages` and what to do.

mod common;

use std::sync::Barrier;

use common::cli_env::{CliEnv, both, stderr};
use common::cluster::Cluster;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::models::{PageRequest, TaskFilter, TaskSort};
use taskstore::{Config, Database, Error};

/// The locale the server speaks in these tests, as `locale -a` and PostgreSQL spell it.
const LOCALE: &str = "de_DE.utf8";

/// A running cluster whose messages are German.
fn german_cluster() -> Cluster {
    let installed = std::process::Command::new("locale")
        .arg("-a")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == LOCALE)
        })
        .unwrap_or(false);
    assert!(
        installed,
        "the {LOCALE} locale is missing: run scripts/install-locales.sh (issue 12 item 7)"
    );
    let cluster = Cluster::start(&["lc_messages = 'de_DE.utf8'"]);
    assert_eq!(cluster.psql("postgres", "SHOW lc_messages"), LOCALE);
    // The premise of every test here: the server really answers in German.
    let out = std::process::Command::new(common::cluster::pg_bin().join("psql"))
        .args(["-X", "-q", "-d", &cluster.url(), "-c", "SELECT 1/0"])
        .output()
        .expect("run psql");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Division durch Null"),
        "the cluster does not answer in German: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster
}

/// Holds `ACCESS EXCLUSIVE` on `tasks` in database `db` until dropped.
struct TableLock(PgConnection);

impl TableLock {
    fn take(url: &str) -> Self {
        let mut conn = PgConnection::establish(url).expect("lock holder connects");
        conn.batch_execute("BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            .expect("lock tasks");
        Self(conn)
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("ROLLBACK");
    }
}

fn connect(url: &str, extra: &[(&str, &str)]) -> Database {
    let mut vars = vec![
        ("DATABASE_URL", url),
        ("DATABASE_POOL_MAX_SIZE", "4"),
        ("DATABASE_STARTUP_WAIT_MS", "10000"),
    ];
    vars.extend_from_slice(extra);
    Database::connect(&Config::from_vars(vars).expect("config")).expect("connect")
}

/// Item 7 (library, superuser): on a German server a lock timeout and a statement timeout are
/// `Error::QueryTimeout`, and a deadlock is re-run by `with_transaction` until both
/// transactions commit.
#[test]
fn item07_german_timeouts_are_typed_and_deadlocks_are_rerun() {
    let cluster = german_cluster();
    cluster.psql("postgres", "CREATE DATABASE app");
    let url = cluster.url_for("app");

    let db = connect(&url, &[("DATABASE_LOCK_TIMEOUT_MS", "300")]);
    let owner = common::factories::user(&db).id;
    {
        let _lock = TableLock::take(&url);
        let err = db
            .tasks()
            .list(
                owner,
                &TaskFilter::default(),
                TaskSort::CreatedAsc,
                &PageRequest::first(5),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::QueryTimeout { .. }),
            "lock timeout: {err:?}"
        );
    }
    drop(db);

    let db = connect(
        &url,
        &[
            ("DATABASE_LOCK_TIMEOUT_MS", "0"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "300"),
        ],
    );
    let err = db
        .run(|c| Ok(diesel::sql_query("SELECT pg_sleep(5)").execute(c)?))
        .unwrap_err();
    assert!(
        matches!(err, Error::QueryTimeout { .. }),
        "statement timeout: {err:?}"
    );
    drop(db);

    // The default timeouts: PostgreSQL detects a deadlock after `deadlock_timeout` (1 s), so
    // the 300 ms statement timeout above would cancel the victim before it is found.
    let db = connect(&url, &[]);
    db.run(|c| {
        c.batch_execute("CREATE TABLE dl (id int PRIMARY KEY, n int NOT NULL); INSERT INTO dl VALUES (1, 0), (2, 0)")?;
        Ok(())
    })
    .unwrap();
    let before = db.stats().transactions_retried;
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for (first, second) in [(1, 2), (2, 1)] {
            let (db, barrier) = (&db, &barrier);
            s.spawn(move || {
                let mut run = 0;
                db.with_transaction(|c| {
                    run += 1;
                    diesel::sql_query("UPDATE dl SET n = n + 1 WHERE id = $1")
                        .bind::<diesel::sql_types::Integer, _>(first)
                        .execute(c)?;
                    if run == 1 {
                        barrier.wait(); // both hold their first row lock
                    }
                    diesel::sql_query("UPDATE dl SET n = n + 1 WHERE id = $1")
                        .bind::<diesel::sql_types::Integer, _>(second)
                        .execute(c)?;
                    Ok::<_, Error>(())
                })
                .expect("the deadlock victim is re-run");
            });
        }
    });
    assert!(
        db.stats().transactions_retried > before,
        "the deadlock victim was re-run"
    );
}

/// Item 7 (CLI, superuser): on a German server, `task list` blocked by a lock exits 7 after the
/// lock timeout, and after the statement timeout when that comes first — not exit 1 with the
/// German text as "database error (other)".
#[test]
fn item07_german_lock_and_statement_timeouts_exit_7() {
    let cluster = german_cluster();
    cluster.psql("postgres", "CREATE DATABASE app");
    let url = cluster.url_for("app");
    let env = CliEnv::with_url(&url);
    env.json(&["migrate", "run"]);
    let user = env.add_user("de@example.com");
    let _lock = TableLock::take(&url);
    for (lock_ms, statement_ms) in [("300", "30000"), ("0", "300")] {
        let out = env
            .cmd(&["--json", "task", "list", "--user", &user])
            .env("DATABASE_LOCK_TIMEOUT_MS", lock_ms)
            .env("DATABASE_STATEMENT_TIMEOUT_MS", statement_ms)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(7),
            "lock {lock_ms} ms, statement {statement_ms} ms: {}",
            both(&out)
        );
    }
}

/// Item 7 (CLI, a role that may not set `lc_messages`): a lock timeout is classified (exit 7)
/// by some language-independent means, or — where the layer cannot — every command says loudly
/// at start-up that the server's messages are not English, naming `lc_messages` and what to do.
#[test]
fn item07_unprivileged_roles_are_classified_or_warned() {
    let cluster = german_cluster();
    cluster.psql("postgres", "CREATE ROLE app LOGIN");
    cluster.psql("postgres", "CREATE DATABASE app OWNER app");
    let url = format!("postgres://app@127.0.0.1:{}/app", cluster.port);
    let env = CliEnv::with_url(&url);
    env.json(&["migrate", "run"]);
    let user = env.add_user("de@example.com");
    let lock = TableLock::take(&cluster.url_for("app"));
    let out = env
        .cmd(&["--json", "task", "list", "--user", &user])
        .env("DATABASE_LOCK_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    drop(lock);
    if out.status.code() != Some(7) {
        assert!(
            stderr(&out).contains("lc_messages"),
            "neither classified (exit 7) nor warned about the server's language: {}",
            both(&out)
        );
        let health = env.run(&["health"]);
        assert!(
            stderr(&health).contains("lc_messages"),
            "the warning comes at start-up, not only with an error: {}",
            both(&health)
        );
    }
}
