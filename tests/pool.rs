//! Pool behaviour on both backends: connect, migrate, acquire, stats, exhaustion.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestDb};
use diesel::prelude::*;
use taskstore::Error;

backend_tests! {
    fn connects_migrates_and_answers(db: &TestDb) {
        let n: i64 = db
            .run(|c| Ok(taskstore::schema::users::table.count().get_result(c)?))
            .expect("users table exists after start-up migrations");
        assert_eq!(n, 0);
        let stats = db.stats();
        assert!(stats.acquisitions >= 1, "{stats:?}");
        assert!(stats.connections_created >= 1, "{stats:?}");
    }

    fn health_reports_latency_and_schema_version(db: &TestDb) {
        let h = db.health().expect("health");
        assert!(h.schema_version.is_some(), "{h:?}");
        assert!(h.latency > Duration::ZERO && h.latency < Duration::from_secs(5), "{h:?}");
        assert_eq!(h.pool.max_size, 4);
    }
}

fn exhausted(backend: Backend) {
    let db = TestDb::new(
        backend,
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "300"),
        ],
    );
    let a = db.conn().unwrap();
    let b = db.conn().unwrap();
    let start = Instant::now();
    let err = db.conn().unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_millis(300 + 250),
        "waited {waited:?}"
    );
    let text = err.to_string();
    assert!(text.contains("in use 2"), "{text}");
    drop((a, b));
    db.conn()
        .expect("a connection after the holders return theirs");
    assert_eq!(db.stats().timeouts, 1);
}

#[test]
fn sqlite_exhaustion() {
    exhausted(Backend::Sqlite);
}

#[test]
fn postgres_exhaustion() {
    exhausted(Backend::Postgres);
}

fn backpressure(backend: Backend) {
    let db = TestDb::new(
        backend,
        &[
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_POOL_MAX_WAITERS", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "2000"),
        ],
    );
    let held = db.conn().unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.conn().map(drop));
        // Let the first caller start waiting.
        assert!(common::cluster::wait_for(Duration::from_secs(2), || db
            .pool_state()
            .waiters
            == 1));
        let start = Instant::now();
        let err = db.conn().unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "failed fast: {:?}",
            start.elapsed()
        );
        assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
        assert!(
            err.to_string().contains("DATABASE_POOL_MAX_WAITERS"),
            "{err}"
        );
        drop(held);
        waiter
            .join()
            .unwrap()
            .expect("the queued caller gets the connection once it is returned");
    });
}

#[test]
fn sqlite_backpressure_fails_fast_beyond_max_waiters() {
    backpressure(Backend::Sqlite);
}

#[test]
fn postgres_backpressure_fails_fast_beyond_max_waiters() {
    backpressure(Backend::Postgres);
}

#[test]
fn connections_held_past_the_leak_threshold_are_counted() {
    let db = TestDb::new(Backend::Sqlite, &[("DATABASE_LEAK_THRESHOLD_MS", "50")]);
    let conn = db.conn().unwrap();
    assert!(
        conn.taken_at().file().ends_with("pool.rs"),
        "the leak report names the caller: {}",
        conn.taken_at()
    );
    std::thread::sleep(Duration::from_millis(80));
    drop(conn);
    drop(db.conn().unwrap());
    assert_eq!(db.stats().leaks, 1);
}

#[test]
fn sqlite_memory_databases_are_shared_by_the_pool_and_private_to_it() {
    let a = taskstore::Database::connect(
        &taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")]).unwrap(),
    )
    .unwrap();
    let b = taskstore::Database::connect(
        &taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")]).unwrap(),
    )
    .unwrap();
    // A row written through one connection of `a` is seen through another connection of `a`
    // (one shared in-memory database), and not through `b` (a different one).
    let mut c1 = a.conn().unwrap();
    let mut c2 = a.conn().unwrap();
    taskstore::repo::users::create(
        &mut c1,
        &taskstore::NewUser {
            email: "mem@example.com",
            password_hash: "h",
            first_name: None,
            last_name: None,
        },
    )
    .unwrap();
    assert_eq!(taskstore::repo::users::count(&mut c2).unwrap(), 1);
    assert_eq!(b.users().count().unwrap(), 0);
}

#[test]
fn reads_go_to_a_configured_replica() {
    // The "replica" is the same test database under a second pool: enough to show routing.
    let primary = TestDb::new(Backend::Postgres, &[]);
    let config = taskstore::Config::from_vars([
        ("DATABASE_URL", primary.url.as_str()),
        ("DATABASE_REPLICA_URLS", primary.url.as_str()),
        ("DATABASE_APPLICATION_NAME", "taskstore-replica-test"),
    ])
    .unwrap();
    let db = taskstore::Database::connect(&config).unwrap();
    let n: i64 = db
        .run_read(|c| Ok(taskstore::schema::users::table.count().get_result(c)?))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        db.stats().acquisitions,
        1,
        "the primary pool served only the start-up capacity check"
    );
}

/// Waiters are served in the order they arrived, and once they have waited
/// `taskstore::pool::OVERTAKE_BOUND` a caller that returns its connection and asks again at
/// once queues behind them instead of taking it back (no barging past the bound). A pool of
/// one makes every acquisition sequential, so the order recorded is the order served. (Before
/// the bound a returning caller may take its connection back: r2d2 alone lets it do so for
/// ever, and this test then fails, e.g. `[0, 8, 2, 3, 11, …]`.)
fn served_in_arrival_order(backend: Backend, threads: usize) {
    let db = TestDb::new(
        backend,
        &[
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "60000"),
        ],
    );
    let held = db.conn().unwrap();
    let served = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for i in 0..threads {
            let (db, served) = (&db, &served);
            s.spawn(move || {
                let conn = db.conn().expect("a queued caller gets a connection");
                served.lock().unwrap().push(i);
                drop(conn);
                // Straight back: r2d2 alone would hand this caller its own connection again.
                let again = db.conn().expect("the caller gets a connection again");
                served.lock().unwrap().push(threads + i);
                drop(again);
            });
            // Thread i is counted (and queued, under the same lock) before thread i + 1 starts.
            let end = Instant::now() + Duration::from_secs(30);
            while db.pool_state().waiters < i as u32 + 1 {
                assert!(Instant::now() < end, "thread {i} never started waiting");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // Every waiter has now waited past the bound: from here on nobody may overtake them.
        std::thread::sleep(taskstore::pool::OVERTAKE_BOUND + Duration::from_millis(5));
        drop(held);
    });
    let served = served.into_inner().unwrap();
    assert_eq!(served.len(), 2 * threads);
    assert_eq!(
        served[..threads],
        (0..threads).collect::<Vec<_>>(),
        "the first {threads} connections go to the waiters in arrival order: {served:?}"
    );
    assert_eq!(db.stats().timeouts, 0);
}

#[test]
fn sqlite_waiters_are_served_in_arrival_order_8_threads() {
    served_in_arrival_order(Backend::Sqlite, 8);
}

#[test]
fn sqlite_waiters_are_served_in_arrival_order_64_threads() {
    served_in_arrival_order(Backend::Sqlite, 64);
}

#[test]
fn postgres_waiters_are_served_in_arrival_order_8_threads() {
    served_in_arrival_order(Backend::Postgres, 8);
}

#[test]
fn postgres_waiters_are_served_in_arrival_order_64_threads() {
    served_in_arrival_order(Backend::Postgres, 64);
}
