//! Lock-bounded migrations (issue 11 item 1), on PostgreSQL: a migration that alters `tasks`
//! while a long transaction has read it never makes other sessions queue behind its lock
//! request for longer than `DATABASE_MIGRATION_LOCK_TIMEOUT_MS` + 250 ms; it completes once the
//! long transaction ends, or fails at `DATABASE_STARTUP_WAIT_MS` naming the session that held
//! the table, with a log line per wait.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PgTestDb, factories};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::migrate::{self, MigrateError, Migrator};
use taskstore::{Config, Database, Error};

const LOCK_TIMEOUT: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_millis(250);
const WORKERS: usize = 8;

/// A migration directory: the product's PostgreSQL migrations plus one that alters `tasks`.
fn directory_with_alter() -> tempfile::TempDir {
    let dir = common::migrations::product_copy("postgres");
    let extra = dir.path().join("2099-01-01-000001_add_tasks_note");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("up.sql"),
        "ALTER TABLE tasks ADD COLUMN note text;\n",
    )
    .unwrap();
    std::fs::write(
        extra.join("down.sql"),
        "ALTER TABLE tasks DROP COLUMN note;\n",
    )
    .unwrap();
    dir
}

/// The shared server's Unix-socket directory.
fn socket_dir() -> String {
    #[derive(QueryableByName)]
    struct Dirs {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dirs: String,
    }
    let mut conn = PgConnection::establish(&common::pg_admin_url()).unwrap();
    let dirs: Dirs = diesel::sql_query("SELECT current_setting('unix_socket_directories') AS dirs")
        .get_result(&mut conn)
        .unwrap();
    dirs.dirs
        .split(',')
        .map(str::trim)
        .find(|d| d.starts_with('/'))
        .expect("the shared server listens on a Unix socket")
        .to_owned()
}

struct Setup {
    pg: PgTestDb,
    config: Config,
    task_ids: Vec<uuid::Uuid>,
}

fn setup(startup_wait: Duration) -> Setup {
    common::init_tracing();
    let pg = PgTestDb::create();
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.clone()),
        ("DATABASE_POOL_MAX_SIZE", "2".into()),
        (
            "DATABASE_STARTUP_WAIT_MS",
            startup_wait.as_millis().to_string(),
        ),
        (
            "DATABASE_MIGRATION_LOCK_TIMEOUT_MS",
            LOCK_TIMEOUT.as_millis().to_string(),
        ),
    ])
    .unwrap();
    let db = Database::connect(&config).unwrap();
    let owner = factories::user(&db);
    let task_ids = factories::tasks(&db, owner.id, 16)
        .into_iter()
        .map(|t| t.id.0)
        .collect();
    Setup {
        pg,
        config,
        task_ids,
    }
}

/// `WORKERS` sessions (half over TCP, half over the Unix socket) reading and updating tasks
/// until `stop`; each returns the longest any one of its statements took.
fn start_workers(
    setup: &Setup,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(Duration, u64)>> {
    let socket = socket_dir().replace('/', "%2F");
    (0..WORKERS)
        .map(|i| {
            let url = if i % 2 == 0 {
                setup.pg.url.clone()
            } else {
                format!("postgres://postgres@{socket}/{}", setup.pg.name)
            };
            let id = setup.task_ids[i % setup.task_ids.len()];
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                conn.batch_execute("SET application_name = 'worker'")
                    .unwrap();
                let (mut worst, mut statements) = (Duration::ZERO, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    if i % 2 == 0 {
                        diesel::sql_query("SELECT count(*) FROM tasks")
                            .execute(&mut conn)
                            .unwrap();
                    } else {
                        diesel::sql_query(
                            "UPDATE tasks SET priority = 1 + (priority % 5) WHERE id = $1",
                        )
                        .bind::<diesel::sql_types::Uuid, _>(id)
                        .execute(&mut conn)
                        .unwrap();
                    }
                    worst = worst.max(start.elapsed());
                    statements += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                (worst, statements)
            })
        })
        .collect()
}

/// A session that has read `tasks` in a transaction it keeps open.
fn long_reader(url: &str) -> (PgConnection, i32) {
    let mut conn = PgConnection::establish(url).unwrap();
    conn.batch_execute("SET application_name = 'long_reader'; BEGIN; SELECT count(*) FROM tasks")
        .unwrap();
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(&mut conn)
        .unwrap()
        .pid;
    (conn, pid)
}

fn stop_workers(
    stop: &AtomicBool,
    workers: Vec<std::thread::JoinHandle<(Duration, u64)>>,
) -> (Duration, u64) {
    stop.store(true, Ordering::Relaxed);
    workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .fold((Duration::ZERO, 0), |(w, n), (worst, count)| {
            (w.max(worst), n + count)
        })
}

/// What the subscriber wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn with_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    let out = Capture::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    (
        value,
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
    )
}

#[test]
fn postgres_alter_behind_a_long_read_blocks_no_one_and_completes_when_it_ends() {
    let setup = setup(Duration::from_secs(30));
    let dir = directory_with_alter();
    let (mut reader, _) = long_reader(&setup.pg.url);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_workers(&setup, &stop);
    let hold = Duration::from_secs(3);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(hold);
        reader.batch_execute("COMMIT").unwrap();
        reader
    });
    let start = Instant::now();
    let mut conn = migrate::connect(&setup.config).unwrap();
    let (applied, log) = with_log(|| {
        Migrator::from_config(&setup.config)
            .directory(dir.path())
            .run(&mut conn)
    });
    let took = start.elapsed();
    releaser.join().unwrap();
    // Let the workers run a little after the ALTER too.
    std::thread::sleep(Duration::from_millis(200));
    let (worst, statements) = stop_workers(&stop, workers);
    let applied = applied.unwrap();
    println!(
        "migration took {took:?} behind a {hold:?} read; worst wait of {WORKERS} other \
         sessions over {statements} statements: {worst:?} (lock timeout {LOCK_TIMEOUT:?})"
    );
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(
        applied[0].migration.name,
        "2099-01-01-000001_add_tasks_note"
    );
    assert!(
        took >= hold,
        "the ALTER cannot finish while the read is open: {took:?}"
    );
    assert!(statements > 100, "the workers kept working: {statements}");
    assert!(
        worst <= LOCK_TIMEOUT + SLACK,
        "a session waited {worst:?}, more than the lock timeout {LOCK_TIMEOUT:?} + {SLACK:?}"
    );
    let waits = log.matches("re-trying").count();
    assert!(waits >= 2, "one log line per wait:\n{log}");
    assert!(
        log.contains("long_reader"),
        "the log names the holder:\n{log}"
    );
    // The column is there.
    let mut check = PgConnection::establish(&setup.pg.url).unwrap();
    check
        .batch_execute("SELECT note FROM tasks LIMIT 1")
        .unwrap();
}

#[test]
fn postgres_alter_behind_a_read_that_never_ends_fails_at_the_startup_wait_with_the_holder() {
    let wait = Duration::from_secs(3);
    let setup = setup(wait);
    let dir = directory_with_alter();
    let (_reader, reader_pid) = long_reader(&setup.pg.url);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_workers(&setup, &stop);
    let start = Instant::now();
    let mut conn = migrate::connect(&setup.config).unwrap();
    let (outcome, log) = with_log(|| {
        Migrator::from_config(&setup.config)
            .directory(dir.path())
            .run(&mut conn)
    });
    let took = start.elapsed();
    let (worst, statements) = stop_workers(&stop, workers);
    println!(
        "migration gave up after {took:?}; worst wait of {WORKERS} other sessions over \
         {statements} statements: {worst:?}"
    );
    let err = outcome.unwrap_err();
    let Error::Migration(MigrateError::StepLockTimeout {
        attempts, holders, ..
    }) = &err
    else {
        panic!("{err:?}")
    };
    assert!(*attempts >= 2, "{err}");
    // After the first timeout a second connection watches pg_blocking_pids.
    assert!(holders.contains("pg_blocking_pids"), "{err}");
    assert!(holders.contains(&format!("pid {reader_pid} ")), "{err}");
    assert!(holders.contains("idle in transaction"), "{err}");
    assert!(holders.contains("\"long_reader\""), "{err}");
    assert!(holders.contains("transaction open"), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("DATABASE_STARTUP_WAIT_MS (3000 ms)"),
        "{text}"
    );
    assert!(text.contains("pg_terminate_backend"), "{text}");
    assert_eq!(
        log.matches("re-trying").count(),
        *attempts as usize,
        "one log line per wait:\n{log}"
    );
    assert!(
        took >= wait && took <= wait + LOCK_TIMEOUT + SLACK,
        "gave up at the start-up wait: {took:?}"
    );
    assert!(worst <= LOCK_TIMEOUT + SLACK, "a session waited {worst:?}");
    // Nothing of the step stayed: the column is not there, the migration is pending.
    let mut check = PgConnection::establish(&setup.pg.url).unwrap();
    assert!(
        check
            .batch_execute("SELECT note FROM tasks LIMIT 1")
            .is_err()
    );
}
