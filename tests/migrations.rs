//! Migrations: status / run / revert on one connection, up-down-up leaves an identical schema,
//! changed and unknown migrations are refused at start-up with typed errors, the migration URL,
//! the bounded lock wait and the prompt hand-over of the lock (PostgreSQL), one connection for
//! `migrate status` and the health probe, and 8 processes starting at once against an empty
//! database.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Backend, PgTestDb, TestDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::migrate::{MigrateError, Migrator};
use taskstore::{Config, Database, DbConnection, Error, migrate};

/// A test database whose start-up does not migrate.
fn unmigrated(backend: Backend) -> TestDb {
    TestDb::new(backend, &[("DATABASE_MIGRATE_ON_STARTUP", "false")])
}

/// The dedicated migration connection for `db`, as start-up and the CLI open it.
fn migration_conn(db: &Database) -> DbConnection {
    migrate::connect(db.config()).unwrap()
}

/// Everything the catalog says about the schema, one line per column, constraint and index,
/// sorted: equal dumps mean equal schemas.
fn catalog_dump(db: &Database) -> String {
    #[derive(QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    let sql = match db.backend() {
        taskstore::BackendKind::Postgres => {
            "SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') AS dump FROM (
                 SELECT format('column %s.%s #%s %s null=%s default=%s collation=%s',
                               table_name, column_name, ordinal_position, data_type,
                               is_nullable, column_default, collation_name) AS line
                   FROM information_schema.columns WHERE table_schema = 'public'
                 UNION ALL
                 SELECT format('constraint %s %s %s', conrelid::regclass, conname,
                               pg_get_constraintdef(oid))
                   FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                 UNION ALL
                 SELECT format('index %s %s', indexname, indexdef)
                   FROM pg_indexes WHERE schemaname = 'public'
             ) lines"
        }
        taskstore::BackendKind::Sqlite => {
            "SELECT coalesce(group_concat(line, char(10)), '') AS dump FROM (
                 SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS line
                   FROM sqlite_master ORDER BY line
             )"
        }
    };
    db.run(|c| Ok(diesel::sql_query(sql).get_result::<Dump>(c)?.dump))
        .unwrap()
}

fn up_down_up(backend: Backend) {
    let db = unmigrated(backend);
    let mut mc = migration_conn(&db);
    let empty = catalog_dump(&db);
    let before = migrate::status(&mut mc).unwrap();
    assert!(before.applied.is_empty(), "{before:?}");
    assert!(!before.pending.is_empty(), "{before:?}");
    assert_eq!(before.schema_version(), None);
    let n = before.pending.len();

    let applied = migrate::run(&mut mc).unwrap();
    let names: Vec<_> = applied.iter().map(|a| a.migration.clone()).collect();
    assert_eq!(names, before.pending);
    let status = migrate::status(&mut mc).unwrap();
    assert!(status.is_current(), "{status:?}");
    assert_eq!(status.applied, before.pending);
    assert_eq!(
        status.schema_version(),
        before.pending.last().map(|m| m.version.as_str())
    );
    let up = catalog_dump(&db);
    assert!(up.contains("tasks_user_created_idx"), "{up}");
    assert!(
        migrate::run(&mut mc).unwrap().is_empty(),
        "nothing left to apply"
    );

    let reverted = migrate::revert(&mut mc, n).unwrap();
    assert_eq!(reverted.len(), n);
    let status = migrate::status(&mut mc).unwrap();
    assert!(
        status.applied.is_empty() && status.pending.len() == n,
        "{status:?}"
    );
    let down = catalog_dump(&db);
    let leftover: Vec<&str> = down
        .lines()
        .filter(|l| {
            [
                "column users.",
                "column tasks.",
                "table users ",
                "table tasks ",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(
        leftover.is_empty(),
        "down.sql left these behind: {leftover:?}"
    );
    assert_ne!(down, empty, "the bookkeeping tables stay");

    migrate::run(&mut mc).unwrap();
    let up_again = catalog_dump(&db);
    assert_eq!(up, up_again, "up, down, up must leave the same schema");
    let rows: i64 = db
        .run(|c| {
            Ok(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "(SELECT count(*) FROM taskstore_migration_checksums)",
                ))
                .get_result(c)?,
            )
        })
        .unwrap();
    assert_eq!(rows, n as i64, "one checksum per applied migration");
}

fn changed_migration_is_refused(backend: Backend) {
    let db = unmigrated(backend);
    let mut mc = migration_conn(&db);
    migrate::run(&mut mc).unwrap();
    db.run(|c| {
        c.batch_execute("UPDATE taskstore_migration_checksums SET sha256 = 'edited'")?;
        Ok(())
    })
    .unwrap();
    let status = migrate::status(&mut mc).unwrap();
    assert_eq!(status.changed.len(), status.applied.len(), "{status:?}");
    let config = db.config().clone().with_migrate_on_startup(true);
    let err = Database::connect(&config).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Migration { .. }), "{err:?}");
    assert!(err.to_string().contains("changed since they ran"), "{err}");
    assert!(
        matches!(&err, Error::Migration(MigrateError::ChecksumMismatch { names }) if names.len() == status.applied.len()),
        "{err:?}"
    );
    let err = migrate::run(&mut mc).unwrap_err();
    assert!(
        matches!(err, Error::Migration(MigrateError::ChecksumMismatch { .. })),
        "{err:?}"
    );
}

fn unknown_migration_is_refused(backend: Backend) {
    let db = unmigrated(backend);
    let mut mc = migration_conn(&db);
    migrate::run(&mut mc).unwrap();
    db.run(|c| {
        c.batch_execute(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('20991231000000')",
        )?;
        Ok(())
    })
    .unwrap();
    let status = migrate::status(&mut mc).unwrap();
    assert_eq!(status.unknown, ["20991231000000"]);
    assert!(!status.is_current());
    let config = db.config().clone().with_migrate_on_startup(true);
    let err = Database::connect(&config).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Migration { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("does not know (20991231000000)"), "{text}");
    assert!(
        matches!(&err, Error::Migration(MigrateError::UnknownApplied { versions }) if versions == &["20991231000000"]),
        "{err:?}"
    );
    let err = migrate::revert(&mut mc, 1).unwrap_err();
    assert!(err.to_string().contains("unknown to this binary"), "{err}");
    assert!(
        matches!(&err, Error::Migration(MigrateError::RevertBlocked { versions }) if versions == &["20991231000000"]),
        "{err:?}"
    );
}

/// The health probe reads where the schema stands on its one connection.
fn probe_reports_the_schema(backend: Backend) {
    let db = unmigrated(backend);
    let probe = taskstore::health::probe(db.config()).unwrap();
    assert_eq!(probe.schema_version, None, "{probe:?}");
    assert!(!probe.migrations.is_current(), "{probe:?}");
    assert!(probe.latency > Duration::ZERO && probe.connect > Duration::ZERO);
    let mut mc = migration_conn(&db);
    migrate::run(&mut mc).unwrap();
    let probe = taskstore::health::probe(db.config()).unwrap();
    assert!(probe.migrations.is_current(), "{probe:?}");
    assert_eq!(
        probe.schema_version.as_deref(),
        probe.migrations.schema_version()
    );
}

mod sqlite_migrations {
    use super::*;

    #[test]
    fn up_down_up_leaves_an_identical_schema() {
        super::up_down_up(Backend::Sqlite);
    }

    #[test]
    fn changed_migration_is_refused() {
        super::changed_migration_is_refused(Backend::Sqlite);
    }

    #[test]
    fn unknown_migration_is_refused() {
        super::unknown_migration_is_refused(Backend::Sqlite);
    }

    #[test]
    fn probe_reports_the_schema() {
        super::probe_reports_the_schema(Backend::Sqlite);
    }
}

mod postgres_migrations {
    use super::*;

    #[test]
    fn up_down_up_leaves_an_identical_schema() {
        super::up_down_up(Backend::Postgres);
    }

    #[test]
    fn changed_migration_is_refused() {
        super::changed_migration_is_refused(Backend::Postgres);
    }

    #[test]
    fn unknown_migration_is_refused() {
        super::unknown_migration_is_refused(Backend::Postgres);
    }

    #[test]
    fn probe_reports_the_schema() {
        super::probe_reports_the_schema(Backend::Postgres);
    }

    /// Sessions ever opened to `db`, once every session to it has ended and reported.
    fn sessions_once_settled(observer: &mut PgConnection, db: &str, at_least: i64) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut read = |sql: &str| {
            observer
                .batch_execute("SELECT pg_stat_clear_snapshot()")
                .unwrap();
            diesel::sql_query(sql)
                .bind::<diesel::sql_types::Text, _>(db)
                .get_result::<N>(observer)
                .unwrap()
                .n
        };
        let active = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1";
        let total = "SELECT coalesce(sessions, 0) AS n FROM pg_stat_database WHERE datname = $1";
        common::cluster::wait_for(Duration::from_secs(10), || {
            read(active) == 0 && read(total) >= at_least
        });
        // A session that ended just now may still be on its way into the statistics.
        std::thread::sleep(Duration::from_millis(300));
        read(total)
    }

    /// `taskstore migrate status` and `taskstore health` run exactly this: one connection
    /// each, where a `Database` would open a pool (start-up probe, `min_idle` connections).
    #[test]
    fn status_and_the_health_probe_open_one_connection_each() {
        let pg = PgTestDb::create();
        let config = Config::from_vars([("DATABASE_URL", pg.url.as_str())]).unwrap();
        let mut observer = PgConnection::establish(&common::pg_admin_url()).unwrap();
        let before = sessions_once_settled(&mut observer, &pg.name, 0);

        let mut conn = migrate::connect(&config).unwrap();
        let status = migrate::status(&mut conn).unwrap();
        assert!(!status.pending.is_empty());
        drop(conn);
        let after_status = sessions_once_settled(&mut observer, &pg.name, before + 1);
        assert_eq!(after_status - before, 1, "migrate status");

        let probe = taskstore::health::probe(&config).unwrap();
        assert!(!probe.migrations.is_current());
        let after_probe = sessions_once_settled(&mut observer, &pg.name, after_status + 1);
        assert_eq!(after_probe - after_status, 1, "health probe");

        // The measurement sees a pool for what it is.
        drop(Database::connect(&config).unwrap());
        let after_pool = sessions_once_settled(&mut observer, &pg.name, after_probe + 2);
        assert!(
            after_pool - after_probe >= 2,
            "{}",
            after_pool - after_probe
        );
    }

    /// A waiting run polls with backoff capped at 250 ms (`migrate::lock`), so it takes the
    /// lock soon after the holder lets go, not at its next log slice (2 s).
    #[test]
    fn a_waiting_run_takes_the_lock_as_soon_as_it_is_released() {
        let pg = PgTestDb::create();
        let config = Config::from_vars([("DATABASE_URL", pg.url.as_str())]).unwrap();
        let mut conn = migrate::connect(&config).unwrap();
        migrate::run(&mut conn).unwrap();
        // Something pending: with nothing to do, a run takes no lock at all (issue 12 item 9).
        migrate::revert(&mut conn, 1).unwrap();
        let mut holder = PgConnection::establish(&pg.url).unwrap();
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(migrate::LOCK_KEY)
            .execute(&mut holder)
            .unwrap();
        let hold = Duration::from_millis(600);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(hold);
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<diesel::sql_types::BigInt, _>(migrate::LOCK_KEY)
                .execute(&mut holder)
                .unwrap();
            holder
        });
        let start = Instant::now();
        let applied = Migrator::new()
            .lock_wait(Duration::from_secs(20))
            .run(&mut conn)
            .unwrap();
        let waited = start.elapsed();
        releaser.join().unwrap();
        assert_eq!(applied.len(), 1);
        assert!(
            waited >= hold - Duration::from_millis(50)
                && waited < hold + Duration::from_millis(900),
            "{waited:?}"
        );
    }

    #[test]
    fn migration_url_is_used_when_set() {
        let app = PgTestDb::create();
        let privileged = PgTestDb::create();
        let config = Config::from_vars([
            ("DATABASE_URL", app.url.as_str()),
            ("DATABASE_MIGRATION_URL", privileged.url.as_str()),
            ("DATABASE_POOL_MAX_SIZE", "2"),
        ])
        .unwrap();
        let db = Database::connect(&config).unwrap();
        let has_users = |url: &str| {
            let mut c = PgConnection::establish(url).unwrap();
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "to_regclass('users') IS NOT NULL",
            ))
            .get_result::<bool>(&mut c)
            .unwrap()
        };
        assert!(
            has_users(&privileged.url),
            "migrated through DATABASE_MIGRATION_URL"
        );
        assert!(!has_users(&app.url), "not through DATABASE_URL");
        drop(db);
    }

    #[test]
    fn waiting_for_the_migration_lock_is_bounded() {
        let pg = PgTestDb::create();
        let mut holder = PgConnection::establish(&pg.url).unwrap();
        diesel::sql_query("SET application_name = 'lock_holder'")
            .execute(&mut holder)
            .unwrap();
        let holder_pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "pg_backend_pid()",
        ))
        .get_result(&mut holder)
        .unwrap();
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::Bool>("pg_try_advisory_lock(")
                .bind::<diesel::sql_types::BigInt, _>(migrate::LOCK_KEY)
                .sql(")"),
        )
        .get_result::<bool>(&mut holder)
        .unwrap();
        let config = Config::from_vars([
            ("DATABASE_URL", pg.url.as_str()),
            ("DATABASE_STARTUP_WAIT_MS", "600"),
            ("DATABASE_POOL_MAX_SIZE", "1"),
        ])
        .unwrap();
        let start = Instant::now();
        let err = Database::connect(&config).map(|_| ()).unwrap_err();
        let waited = start.elapsed();
        assert!(matches!(err, Error::Migration { .. }), "{err:?}");
        assert!(err.to_string().contains("held the migration lock"), "{err}");
        assert!(
            matches!(&err, Error::Migration(MigrateError::LockTimeout { limit, key, holder })
                if *limit == Duration::from_millis(600) && *key == migrate::LOCK_KEY
                    && holder.contains(&format!("held by pid {holder_pid} "))
                    && holder.contains("application_name \"lock_holder\"")),
            "{err:?}"
        );
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        // Once the holder lets go, start-up succeeds.
        drop(holder);
        Database::connect(&config).unwrap();
    }
}

// ---- 8 processes starting at once ----

const CHILD_URL: &str = "TASKSTORE_TEST_MIGRATION_CHILD_URL";
const CHILD_START_AT: &str = "TASKSTORE_TEST_MIGRATION_CHILD_START_AT_MS";
const PROCESSES: usize = 8;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Child mode of `eight_processes_start_at_once_...`: does nothing unless the parent set
/// `TASKSTORE_TEST_MIGRATION_CHILD_URL`; then starts up like an application instance.
#[test]
fn concurrent_start_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("taskstore=info")
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .try_init();
    if let Some(at) = std::env::var(CHILD_START_AT)
        .ok()
        .and_then(|v| v.parse::<u128>().ok())
    {
        let now = now_ms();
        if at > now {
            std::thread::sleep(Duration::from_millis((at - now) as u64));
        }
    }
    let config = Config::from_vars([
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "1"),
    ])
    .unwrap();
    match Database::connect(&config) {
        Ok(db) => {
            println!("CHILD STARTED pid={}", std::process::id());
            drop(db);
        }
        Err(e) => {
            println!("CHILD FAILED pid={}: {e}", std::process::id());
            std::process::exit(1);
        }
    }
}

#[test]
fn postgres_eight_processes_start_at_once_and_apply_each_migration_once() {
    let pg = PgTestDb::create();
    let exe = std::env::current_exe().unwrap();
    let start_at = now_ms() + 1500;
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_start_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, &pg.url)
                .env(CHILD_START_AT, start_at.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a child process")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut started = 0;
    let mut applied_lines = 0;
    let mut waited = 0;
    for (i, out) in outputs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD STARTED"),
            "child {i} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        started += 1;
        applied_lines += stdout.matches("migration applied").count();
        waited += stdout.matches("took the migration lock").count();
    }
    let mut conn = PgConnection::establish(&pg.url).unwrap();
    let count = |conn: &mut PgConnection, table: &str| -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        // Test-owned, constant table names.
        diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result::<N>(conn)
            .unwrap()
            .n
    };
    let rows = count(&mut conn, "__diesel_schema_migrations");
    let distinct: i64 = {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(DISTINCT version) AS n FROM __diesel_schema_migrations")
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
    };
    let checksums = count(&mut conn, "taskstore_migration_checksums");
    let embedded = {
        let config = Config::from_vars([("DATABASE_URL", pg.url.as_str())])
            .unwrap()
            .with_migrate_on_startup(false);
        let mut conn = migrate::connect(&config).unwrap();
        let status = migrate::status(&mut conn).unwrap();
        assert!(status.is_current(), "{status:?}");
        status.applied.len()
    };
    eprintln!(
        "CONCURRENT START RESULT: processes={PROCESSES} started={started} \
         embedded_migrations={embedded} diesel_rows={rows} checksum_rows={checksums} \
         'migration applied' log lines={applied_lines} processes that waited for the lock={waited}"
    );
    assert_eq!(started, PROCESSES);
    assert_eq!(rows, embedded as i64);
    assert_eq!(distinct, rows);
    assert_eq!(checksums, embedded as i64);
    assert_eq!(
        applied_lines, embedded,
        "each migration applied exactly once"
    );
}
