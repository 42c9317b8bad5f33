//! Non-transactional migration steps (issue 11 item 3): a migration whose `metadata.toml`
//! says `run_in_transaction = false` runs `CREATE INDEX CONCURRENTLY` (PostgreSQL), still
//! serialised by the advisory lock when 8 instances start at once; a concurrent build that
//! failed half-way leaves an INVALID index, which the next start drops and builds again. On
//! SQLite such a step runs as written, inside the run's write transaction.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use common::{PgTestDb, factories};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::migrate::{self, MigrateError, Migrator};
use taskstore::{Config, Database, Error};

/// The product's migrations for `backend` plus one non-transactional step with `up`/`down`.
fn directory(backend: &str, up: &str, down: &str) -> tempfile::TempDir {
    let dir = common::migrations::product_copy(backend);
    let extra = dir.path().join("2099-01-01-000001_index_tasks_title");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("up.sql"), up).unwrap();
    std::fs::write(extra.join("down.sql"), down).unwrap();
    std::fs::write(extra.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    dir
}

const STEP: &str = "2099-01-01-000001_index_tasks_title";

/// The names of the product's migrations for `backend`, in order, then [`STEP`].
fn all_steps(backend: &str) -> Vec<String> {
    let product = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(product)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names.push(STEP.to_owned());
    names
}

#[derive(QueryableByName, Debug, PartialEq)]
struct IndexState {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    valid: bool,
}

/// `Some(valid)` when the index exists.
fn index_state(url: &str, name: &str) -> Option<bool> {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(
        "SELECT i.indisvalid AS valid FROM pg_index i \
          WHERE i.indexrelid = to_regclass($1)",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .get_result::<IndexState>(&mut conn)
    .optional()
    .unwrap()
    .map(|s| s.valid)
}

#[test]
fn postgres_create_index_concurrently_runs_once_with_eight_starters_at_once() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let dir = directory(
        "postgres",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_idx ON tasks (title);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS tasks_title_idx;\n",
    );
    let config = Config::from_vars([("DATABASE_URL", pg.url.as_str())]).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let starters: Vec<_> = (0..8)
        .map(|_| {
            let (config, barrier, dir) = (config.clone(), barrier.clone(), dir.path().to_owned());
            std::thread::spawn(move || {
                let mut conn = migrate::connect(&config).unwrap();
                barrier.wait();
                Migrator::from_config(&config)
                    .directory(dir)
                    .run(&mut conn)
                    .unwrap()
            })
        })
        .collect();
    let mut applied: Vec<String> = starters
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .map(|a| a.migration.name)
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        all_steps("postgres"),
        "each migration applied exactly once by 8 starters"
    );
    assert_eq!(index_state(&pg.url, "tasks_title_idx"), Some(true));

    // Down and up again, both outside a transaction.
    let mut conn = migrate::connect(&config).unwrap();
    let migrator = Migrator::from_config(&config).directory(dir.path());
    let reverted = migrator.revert(&mut conn, 1).unwrap();
    assert_eq!(reverted[0].name, STEP);
    assert_eq!(index_state(&pg.url, "tasks_title_idx"), None);
    assert_eq!(migrator.run(&mut conn).unwrap().len(), 1);
    assert_eq!(index_state(&pg.url, "tasks_title_idx"), Some(true));
}

#[test]
fn postgres_an_interrupted_concurrent_build_leaves_an_invalid_index_that_the_next_start_rebuilds() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_POOL_MAX_SIZE", "2"),
    ])
    .unwrap();
    let db = Database::connect(&config).unwrap();
    let owner = factories::user(&db);
    factories::task(&db, owner.id, "same title");
    let duplicate = factories::task(&db, owner.id, "same title");
    let dir = directory(
        "postgres",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_key ON tasks (title);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS tasks_title_key;\n",
    );
    let migrator = Migrator::from_config(&config).directory(dir.path());
    let mut conn = migrate::connect(&config).unwrap();

    // The build fails half-way (a unique violation): PostgreSQL keeps the index, INVALID.
    let err = migrator.run(&mut conn).unwrap_err();
    assert!(
        matches!(&err, Error::Migration(MigrateError::ApplyFailed { name, message, .. })
            if name == STEP && message.contains("could not create unique index")),
        "{err:?}"
    );
    assert_eq!(index_state(&pg.url, "tasks_title_key"), Some(false));
    // (With IF NOT EXISTS, a plain re-run would skip the broken index and record the step.)

    // The cause is fixed; the next start drops the invalid index and builds it again.
    let mut fix = PgConnection::establish(&pg.url).unwrap();
    diesel::sql_query("UPDATE tasks SET title = 'another title' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(duplicate.id.0)
        .execute(&mut fix)
        .unwrap();
    let applied = migrator.run(&mut conn).unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].migration.name, STEP);
    assert_eq!(index_state(&pg.url, "tasks_title_key"), Some(true));
    // And it enforces what it should.
    assert!(
        fix.batch_execute(
            "INSERT INTO tasks (id, user_id, title, created_at, updated_at) \
             SELECT gen_random_uuid(), user_id, 'another title', now(), now() FROM tasks LIMIT 1"
        )
        .is_err()
    );
    drop(db);
}

#[test]
fn sqlite_a_non_transactional_step_runs_as_written() {
    common::init_tracing();
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("t.db").display());
    let config = Config::from_vars([("DATABASE_URL", url.as_str())]).unwrap();
    let dir = directory(
        "sqlite",
        "CREATE INDEX IF NOT EXISTS tasks_title_idx ON tasks (title);\n",
        "DROP INDEX IF EXISTS tasks_title_idx;\n",
    );
    let mut conn = migrate::connect(&config).unwrap();
    let migrator = Migrator::from_config(&config).directory(dir.path());
    let applied = migrator.run(&mut conn).unwrap();
    let names: Vec<String> = applied.iter().map(|a| a.migration.name.clone()).collect();
    assert_eq!(names, all_steps("sqlite"));
    assert_eq!(sqlite_index_count(&mut conn), 1);
    migrator.revert(&mut conn, 1).unwrap();
    assert_eq!(sqlite_index_count(&mut conn), 0);
}

/// How many indexes named `tasks_title_idx` the SQLite database has.
fn sqlite_index_count(conn: &mut taskstore::DbConnection) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let taskstore::DbConnection::Sqlite(lite) = conn else {
        panic!("an SQLite connection")
    };
    diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master \
          WHERE type = 'index' AND name = 'tasks_title_idx'",
    )
    .get_result::<N>(lite)
    .unwrap()
    .n
}

/// A concurrent build waits for every transaction with an older snapshot; under the step's
/// lock timeout it is cancelled half-way, leaving an INVALID index. The re-try drops it and
/// builds again — with `IF NOT EXISTS`, re-running without that would record the step as done
/// over a broken index.
#[test]
fn postgres_a_concurrent_build_cancelled_by_the_lock_timeout_is_rebuilt_on_the_retry() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let config = Config::from_vars([
        ("DATABASE_URL", pg.url.as_str()),
        ("DATABASE_MIGRATION_LOCK_TIMEOUT_MS", "300"),
        ("DATABASE_STARTUP_WAIT_MS", "20000"),
    ])
    .unwrap();
    let mut conn = migrate::connect(&config).unwrap();
    migrate::run(&mut conn).unwrap();
    let dir = directory(
        "postgres",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_idx ON tasks (title);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS tasks_title_idx;\n",
    );
    // A transaction holding a snapshot, ended after 1.5 s.
    let mut reader = PgConnection::establish(&pg.url).unwrap();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM users")
        .unwrap();
    let hold = std::time::Duration::from_millis(1500);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(hold);
        reader.batch_execute("COMMIT").unwrap();
    });
    let start = std::time::Instant::now();
    let applied = Migrator::from_config(&config)
        .directory(dir.path())
        .run(&mut conn)
        .unwrap();
    let took = start.elapsed();
    releaser.join().unwrap();
    assert_eq!(applied.len(), 1);
    assert!(took >= hold, "the build waited for the snapshot: {took:?}");
    assert_eq!(index_state(&pg.url, "tasks_title_idx"), Some(true));
}

/// Two `CONCURRENTLY` statements in one `run_in_transaction = false` migration: PostgreSQL runs
/// them as one implicit transaction and refuses; the error says what to do, and nothing of the
/// step is recorded.
#[test]
fn postgres_two_concurrent_builds_in_one_non_transactional_step_fail_saying_what_to_do() {
    common::init_tracing();
    let pg = PgTestDb::create();
    let dir = directory(
        "postgres",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_idx ON tasks (title);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_priority_idx ON tasks (priority);\n",
        "SELECT 1;\n",
    );
    let config = Config::from_vars([("DATABASE_URL", pg.url.as_str())]).unwrap();
    let mut conn = migrate::connect(&config).unwrap();
    let err = Migrator::from_config(&config)
        .directory(dir.path())
        .run(&mut conn)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Migration(MigrateError::ApplyFailed { name, .. }) if name == STEP),
        "{err:?}"
    );
    assert!(
        text.contains("cannot run inside a transaction block")
            && text.contains(
                "a migration of its own whose metadata.toml says run_in_transaction = false"
            ),
        "{text}"
    );
    assert_eq!(index_state(&pg.url, "tasks_title_idx"), None, "{text}");
}
