//! Issue 13 item 2: a streaming replica (`pg_basebackup -R` into a second throw-away cluster,
//! see `common/replica.rs`). Reads of the repository go to the replica, writes never do, a
//! caller can read its own writes from the primary, a replica that lags beyond
//! `DATABASE_REPLICA_MAX_LAG_MS` or is stopped is skipped and reads fall back to the primary
//! with no failed read, and `health` (library and CLI) reports each replica's state and lag.
//!
//! The failover figures (`failover: ...` lines) are printed with
//! `cargo nextest run --test deploy_replica --no-capture -E 'test(failover)'`.

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cli_env::CliEnv;
use common::cluster::wait_for;
use common::replica::Replicated;
use diesel::prelude::*;
use taskstore::health::ReplicaState;
use taskstore::models::{NewTask, PageRequest, TaskFilter, TaskSort, UserId};
use taskstore::{Config, Database, DbErrorKind, Error};

#[derive(QueryableByName)]
struct InRecovery {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    r: bool,
}

fn in_recovery(conn: &mut taskstore::DbConnection) -> taskstore::Result<bool> {
    Ok(diesel::sql_query("SELECT pg_is_in_recovery() AS r")
        .get_result::<InRecovery>(conn)?
        .r)
}

/// A `Database` on the primary's `app` database with the replica as its one read replica.
fn connect(set: &Replicated, extra: &[(&str, &str)]) -> Database {
    common::init_tracing();
    let replica_url = format!(
        "postgres://postgres:not-a-secret-42@127.0.0.1:{}/app",
        set.replica.port
    );
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), set.primary.url_for("app")),
        ("DATABASE_REPLICA_URLS".to_owned(), replica_url),
        ("DATABASE_POOL_MAX_SIZE".to_owned(), "8".to_owned()),
        ("DATABASE_ACQUIRE_TIMEOUT_MS".to_owned(), "2000".to_owned()),
    ];
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    let db = Database::connect(&Config::from_vars(vars).expect("config")).expect("connect");
    set.wait_caught_up();
    db
}

fn new_task(db: &Database, owner: UserId, title: &str) -> taskstore::models::Task {
    db.tasks()
        .create(
            owner,
            &NewTask {
                title,
                ..NewTask::default()
            },
        )
        .expect("create task (a write, on the primary)")
}

fn list_len(db: &Database, owner: UserId) -> usize {
    db.tasks()
        .list(
            owner,
            &TaskFilter::default(),
            TaskSort::default(),
            &PageRequest::first(100),
        )
        .expect("list")
        .items
        .len()
}

#[test]
fn postgres_reads_go_to_the_replica_writes_to_the_primary_and_on_primary_reads_your_writes() {
    let set = Replicated::start("app");
    let db = connect(&set, &[("DATABASE_REPLICA_MAX_LAG_MS", "600000")]);

    // Routing of the raw read paths.
    assert!(
        db.run_read(in_recovery).unwrap(),
        "run_read is served by the replica"
    );
    assert!(
        in_recovery(&mut db.read_conn().unwrap()).unwrap(),
        "read_conn too"
    );
    assert!(
        !db.on_primary().run_read(in_recovery).unwrap(),
        "on_primary reads the primary"
    );
    assert!(!db.run(in_recovery).unwrap(), "run is the primary");
    assert!(!db.reads_on_primary() && db.on_primary().reads_on_primary());

    // A write sent to the replica fails with 25006: this is what a misrouted write would give.
    let misrouted = db
        .run_read(|c| Ok(diesel::sql_query("CREATE TABLE misrouted (x int)").execute(c)?))
        .unwrap_err();
    assert!(
        matches!(
            misrouted,
            Error::Database {
                kind: DbErrorKind::ReadOnlyTransaction,
                ..
            }
        ),
        "{misrouted:?}"
    );

    // Every write operation through the layer, while the replica is the only read target:
    // none fails (none reached the replica).
    let owner = common::factories::user(&db).id;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(new_task(&db, owner, &format!("t{i}")).id);
    }
    db.tasks().complete(owner, ids[0]).unwrap();
    db.tasks().reopen(owner, ids[0]).unwrap();
    db.tasks().complete_many(owner, &ids[1..3]).unwrap();
    db.tasks().delete(owner, ids[3]).unwrap();
    db.tasks().delete_many(owner, &ids[4..6]).unwrap();
    db.users()
        .set_active(owner, true)
        .expect("a user write through the layer");
    db.with_transaction(|c| Ok::<_, Error>(diesel::sql_query("SELECT 1").execute(c)?))
        .unwrap();
    assert!(
        !db.with_transaction(in_recovery).unwrap(),
        "transactions run on the primary"
    );
    set.wait_caught_up();

    // The repository's reads (get, list, stats, users) come from the replica: with replay
    // paused, a task written now is missing there, and present on the primary.
    assert_eq!(list_len(&db, owner), 17);
    set.pause_replay();
    let fresh = new_task(&db, owner, "written while the replica is paused");
    for _ in 0..5 {
        // Every read, not just one in a round: one replica means every read goes there.
        let err = db.tasks().get(owner, fresh.id).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(list_len(&db, owner), 17, "list from the replica");
        assert_eq!(
            db.tasks().stats(owner).unwrap().total,
            17,
            "stats from the replica"
        );
    }
    // Read-your-writes: the caller that just wrote reads from the primary.
    let primary = db.on_primary();
    assert_eq!(primary.tasks().get(owner, fresh.id).unwrap().id, fresh.id);
    assert_eq!(list_len(&primary, owner), 18);
    assert_eq!(primary.tasks().stats(owner).unwrap().total, 18);
    assert_eq!(primary.users().get(owner).unwrap().id, owner);
    let in_tx = db
        .with_transaction(|c| taskstore::repo::tasks::get(c, owner, fresh.id))
        .unwrap();
    assert_eq!(in_tx.id, fresh.id, "with_transaction reads its writes");

    // Once replayed, the replica serves the task too.
    set.resume_replay();
    set.wait_caught_up();
    assert_eq!(db.tasks().get(owner, fresh.id).unwrap().id, fresh.id);
}

#[test]
fn postgres_a_lagging_replica_is_skipped_and_reads_fall_back_to_the_primary() {
    let set = Replicated::start("app");
    let db = connect(&set, &[("DATABASE_REPLICA_MAX_LAG_MS", "300")]);
    let owner = common::factories::user(&db).id;
    set.wait_caught_up();
    assert!(db.run_read(in_recovery).unwrap());

    // An idle primary: the replica has replayed all it received, which is no lag, although its
    // last replayed commit grows old.
    std::thread::sleep(Duration::from_millis(1500));
    let h = db.health().unwrap();
    assert_eq!(h.replicas[0].state, ReplicaState::Up, "{:?}", h.replicas);
    assert!(
        db.run_read(in_recovery).unwrap(),
        "an idle primary is not lag"
    );

    set.pause_replay();
    let fresh = new_task(&db, owner, "behind");
    // Within one lag check (REPLICA_RECHECK, 1 s) the replica is found lagging and skipped.
    let start = Instant::now();
    let found = wait_for(Duration::from_secs(5), || {
        db.tasks().get(owner, fresh.id).is_ok()
    });
    assert!(found, "reads did not fall back to the primary");
    assert!(start.elapsed() < taskstore::health::REPLICA_RECHECK + Duration::from_millis(1500));
    for _ in 0..20 {
        assert!(
            !db.run_read(in_recovery).unwrap(),
            "a lagging replica is skipped"
        );
        db.tasks().get(owner, fresh.id).expect("from the primary");
    }
    let h = db.health().unwrap();
    let r = &h.replicas[0];
    assert_eq!(r.state, ReplicaState::Lagging, "{r:?}");
    assert!(r.lag.unwrap() > Duration::from_millis(300), "{r:?}");
    assert!(!r.url.contains("not-a-secret-42"), "{}", r.url);

    // Caught up again: back to the replica.
    set.resume_replay();
    set.wait_caught_up();
    assert!(
        wait_for(Duration::from_secs(5), || db.run_read(in_recovery).unwrap()),
        "reads did not return to the replica"
    );
    assert_eq!(db.health().unwrap().replicas[0].state, ReplicaState::Up);
}

/// A read load of `threads` threads while the replica stops: reads fail over to the primary
/// with no failed read, then return to the replica when it is back.
fn failover(threads: usize) {
    let set = Replicated::start("app");
    let db = connect(&set, &[]);
    let owner = common::factories::user(&db).id;
    let task = new_task(&db, owner, "read under load");
    set.wait_caught_up();
    assert!(db.run_read(in_recovery).unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    // (start, end) of every successful read, to measure the failover.
    let log: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (db, stop, failed, reads, log, errors) = (
                db.clone(),
                stop.clone(),
                failed.clone(),
                reads.clone(),
                log.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match db.tasks().get(owner, task.id) {
                        Ok(_) => log.lock().unwrap().push((t, Instant::now())),
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.lock().unwrap().push(e.to_string());
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let stop_issued = Instant::now();
    set.replica.stop();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let h = db.health().unwrap();
    assert_eq!(h.replicas[0].state, ReplicaState::Down, "{:?}", h.replicas);
    assert!(h.replicas[0].error.is_some());
    assert!(
        !db.run_read(in_recovery).unwrap(),
        "reads go to the primary"
    );

    // Back: reads return to the replica within a recheck.
    set.replica.pg_ctl_start();
    assert!(
        wait_for(Duration::from_secs(10), || db
            .run_read(in_recovery)
            .unwrap_or(false)),
        "reads did not return to the replica"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }

    let log = log.lock().unwrap();
    // The first read that began after the replica was down and succeeded (so on the primary).
    let first_after = log
        .iter()
        .filter(|(s, _)| *s >= stopped)
        .map(|(_, e)| *e)
        .min()
        .expect("reads after the stop");
    let slowest = log
        .iter()
        .filter(|(s, e)| *e >= stop_issued && *s <= stopped + Duration::from_secs(2))
        .map(|(s, e)| e.duration_since(*s))
        .max()
        .unwrap();
    eprintln!(
        "failover ({threads} threads): {} reads, {} failed; pg_ctl stop took {:.0} ms; first \
         successful read after it ended {:.0} ms after the stop was issued; slowest read around \
         the stop {:.0} ms",
        reads.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        stopped.duration_since(stop_issued).as_secs_f64() * 1e3,
        first_after.duration_since(stop_issued).as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed reads: {:?}",
        errors.lock().unwrap()
    );
    // A behavioural bound, not a speed claim: no read waits longer than one acquisition.
    assert!(slowest < Duration::from_millis(2000 + 250), "{slowest:?}");
}

#[test]
fn postgres_failover_a_stopped_replica_under_a_4_thread_read_load_fails_no_read() {
    failover(4);
}

#[test]
fn postgres_failover_a_stopped_replica_under_a_1_thread_read_load_fails_no_read() {
    failover(1);
}

#[test]
fn postgres_cli_health_reports_each_replica_state_and_lag() {
    let set = Replicated::start("app");
    drop(connect(&set, &[])); // migrations applied
    let cli = CliEnv::with_url(&set.primary.url_for("app"));
    let replica = format!(
        "postgres://postgres:not-a-secret-42@127.0.0.1:{}/app",
        set.replica.port
    );
    let health = |cli: &CliEnv| {
        let out = cli
            .cmd(&["--json", "health"])
            .env("DATABASE_REPLICA_URLS", &replica)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!text.contains("not-a-secret-42"), "{text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let j = health(&cli);
    assert_eq!(j["replicas"][0]["state"], "up", "{j}");
    assert!(j["replicas"][0]["lag_ms"].is_number(), "{j}");
    assert_eq!(j["pool"]["connections_created"], 2, "{j}");
    let text = cli
        .cmd(&["health"])
        .env("DATABASE_REPLICA_URLS", &replica)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("replica    postgres://postgres:***@127.0.0.1"),
        "{text}"
    );
    assert!(text.contains(" up (lag "), "{text}");

    set.replica.stop();
    let j = health(&cli);
    assert_eq!(j["replicas"][0]["state"], "down", "{j}");
    assert!(j["replicas"][0]["error"].is_string(), "{j}");
    assert_eq!(j["status"], "ok", "the primary serves: {j}");
}

#[test]
fn sqlite_reads_without_replicas_use_the_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let db =
        Database::connect(&Config::from_vars([("DATABASE_URL", url.as_str())]).unwrap()).unwrap();
    assert!(db.reads_on_primary());
    let owner = common::factories::user(&db).id;
    let t = new_task(&db, owner, "one database");
    assert_eq!(db.tasks().get(owner, t.id).unwrap().id, t.id);
    assert_eq!(db.on_primary().tasks().stats(owner).unwrap().total, 1);
    assert!(db.health().unwrap().replicas.is_empty());
    // Replicas are PostgreSQL only: a SQLite primary with one is refused at configuration.
    let e = Config::from_vars([
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_REPLICA_URLS", "postgres://r@127.0.0.1/db"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("DATABASE_REPLICA_URLS"), "{e}");
}
