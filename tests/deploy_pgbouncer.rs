//! Issue 13 item 1: PgBouncer 1.18 (Debian's) in transaction mode in front of a throw-away
//! cluster, as Neon's pooled endpoint and most managed poolers run. Each test starts its own
//! cluster and pooler (`tests/common/outage/pooler.rs`); the pooler keeps fewer server sessions
//! than the layer has connections, so clients share server sessions and anything a session
//! kept would show up in another client.
//!
//! - the behavioural tour (`tests/common/deploy.rs`: users, tasks, transactions, pagination,
//!   import, stats) with `DATABASE_PREPARED_STATEMENTS=false`, on 1 and on 8 threads;
//! - migrations through the pooler without `DATABASE_MIGRATION_URL` are refused, naming it;
//!   with it, 8 concurrent starters apply each migration once;
//! - session state stays inside its transaction, and the session timeouts (which PgBouncer
//!   drops from the startup packet) hold inside `with_transaction`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::outage::pooler::Pgbouncer;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::{Config, Database, Error};

/// Server sessions PgBouncer keeps per database and user: fewer than the layer's pool.
const SERVER_SESSIONS: u32 = 2;

/// A cluster with database `app` and a transaction-mode pooler in front of it.
struct Shape {
    cluster: Cluster,
    pooler: Pgbouncer,
}

impl Shape {
    fn start() -> Self {
        common::capture::init();
        let cluster = Cluster::start(&[]);
        cluster.psql("postgres", "CREATE DATABASE app");
        let pooler = Pgbouncer::start_transaction_mode(&cluster, SERVER_SESSIONS);
        Self { cluster, pooler }
    }

    /// The layer through the pooler, migrations over the direct URL, plus `extra`.
    fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![
            ("DATABASE_URL".to_owned(), self.pooler.url_for("app")),
            (
                "DATABASE_MIGRATION_URL".to_owned(),
                self.cluster.url_for("app"),
            ),
            (
                "DATABASE_PREPARED_STATEMENTS".to_owned(),
                "false".to_owned(),
            ),
            ("DATABASE_POOL_MAX_SIZE".to_owned(), "8".to_owned()),
        ];
        for (k, v) in extra {
            vars.retain(|(name, _)| name != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        Config::from_vars(vars).expect("pooler test configuration")
    }

    fn connect(&self, extra: &[(&str, &str)]) -> Database {
        Database::connect(&self.config(extra)).unwrap_or_else(|e| {
            panic!(
                "connect through the pooler: {e}\npgbouncer log:\n{}",
                self.pooler.log()
            )
        })
    }
}

#[derive(QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn text(conn: &mut taskstore::DbConnection, sql: &str) -> Result<String, Error> {
    Ok(diesel::sql_query(sql).get_result::<Text>(conn)?.value)
}

/// A setting's current value as `SHOW` prints it.
fn show(conn: &mut taskstore::DbConnection, name: &str) -> Result<String, Error> {
    Ok(diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Text>(conn)?
        .value)
}

#[test]
fn postgres_pgbouncer_transaction_mode_tour_one_thread() {
    let shape = Shape::start();
    let db = shape.connect(&[]);
    common::deploy::tour("pgbouncer transaction mode", &db);
}

#[test]
fn postgres_pgbouncer_transaction_mode_tour_eight_threads() {
    let shape = Shape::start();
    let db = shape.connect(&[]);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (db, start) = (db.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                common::deploy::tour(&format!("pgbouncer transaction mode, thread {i}"), &db);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a tour thread failed");
    }
}

/// Without `DATABASE_MIGRATION_URL` the advisory lock would be taken on whichever server
/// session answered: refused before anything runs, with an error naming what to set.
#[test]
fn postgres_pgbouncer_migrations_without_migration_url_are_refused() {
    let shape = Shape::start();
    let config = shape.config(&[]);
    let vars: Vec<(String, String)> = [
        ("DATABASE_URL", shape.pooler.url_for("app")),
        ("DATABASE_PREPARED_STATEMENTS", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    drop(config);
    let config = Config::from_vars(vars).expect("configuration");
    let err = Database::connect(&config).expect_err("migrating through the pooler");
    match &err {
        Error::Config { variable, message } => {
            assert_eq!(variable, "DATABASE_MIGRATION_URL", "{err}");
            assert!(message.contains("direct endpoint"), "{err}");
        }
        other => panic!("expected a configuration error on DATABASE_MIGRATION_URL, got {other}"),
    }
    assert!(err.to_string().contains("DATABASE_MIGRATION_URL"), "{err}");
    assert_eq!(
        shape.cluster.psql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "nothing was migrated"
    );
    // The CLI's `migrate run` takes the same path.
    let Err(err) = taskstore::migrate::connect(&config) else {
        panic!("migrate::connect through the pooler was not refused");
    };
    assert!(err.to_string().contains("DATABASE_MIGRATION_URL"), "{err}");
}

/// Eight instances start at once through the pooler with the direct migration URL: every one
/// connects, and each migration is recorded once.
#[test]
fn postgres_pgbouncer_eight_concurrent_starters_apply_each_migration_once() {
    let shape = Shape::start();
    let config = shape.config(&[("DATABASE_POOL_MIN_IDLE", "0")]);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (config, start) = (config.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                Database::connect(&config).map(|db| db.users().count())
            })
        })
        .collect();
    for t in threads {
        let counted = t.join().expect("starter thread");
        assert!(
            matches!(counted, Ok(Ok(0))),
            "a starter failed: {counted:?}\npgbouncer log:\n{}",
            shape.pooler.log()
        );
    }
    let embedded = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations directory")
        .count();
    assert_eq!(
        shape.cluster.psql(
            "app",
            "SELECT count(*) || '/' || count(DISTINCT version) FROM __diesel_schema_migrations"
        ),
        format!("{embedded}/{embedded}"),
        "each migration recorded exactly once"
    );
}

/// One server session shared by two clients with different settings: what one sets inside a
/// transaction (`SET LOCAL`, and the layer's own per-transaction timeouts) is gone when the
/// next client's transaction runs on the same server session.
#[test]
fn postgres_pgbouncer_session_state_stays_inside_its_transaction() {
    common::capture::init();
    let cluster = Cluster::start(&[]);
    cluster.psql("postgres", "CREATE DATABASE app");
    let pooler = Pgbouncer::start_transaction_mode(&cluster, 1);
    let connect = |statement_ms: &str| {
        Database::connect(
            &Config::from_vars([
                ("DATABASE_URL", pooler.url_for("app").as_str()),
                ("DATABASE_MIGRATION_URL", cluster.url_for("app").as_str()),
                ("DATABASE_PREPARED_STATEMENTS", "false"),
                ("DATABASE_STATEMENT_TIMEOUT_MS", statement_ms),
                ("DATABASE_POOL_MAX_SIZE", "2"),
            ])
            .expect("configuration"),
        )
        .expect("connect through the pooler")
    };
    let a = connect("4321");
    let b = connect("8765");
    let server_default = b.run(|c| show(c, "statement_timeout")).expect("show");
    for _ in 0..5 {
        let (pid_a, inside_a) = a
            .with_transaction(|c| {
                c.batch_execute("SET LOCAL work_mem = '7MB'")?;
                Ok::<_, Error>((
                    text(c, "SELECT pg_backend_pid()::text AS value")?,
                    (show(c, "work_mem")?, show(c, "statement_timeout")?),
                ))
            })
            .expect("client a");
        assert_eq!(inside_a, ("7MB".to_owned(), "4321ms".to_owned()));
        let (pid_b, inside_b) = b
            .with_transaction(|c| {
                Ok::<_, Error>((
                    text(c, "SELECT pg_backend_pid()::text AS value")?,
                    (show(c, "work_mem")?, show(c, "statement_timeout")?),
                ))
            })
            .expect("client b");
        assert_eq!(pid_a, pid_b, "one server session serves both clients");
        assert_eq!(
            inside_b,
            ("4MB".to_owned(), "8765ms".to_owned()),
            "client a's transaction-local settings reached client b"
        );
        // Outside a transaction: the server's default, not a timeout left by a transaction.
        assert_eq!(
            a.run(|c| show(c, "statement_timeout")).expect("show"),
            server_default
        );
    }
}

/// PgBouncer drops the startup `options` that carry the session timeouts, so the layer sets
/// them per transaction: a lock wait inside `with_transaction` ends at `lock_timeout` (the
/// server's 55P03), long before the statement timeout and the client-side watchdog; start-up
/// warns that statements outside a transaction do not get them, naming the fix.
#[test]
fn postgres_pgbouncer_session_timeouts_hold_inside_transactions() {
    let shape = Shape::start();
    let db = shape.connect(&[
        ("DATABASE_LOCK_TIMEOUT_MS", "300"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "5000"),
    ]);
    assert!(
        common::capture::lines_containing("the session timeouts did not reach the server")
            .iter()
            .any(|l| l.contains("ALTER ROLE")),
        "start-up did not warn that the pooler dropped the session timeouts"
    );
    let user = common::factories::user(&db);
    let task = common::factories::task(&db, user.id, "locked");
    let mut holder = PgConnection::establish(&shape.cluster.url_for("app")).expect("direct");
    holder.batch_execute("BEGIN").expect("begin");
    diesel::sql_query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE")
        .bind::<diesel::sql_types::Uuid, _>(task.id.0)
        .execute(&mut holder)
        .expect("lock the task");
    let start = Instant::now();
    let result = db.with_transaction(|c| taskstore::repo::tasks::complete(c, user.id, task.id));
    let elapsed = start.elapsed();
    holder.batch_execute("ROLLBACK").expect("rollback");
    let Err(Error::QueryTimeout { message }) = &result else {
        panic!("expected the server's lock timeout, got {result:?}");
    };
    assert!(message.contains("lock"), "not the lock timeout: {message}");
    assert!(
        elapsed < Duration::from_millis(300 + 1500),
        "the lock wait took {} ms: lock_timeout (300 ms) did not reach the server",
        elapsed.as_millis()
    );
    eprintln!(
        "DEPLOY-FIGURE pgbouncer transaction mode: lock wait inside with_transaction ended after {} ms (lock_timeout 300 ms, statement_timeout 5000 ms)",
        elapsed.as_millis()
    );
    // Inside a transaction each of the three is the configured value.
    let inside = db
        .with_transaction(|c| {
            Ok::<_, Error>([
                show(c, "statement_timeout")?,
                show(c, "lock_timeout")?,
                show(c, "idle_in_transaction_session_timeout")?,
            ])
        })
        .expect("show inside");
    assert_eq!(inside, ["5s", "300ms", "1min"]);
}

/// `taskstore health` (and `migrate status`) through the pooler leave nothing on the server
/// session: their read-only setting used to be a session `SET`, which PgBouncer handed on with
/// the server session, so every later write through it failed with "cannot execute INSERT in a
/// read-only transaction". One server session, so the probe and the writes share it.
#[test]
fn postgres_pgbouncer_health_probe_leaves_no_read_only_session_behind() {
    common::capture::init();
    let cluster = Cluster::start(&[]);
    cluster.psql("postgres", "CREATE DATABASE app");
    let pooler = Pgbouncer::start_transaction_mode(&cluster, 1);
    let config = Config::from_vars([
        ("DATABASE_URL", pooler.url_for("app").as_str()),
        ("DATABASE_MIGRATION_URL", cluster.url_for("app").as_str()),
        ("DATABASE_PREPARED_STATEMENTS", "false"),
        ("DATABASE_POOL_MAX_SIZE", "1"),
        ("DATABASE_POOL_MIN_IDLE", "0"),
    ])
    .expect("configuration");
    let db = Database::connect(&config).expect("connect through the pooler");
    for round in 0..3 {
        let probe = taskstore::health::probe(&config).expect("health through the pooler");
        assert!(probe.migrations.is_current(), "round {round}: {probe:?}");
        let status =
            taskstore::conn::open_read_only(&config, config.database_url()).and_then(|mut c| {
                taskstore::migrate::status(&mut c)?;
                show(&mut c, "default_transaction_read_only")
            });
        // The pooler drops the startup setting: nothing to assert about it here but that the
        // session answers.
        status.expect("a status check through the pooler");
        let user = common::factories::user(&db);
        common::factories::task(&db, user.id, "written after a health check");
        assert_eq!(
            db.run(|c| show(c, "default_transaction_read_only"))
                .expect("show"),
            "off",
            "round {round}: a health check's read-only setting reached another client"
        );
    }
    // Direct, the startup setting makes the check's session read-only.
    let direct = Config::from_vars([("DATABASE_URL", cluster.url_for("app").as_str())])
        .expect("configuration");
    let mut conn =
        taskstore::conn::open_read_only(&direct, direct.database_url()).expect("direct check");
    assert_eq!(
        show(&mut conn, "default_transaction_read_only").expect("show"),
        "on"
    );
}
