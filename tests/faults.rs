//! Fault tests: what callers see when the server freezes, is down at start-up, restarts, loses
//! a backend, or refuses us for good. Each test runs on its own throw-away cluster (never the
//! shared server), with small deadlines so that the whole file takes seconds.
//!
//! Figures worth quoting are printed with `eprintln!` under a `FAULT-FIGURE` label; run with
//! `cargo test --test faults -- --nocapture 2>&1 | grep FAULT-FIGURE` to collect them.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, wait_for};
use diesel::prelude::*;
use taskstore::{Config, ConnectFailure, Database, DbConnection, Error};

/// `DATABASE_ACQUIRE_TIMEOUT_MS` for every test here.
const ACQUIRE: Duration = Duration::from_millis(500);
/// What the specification allows beyond the acquire deadline.
const MARGIN: Duration = Duration::from_millis(250);

fn config(url: &str, extra: &[(&str, &str)]) -> Config {
    let acquire = ACQUIRE.as_millis().to_string();
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.into()),
        ("DATABASE_ACQUIRE_TIMEOUT_MS".into(), acquire),
        ("DATABASE_CONNECT_TIMEOUT_MS".into(), "2000".into()),
        ("DATABASE_STARTUP_WAIT_MS".into(), "3000".into()),
        // Connections are what these tests are about; the schema is not needed.
        ("DATABASE_MIGRATE_ON_STARTUP".into(), "false".into()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    Config::from_vars(vars).expect("fault test configuration")
}

fn connect(url: &str, extra: &[(&str, &str)]) -> Database {
    common::init_tracing();
    Database::connect(&config(url, extra)).expect("connect to the throw-away cluster")
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The backend pid behind a checked-out connection: one round trip.
fn backend_pid(conn: &mut DbConnection) -> taskstore::Result<i32> {
    match conn {
        DbConnection::Postgres(pg) => Ok(diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Integer,
        >("pg_backend_pid()"))
        .get_result(pg)?),
        DbConnection::Sqlite(_) => unreachable!("fault tests run on PostgreSQL"),
    }
}

/// One query through `Database::run`, which discards a connection that lost its server.
fn query(db: &Database) -> taskstore::Result<i32> {
    db.run(backend_pid)
}

/// Opens `n` connections at once (each answering a query) and returns them to the pool.
fn warm(db: &Database, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = db.conn().expect("warm-up checkout");
        backend_pid(&mut c).expect("warm-up query");
        held.push(c);
    }
    drop(held);
    assert!(
        wait_for(Duration::from_secs(5), || db.pool_state().idle as usize
            >= n),
        "pool did not warm up: {:?}",
        db.pool_state()
    );
}

fn assert_within_deadline(what: &str, elapsed: Duration) {
    let overshoot = elapsed.saturating_sub(ACQUIRE);
    eprintln!(
        "FAULT-FIGURE {what}: conn() failed after {} ms = acquire timeout {} ms + overshoot {} ms",
        ms(elapsed),
        ms(ACQUIRE),
        ms(overshoot)
    );
    assert!(
        elapsed <= ACQUIRE + MARGIN,
        "{what}: conn() took {elapsed:?}, more than the acquire timeout {ACQUIRE:?} + {MARGIN:?}"
    );
}

/// A frozen server (SIGSTOP on the postmaster and every backend) answers nothing: TCP
/// connections stay open, the kernel still completes handshakes, no byte comes back. With
/// validation on every checkout, the liveness check runs under the watchdog and the caller
/// gets `Unavailable` at the deadline.
#[test]
fn frozen_server_with_a_warm_pool_fails_within_the_deadline() {
    let cluster = Cluster::start(&[]);
    let db = connect(
        &cluster.url(),
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_POOL_MIN_IDLE", "2"),
            ("DATABASE_VALIDATE_IDLE_MS", "0"),
        ],
    );
    warm(&db, 2);
    cluster.freeze();

    for round in 1..=2 {
        let (result, elapsed) = timed(|| db.conn());
        let err = result.expect_err("a frozen server cannot hand out a live connection");
        assert_within_deadline(&format!("frozen server, warm pool, call {round}"), elapsed);
        assert!(
            matches!(
                err,
                Error::Unavailable {
                    kind: ConnectFailure::Timeout,
                    ..
                }
            ),
            "a frozen server is unavailable, not an exhausted pool: {err}"
        );
    }
    let stats = db.stats();
    assert_eq!(
        (
            stats.timeouts,
            stats.permanent_failures,
            stats.retries_exhausted
        ),
        (2, 0, 0),
        "both calls ran into the deadline: {stats:?}"
    );

    cluster.thaw();
    assert!(
        wait_for(Duration::from_secs(10), || query(&db).is_ok()),
        "the pool recovers once the server runs again: {:?}",
        query(&db)
    );
}

/// Two pools on one frozen server: one that must open a new connection (the connect hangs:
/// the kernel accepts, the frozen postmaster never answers the startup packet) and one whose
/// connections are all held by callers. Both callers get a typed error at the deadline:
/// `Unavailable` for the first, `PoolTimeout` (exhaustion) for the second.
#[test]
fn frozen_server_with_a_cold_or_exhausted_pool_fails_within_the_deadline() {
    let cluster = Cluster::start(&[]);
    let extra = [
        ("DATABASE_POOL_MAX_SIZE", "2"),
        ("DATABASE_POOL_MIN_IDLE", "0"),
        ("DATABASE_VALIDATE_IDLE_MS", "0"),
    ];
    let cold = connect(&cluster.url(), &extra);
    let full = connect(&cluster.url(), &extra);
    let mut cold_held = cold.conn().expect("checkout");
    backend_pid(&mut cold_held).expect("query");
    let mut full_held = (
        full.conn().expect("checkout"),
        full.conn().expect("checkout"),
    );
    backend_pid(&mut full_held.0).expect("query");
    backend_pid(&mut full_held.1).expect("query");
    cluster.freeze();

    // The first call starts a connect that hangs; the second finds it still pending.
    for round in 1..=2 {
        let (result, elapsed) = timed(|| cold.conn());
        let err = result.expect_err("no connection can be opened on a frozen server");
        assert_within_deadline(&format!("frozen server, cold pool, call {round}"), elapsed);
        assert!(
            matches!(err, Error::Unavailable { .. }),
            "a pool that could still grow but cannot connect is unavailable: {err}"
        );
    }

    let (result, elapsed) = timed(|| full.conn());
    let err = result.expect_err("every connection is held");
    assert_within_deadline("frozen server, exhausted pool", elapsed);
    assert!(
        matches!(err, Error::PoolTimeout { .. }),
        "a pool whose connections are all held is exhausted: {err}"
    );
    assert_eq!(cold.stats().timeouts, 2, "{:?}", cold.stats());
    assert_eq!(full.stats().timeouts, 1, "{:?}", full.stats());

    cluster.thaw();
    drop(cold_held);
    drop(full_held);
    assert!(
        wait_for(Duration::from_secs(10), || query(&cold).is_ok()),
        "the pool recovers once the server runs again: {:?}",
        query(&cold)
    );
}

/// Start-up against a server that is down: `Database::connect` waits
/// `DATABASE_STARTUP_WAIT_MS`, then fails with `Unavailable` and says what it waited for.
#[test]
fn server_down_at_start_up_fails_after_the_startup_wait() {
    let cluster = Cluster::start(&[]);
    cluster.stop();
    common::init_tracing();
    let wait = Duration::from_millis(2000);
    let config = config(&cluster.url(), &[("DATABASE_STARTUP_WAIT_MS", "2000")]);
    let (result, elapsed) = timed(|| Database::connect(&config));
    let err = result.expect_err("nothing listens");
    eprintln!(
        "FAULT-FIGURE server down at start-up: connect failed after {} ms (DATABASE_STARTUP_WAIT_MS {} ms)",
        ms(elapsed),
        ms(wait)
    );
    assert!(
        elapsed >= wait - Duration::from_millis(100) && elapsed <= wait + MARGIN * 2,
        "waited {elapsed:?} for a {wait:?} start-up wait"
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Refused,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    for needle in ["DATABASE_STARTUP_WAIT_MS", "refused", "DATABASE_URL"] {
        assert!(text.contains(needle), "the message names {needle}: {text}");
    }
}

/// A server that comes up while start-up waits: `Database::connect` succeeds as soon as it
/// accepts connections.
#[test]
fn server_started_during_the_startup_wait_is_used() {
    let cluster = Cluster::start(&[]);
    cluster.stop();
    common::init_tracing();
    let config = config(&cluster.url(), &[("DATABASE_STARTUP_WAIT_MS", "20000")]);
    let delay = Duration::from_millis(700);
    let (result, elapsed) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(delay);
            cluster.pg_ctl_start();
        });
        timed(|| Database::connect(&config))
    });
    let db = result.expect("the server came up within the start-up wait");
    eprintln!(
        "FAULT-FIGURE server started during the start-up wait: connect returned after {} ms (server start began at {} ms)",
        ms(elapsed),
        ms(delay)
    );
    assert!(
        elapsed >= delay,
        "connect waited for the server: {elapsed:?}"
    );
    query(&db).expect("the new database answers");
}

/// `pg_ctl restart -m fast` under a warm pool: every pooled connection is dead afterwards.
/// The same `Database` serves the next calls; none of them sees the dead connections (they
/// are noticed at checkout: the server's goodbye and FIN are waiting on their sockets).
#[test]
fn restart_under_a_warm_pool_is_invisible_to_callers() {
    let cluster = Cluster::start(&[]);
    let db = connect(
        &cluster.url(),
        &[
            ("DATABASE_POOL_MAX_SIZE", "4"),
            ("DATABASE_POOL_MIN_IDLE", "2"),
        ],
    );
    warm(&db, 4);
    let before: Vec<i32> = (0..4).map(|_| query(&db).expect("query")).collect();

    // A quiet restart: nobody calls while the server is down.
    cluster.stop();
    cluster.pg_ctl_start();
    let back = Instant::now();
    let first = query(&db);
    let recovery = back.elapsed();
    eprintln!(
        "FAULT-FIGURE restart (quiet): first query succeeded {} ms after the server accepted again ({} µs)",
        ms(recovery),
        recovery.as_micros()
    );
    let pid = first.expect("the first call after a restart succeeds");
    assert!(!before.contains(&pid), "a new backend serves it");
    for _ in 0..20 {
        query(&db).expect("calls after a restart succeed");
    }
    let concurrent: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| query(&db))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        concurrent.iter().all(Result::is_ok),
        "concurrent calls after a restart: {concurrent:?}"
    );

    // A busy restart: callers during the outage get a typed error within the deadline; the
    // first call after the server is back succeeds.
    cluster.stop();
    for _ in 0..2 {
        let (result, elapsed) = timed(|| query(&db));
        let err = result.expect_err("the server is down");
        assert!(
            matches!(err, Error::Unavailable { .. }),
            "a stopped server is unavailable: {err}"
        );
        assert!(
            elapsed <= ACQUIRE + MARGIN,
            "failed within the deadline: {elapsed:?}"
        );
    }
    cluster.pg_ctl_start();
    let back = Instant::now();
    let mut failures = Vec::new();
    loop {
        match query(&db) {
            Ok(_) => break,
            Err(e) => failures.push(e.to_string()),
        }
        assert!(back.elapsed() < Duration::from_secs(10), "{failures:?}");
    }
    let recovery = back.elapsed();
    eprintln!(
        "FAULT-FIGURE restart (callers during the outage): first query succeeded {} ms after the server accepted again; failed calls after it was back: {}",
        ms(recovery),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "no caller fails once the server is back: {failures:?}"
    );
    assert!(
        recovery < ACQUIRE,
        "recovered within one acquire deadline: {recovery:?}"
    );
}

#[derive(QueryableByName)]
struct Killed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    killed: bool,
}

/// A backend killed by an administrator (`pg_terminate_backend`): the next checkout gets a
/// working connection, whichever connection the pool would have handed out.
#[test]
fn killed_backend_is_not_handed_out() {
    let cluster = Cluster::start(&[]);
    let db = connect(
        &cluster.url(),
        &[
            ("DATABASE_POOL_MAX_SIZE", "3"),
            ("DATABASE_POOL_MIN_IDLE", "2"),
        ],
    );
    warm(&db, 2);
    let mut admin = PgConnection::establish(&cluster.url()).expect("admin connection");
    for round in 0..3 {
        // The connection just returned is the one the pool hands out next (r2d2 is LIFO).
        let victim = query(&db).expect("query");
        let killed: Killed = diesel::sql_query("SELECT pg_terminate_backend($1, 5000) AS killed")
            .bind::<diesel::sql_types::Integer, _>(victim)
            .get_result(&mut admin)
            .expect("pg_terminate_backend");
        assert!(killed.killed, "round {round}: backend {victim} terminated");
        let next = query(&db).expect("the next checkout works");
        assert_ne!(
            next, victim,
            "round {round}: the killed backend was not reused"
        );
    }
    assert!(db.stats().broken_discarded >= 3, "{:?}", db.stats());
}

/// Permanent errors fail fast and are never retried: a wrong password and an unknown
/// database, at start-up and on a running pool.
#[test]
fn permanent_errors_fail_fast_without_retries() {
    let cluster = Cluster::start_scram(&[]);
    cluster.psql("postgres", "CREATE ROLE app LOGIN PASSWORD 'right-Pw-1'");
    cluster.psql("postgres", "CREATE DATABASE victim OWNER app");
    let url = |password: &str, db: &str| {
        format!("postgres://app:{password}@127.0.0.1:{}/{db}", cluster.port)
    };
    common::init_tracing();
    let fast = Duration::from_millis(250);

    // At start-up, with a 3 s start-up wait.
    for (u, want) in [
        (url("wrong-Pw-2", "victim"), ConnectFailure::Authentication),
        (
            url("right-Pw-1", "nosuchdb"),
            ConnectFailure::UnknownDatabase,
        ),
    ] {
        let (result, elapsed) = timed(|| Database::connect(&config(&u, &[])));
        let err = result.expect_err("refused");
        eprintln!(
            "FAULT-FIGURE permanent error at start-up ({want}): failed after {} ms (start-up wait 3000 ms)",
            ms(elapsed)
        );
        assert!(
            matches!(err, Error::Unavailable { kind, .. } if kind == want),
            "{want}: {err}"
        );
        assert!(elapsed < fast, "{want}: failed fast, not after {elapsed:?}");
    }

    // On a running pool: the database disappears, then the password changes.
    let db = connect(
        &url("right-Pw-1", "victim"),
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_POOL_MIN_IDLE", "1"),
        ],
    );
    query(&db).expect("query");
    cluster.psql("postgres", "DROP DATABASE victim WITH (FORCE)");
    for _ in 0..2 {
        let (result, elapsed) = timed(|| db.conn().map(drop));
        let err = result.expect_err("the database is gone");
        eprintln!(
            "FAULT-FIGURE permanent error on a running pool (unknown database): failed after {} ms",
            ms(elapsed)
        );
        assert!(
            matches!(
                err,
                Error::Unavailable {
                    kind: ConnectFailure::UnknownDatabase,
                    ..
                }
            ),
            "{err}"
        );
        assert!(elapsed < fast, "failed fast, not after {elapsed:?}");
    }
    assert_eq!(db.stats().retries, 0, "{:?}", db.stats());
    let stats = db.stats();
    assert_eq!(
        (stats.permanent_failures, stats.timeouts),
        (2, 0),
        "permanent failures are not timeouts: {stats:?}"
    );

    cluster.psql("postgres", "CREATE DATABASE victim OWNER app");
    assert!(
        wait_for(Duration::from_secs(5), || query(&db).is_ok()),
        "the pool recovers once the database exists again"
    );
    cluster.psql("postgres", "ALTER ROLE app PASSWORD 'rotated-Pw-3'");
    cluster.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = 'app'",
    );
    let (result, elapsed) = timed(|| query(&db));
    let err = result.expect_err("the password is no longer accepted");
    eprintln!(
        "FAULT-FIGURE permanent error on a running pool (authentication): failed after {} ms",
        ms(elapsed)
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Authentication,
                ..
            }
        ),
        "{err}"
    );
    assert!(elapsed < fast, "failed fast, not after {elapsed:?}");
    assert_eq!(db.stats().retries, 0, "{:?}", db.stats());
    assert_eq!(db.stats().timeouts, 0, "{:?}", db.stats());
}

/// A stopped server refuses connections, a transient error: the caller retries
/// `DATABASE_RETRY_ATTEMPTS` times on the crate's backoff and, with the deadline still far,
/// gets `Unavailable` once the retries are spent — counted as exhausted retries, not as a
/// timeout.
#[test]
fn refused_connections_exhaust_the_retries_before_the_deadline() {
    let cluster = Cluster::start(&[]);
    let db = connect(
        &cluster.url(),
        &[
            ("DATABASE_POOL_MIN_IDLE", "0"),
            ("DATABASE_RETRY_ATTEMPTS", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "10000"),
        ],
    );
    query(&db).expect("query");
    cluster.stop();
    let (result, elapsed) = timed(|| db.conn().map(drop));
    let err = result.expect_err("nothing listens");
    eprintln!(
        "FAULT-FIGURE refused connections, 1 retry, 10 s deadline: failed after {} ms",
        ms(elapsed)
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                kind: ConnectFailure::Refused,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "gave up after the retries, not at the deadline: {elapsed:?}"
    );
    let stats = db.stats();
    assert_eq!(
        (stats.retries, stats.retries_exhausted, stats.timeouts),
        (1, 1, 0),
        "{stats:?}"
    );
}
