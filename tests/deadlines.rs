//! Issue 8, "What must hold": the hard deadline under the default configuration. Each test
//! names its item, runs on its own throw-away cluster (never the shared server), uses the
//! default configuration except the setting the test is about, and prints every measured
//! figure on a line starting `FAULT-FIGURE`:
//!
//! ```text
//! cargo nextest run --test deadlines --run-ignored all --no-capture 2>&1 | grep FAULT-FIGURE
//! ```
//!
//! Tests that fail against the code they were written for carry `#[ignore = "issue 8 item N:
//! <what happens today>"]`; the fix removes the ignore. Every test is bounded: a call that
//! blocks past its bound is released (server thawed, blackhole lifted) and reported, never
//! waited for without end.
//!
//! Shapes: warm pool (connections used a moment ago, trusted at checkout) and cold pool (every
//! pooled connection dead after a restart, new ones needed); TCP and the Unix socket; a frozen
//! server (SIGSTOP) and a silent network (`iptables -j DROP` in a network namespace).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, wait_for};
use common::outage::freeze::{freeze, stop_immediate};
use common::outage::netns::NetnsCluster;
use common::outage::pooler::Pgbouncer;
use common::outage::socket::Transport;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use taskstore::models::{NewTask, TaskId, UserId};
use taskstore::{Config, ConnectFailure, Database, Error};

/// What issue 8 allows beyond a deadline.
const MARGIN: Duration = Duration::from_millis(250);
/// How long a call may stay blocked past its bound before the test releases the fault to
/// report it (and so stays bounded when the layer does not).
const GRACE: Duration = Duration::from_millis(1000);
/// How long released calls get to come back before they are reported as stuck.
const AFTER_RELEASE: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// Configuration, logs, figures

/// The default configuration plus `extra`: only `DATABASE_URL` is always set.
fn config(url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars = vec![("DATABASE_URL".to_owned(), url.to_owned())];
    for (k, v) in extra {
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    Config::from_vars(vars).expect("deadline test configuration")
}

fn connect(url: &str, extra: &[(&str, &str)]) -> Database {
    common::capture::init();
    Database::connect(&config(url, extra)).expect("connect to the throw-away cluster")
}

fn acquire_timeout(db: &Database) -> Duration {
    db.config().pool().acquire_timeout
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn figure(line: impl std::fmt::Display) {
    eprintln!("FAULT-FIGURE {line}");
}

/// Item 7: every error's text is one line.
fn one_line(err: &Error) -> Result<(), String> {
    let text = err.to_string();
    if text.contains('\n') {
        Err(format!("message spans lines: {text:?}"))
    } else {
        Ok(())
    }
}

/// A user and a task to read, made before the fault.
#[derive(Clone, Copy)]
struct Fixture {
    user: UserId,
    task: TaskId,
}

fn fixture(db: &Database) -> Fixture {
    let user = common::factories::user(db);
    let task = common::factories::task(db, user.id, "deadline fixture");
    Fixture {
        user: user.id,
        task: task.id,
    }
}

/// Opens at least `n` connections (each answering a query) and returns them to the pool, so
/// that `n` callers find a recently used idle connection each.
fn warm(db: &Database, n: usize) {
    let held: Vec<_> = (0..n)
        .map(|_| {
            let mut c = db.conn().expect("warm-up checkout");
            c.batch_execute("SELECT 1").expect("warm-up query");
            c
        })
        .collect();
    drop(held);
    assert!(
        wait_for(Duration::from_secs(5), || db.pool_state().idle as usize
            >= n),
        "pool did not warm up: {:?}",
        db.pool_state()
    );
}

// ---------------------------------------------------------------------------------------------
// Calls through every entry point, bounded

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Conn,
    Run,
    Transaction,
    UsersGet,
    TasksGet,
}

impl Entry {
    const ALL: [Entry; 5] = [
        Entry::Conn,
        Entry::Run,
        Entry::Transaction,
        Entry::UsersGet,
        Entry::TasksGet,
    ];

    fn name(self) -> &'static str {
        match self {
            Entry::Conn => "conn()",
            Entry::Run => "run(SELECT 1)",
            Entry::Transaction => "with_transaction(SELECT 1)",
            Entry::UsersGet => "users().get",
            Entry::TasksGet => "tasks().get",
        }
    }
}

/// One call and what it returned. `elapsed` is until the entry point returned; for `conn()`
/// that handed out a connection, `note` says what using and dropping it cost.
struct Observed {
    what: String,
    result: Result<(), Error>,
    elapsed: Duration,
    /// Time to drop a connection the call handed out (never blocks, item 1).
    drop_time: Option<Duration>,
    note: String,
}

impl Observed {
    fn outcome(&self) -> String {
        match &self.result {
            Ok(()) => "Ok".into(),
            Err(Error::Unavailable { kind, .. }) => format!("Err(unavailable: {kind})"),
            Err(e) => format!("Err({})", e.kind_name()),
        }
    }
}

fn call(db: &Database, fx: Fixture, entry: Entry) -> Observed {
    let start = Instant::now();
    let mut drop_time = None;
    let mut note = String::new();
    let result = match entry {
        Entry::Conn => match db.conn() {
            Err(e) => Err(e),
            Ok(mut c) => {
                let handed = start.elapsed();
                let q = Instant::now();
                let query = c.batch_execute("SELECT 1");
                let query_time = q.elapsed();
                let d = Instant::now();
                drop(c);
                drop_time = Some(d.elapsed());
                note = format!(
                    "; it handed out a connection after {} ms, SELECT 1 on it returned {} after {} ms, dropping it took {} ms",
                    ms(handed),
                    if query.is_ok() { "Ok" } else { "Err" },
                    ms(query_time),
                    ms(drop_time.unwrap_or_default())
                );
                return Observed {
                    what: entry.name().into(),
                    result: Ok(()),
                    elapsed: handed,
                    drop_time,
                    note,
                };
            }
        },
        Entry::Run => db.run(|c| Ok(c.batch_execute("SELECT 1")?)),
        Entry::Transaction => db.with_transaction(|c| {
            c.batch_execute("SELECT 1")?;
            Ok::<_, Error>(())
        }),
        Entry::UsersGet => db.users().get(fx.user).map(drop),
        Entry::TasksGet => db.tasks().get(fx.user, fx.task).map(drop),
    };
    Observed {
        what: entry.name().into(),
        result,
        elapsed: start.elapsed(),
        drop_time,
        note,
    }
}

type Call = Box<dyn FnOnce() -> Observed + Send>;

/// Calls running on their own threads; see [`Started::collect`].
struct Started {
    start: Instant,
    names: Vec<String>,
    rx: mpsc::Receiver<(usize, Observed)>,
}

/// Starts `calls` on their own threads at once.
fn start_calls(calls: Vec<(String, Call)>) -> Started {
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let names = calls.iter().map(|(n, _)| n.clone()).collect();
    for (i, (_, f)) in calls.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, f()));
        });
    }
    Started { start, names, rx }
}

impl Started {
    /// Waits until every call returned or `bound` + [`GRACE`] passed since they started, then
    /// calls `release` (thaw, lift), then collects the rest for at most [`AFTER_RELEASE`]. A
    /// call still out then is reported as an error with `elapsed` = how long it had been out.
    fn collect(self, label: &str, bound: Duration, release: impl FnOnce()) -> Vec<Observed> {
        let mut out: Vec<Option<Observed>> = self.names.iter().map(|_| None).collect();
        let mut received = 0;
        let mut wait_until = |end: Instant, out: &mut Vec<Option<Observed>>| {
            while received < out.len() {
                match self
                    .rx
                    .recv_timeout(end.saturating_duration_since(Instant::now()))
                {
                    Ok((i, o)) => {
                        out[i] = Some(o);
                        received += 1;
                    }
                    Err(_) => break,
                }
            }
        };
        wait_until(self.start + bound + GRACE, &mut out);
        let out_at_release = out.iter().filter(|o| o.is_none()).count();
        if out_at_release > 0 {
            figure(format_args!(
                "{label}: {out_at_release} of {} calls still out {} ms after they started; releasing the fault",
                out.len(),
                ms(self.start.elapsed())
            ));
        }
        release();
        wait_until(Instant::now() + AFTER_RELEASE, &mut out);
        let start = self.start;
        out.into_iter()
            .zip(self.names)
            .map(|(o, name)| {
                o.unwrap_or_else(|| Observed {
                    what: name,
                    result: Err(Error::validation(
                        "test",
                        "still blocked after the fault was released",
                    )),
                    elapsed: start.elapsed(),
                    drop_time: None,
                    note: "; still blocked after the fault was released".into(),
                })
            })
            .collect()
    }
}

/// The five entry points at once against a faulty server; item 1's bound: each returns a
/// typed `Unavailable` within the acquire deadline + 250 ms, in one line.
fn entry_points_within_the_acquire_deadline(
    label: &str,
    db: &Database,
    fx: Fixture,
    release: impl FnOnce(),
) {
    let deadline = acquire_timeout(db);
    let bound = deadline + MARGIN;
    let calls = Entry::ALL
        .iter()
        .map(|&entry| {
            let db = db.clone();
            let f: Call = Box::new(move || call(&db, fx, entry));
            (entry.name().to_owned(), f)
        })
        .collect();
    let observed = start_calls(calls).collect(&format!("item1 {label}"), bound, release);
    let mut violations = Vec::new();
    for o in &observed {
        figure(format_args!(
            "item1 {label} {}: {} after {} ms (bound {} ms){}",
            o.what,
            o.outcome(),
            ms(o.elapsed),
            ms(bound),
            o.note
        ));
        if o.elapsed > bound {
            violations.push(format!(
                "{} returned after {} ms, over the bound of {} ms",
                o.what,
                ms(o.elapsed),
                ms(bound)
            ));
        }
        match &o.result {
            Ok(()) => violations.push(format!(
                "{} returned Ok on an unreachable server{}",
                o.what, o.note
            )),
            Err(e @ Error::Unavailable { .. }) => {
                if let Err(v) = one_line(e) {
                    violations.push(format!("{}: {v}", o.what));
                }
            }
            Err(e) => violations.push(format!(
                "{} returned {} instead of Unavailable: {e}",
                o.what,
                e.kind_name()
            )),
        }
        if let Some(d) = o.drop_time
            && d > Duration::from_millis(50)
        {
            violations.push(format!(
                "{}: dropping the connection blocked for {} ms",
                o.what,
                ms(d)
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "item 1 ({label}):\n  {}",
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Item 1: every call returns within the acquire deadline + 250 ms on an unreachable server

fn item1_frozen(transport: Transport, cold: bool, extra: &[(&str, &str)]) {
    let cluster = Cluster::start(&[]);
    let db = connect(&transport.url(&cluster), extra);
    let fx = fixture(&db);
    warm(&db, Entry::ALL.len() + 1);
    if cold {
        // Every pooled connection is now dead; the next calls need new ones.
        cluster.restart();
    }
    let mut frozen = freeze(&cluster);
    let label = format!(
        "frozen/{}/{transport}{}",
        if cold { "cold" } else { "warm" },
        if extra.is_empty() {
            String::new()
        } else {
            format!("/{extra:?}")
        }
    );
    entry_points_within_the_acquire_deadline(&label, &db, fx, || frozen.thaw());
}

#[test]
fn item1_frozen_server_warm_pool_tcp() {
    item1_frozen(Transport::Tcp, false, &[]);
}

#[test]
fn item1_frozen_server_warm_pool_unix_socket() {
    item1_frozen(Transport::Unix, false, &[]);
}

/// "whatever DATABASE_VALIDATE_IDLE_MS says": validation on every checkout, over the Unix
/// socket, where the watchdog finds no socket today (it matches TCP ports).
#[test]
fn item1_frozen_server_warm_pool_unix_socket_validating_every_checkout() {
    item1_frozen(
        Transport::Unix,
        false,
        &[("DATABASE_VALIDATE_IDLE_MS", "0")],
    );
}

#[test]
fn item1_frozen_server_cold_pool_tcp() {
    item1_frozen(Transport::Tcp, true, &[]);
}

#[test]
fn item1_frozen_server_cold_pool_unix_socket() {
    item1_frozen(Transport::Unix, true, &[]);
}

fn item1_blackhole(cold: bool) {
    let cluster = NetnsCluster::start(&[]);
    let db = connect(&cluster.url(), &[]);
    let fx = fixture(&db);
    warm(&db, Entry::ALL.len() + 1);
    if cold {
        cluster.restart();
    }
    let mut hole = cluster.blackhole(Duration::from_secs(45));
    let label = format!("blackhole/{}/tcp", if cold { "cold" } else { "warm" });
    entry_points_within_the_acquire_deadline(&label, &db, fx, || hole.lift());
}

#[test]
fn item1_blackholed_network_warm_pool() {
    item1_blackhole(false);
}

#[test]
fn item1_blackholed_network_cold_pool() {
    item1_blackhole(true);
}

// ---------------------------------------------------------------------------------------------
// Item 2: statements in flight are bounded on the client side

/// `DATABASE_STATEMENT_TIMEOUT_MS` for item 2 (the setting the test is about; short so that
/// the test is).
const STATEMENT_TIMEOUT_MS: u64 = 2000;

/// Four calls in flight when the fault starts: a repository write waiting for a row lock, a
/// `run`, a transaction and a raw `conn()`, each inside a statement the server will not
/// finish in time (it cannot fire its own timeout while frozen, and its answer is lost behind a
/// silent network). Each must fail with a typed error within the statement timeout + 250 ms
/// (measured from the call's start, so a little stricter), and its connection must be
/// discarded. `fault_on` runs once every call is active on the server; `fault_off` releases.
fn item2_in_flight(label: &str, url: &str, fault_on: impl FnOnce(), fault_off: impl FnOnce()) {
    let timeout = Duration::from_millis(STATEMENT_TIMEOUT_MS);
    let db = connect(
        url,
        &[(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            &STATEMENT_TIMEOUT_MS.to_string(),
        )],
    );
    let fx = fixture(&db);
    warm(&db, 5);
    // A row lock held by another session, so that the repository write waits inside its
    // statement.
    let mut admin = PgConnection::establish(url).expect("admin connection");
    admin
        .batch_execute("BEGIN")
        .expect("admin transaction for the row lock");
    diesel::sql_query("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE")
        .bind::<diesel::sql_types::Uuid, _>(fx.task.0)
        .execute(&mut admin)
        .expect("lock the fixture task");
    let discarded_before = db.stats().broken_discarded;

    // Long enough to be in flight when the fault starts, short enough to finish within the
    // statement timeout on a healthy server.
    let sleep = format!(
        "SELECT pg_sleep({})",
        (STATEMENT_TIMEOUT_MS as f64 / 1000.0) * 0.75
    );
    let observe = |what: &str, start: Instant, result, drop_time: Option<Duration>| Observed {
        what: what.into(),
        result,
        elapsed: start.elapsed(),
        drop_time,
        note: drop_time
            .map(|d| format!("; dropping the connection took {} ms", ms(d)))
            .unwrap_or_default(),
    };
    let mut calls: Vec<(String, Call)> = Vec::new();
    let what = "tasks().complete (waiting for a row lock)";
    let d = db.clone();
    calls.push((
        what.into(),
        Box::new(move || {
            let start = Instant::now();
            let result = d.tasks().complete(fx.user, fx.task).map(drop);
            observe(what, start, result, None)
        }),
    ));
    let what = "run(pg_sleep)";
    let (d, sql) = (db.clone(), sleep.clone());
    calls.push((
        what.into(),
        Box::new(move || {
            let start = Instant::now();
            let result = d.run(|c| Ok(c.batch_execute(&sql)?));
            observe(what, start, result, None)
        }),
    ));
    let what = "with_transaction(insert, pg_sleep)";
    let (d, sql) = (db.clone(), sleep.clone());
    calls.push((
        what.into(),
        Box::new(move || {
            let start = Instant::now();
            let result = d.with_transaction(|c| {
                let new = NewTask {
                    title: "in flight",
                    ..NewTask::default()
                };
                taskstore::repo::tasks::create(c, fx.user, &new)?;
                c.batch_execute(&sql)?;
                Ok::<_, Error>(())
            });
            observe(what, start, result, None)
        }),
    ));
    let what = "conn() + pg_sleep";
    let (d, sql) = (db.clone(), sleep.clone());
    calls.push((
        what.into(),
        Box::new(move || {
            let start = Instant::now();
            let (result, drop_time) = match d.conn() {
                Err(e) => (Err(e), None),
                Ok(mut c) => {
                    let r = c.batch_execute(&sql).map_err(Error::from);
                    let t = Instant::now();
                    drop(c);
                    (r, Some(t.elapsed()))
                }
            };
            observe(what, start, result, drop_time)
        }),
    ));
    let n = calls.len();

    let started = start_calls(calls);
    let mut watcher = PgConnection::establish(url).expect("watcher connection");
    let active = wait_for(Duration::from_secs(5), || {
        #[derive(QueryableByName)]
        struct Active {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        // Inside the statements that matter: the sleeps, and the write waiting for its lock
        // (not the transaction's INSERT, which finishes at once). Not by application_name:
        // through PgBouncer the layer's `RESET ALL` on returned connections clears it.
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE state = 'active' AND pid <> pg_backend_pid() \
             AND (query LIKE 'SELECT pg_sleep%' OR wait_event_type = 'Lock')",
        )
        .get_result::<Active>(&mut watcher)
        .is_ok_and(|a| a.n >= n as i64)
    });
    if !active {
        #[derive(QueryableByName, Debug)]
        #[expect(dead_code, reason = "printed with Debug")]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            application_name: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            state: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            wait_event_type: Option<String>,
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            query: Option<String>,
        }
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT application_name, state, wait_event_type, left(query, 60) AS query \
             FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .load(&mut watcher)
        .unwrap_or_default();
        panic!("the {n} calls did not all become active in time: {rows:#?}");
    }
    fault_on();
    figure(format_args!(
        "item2 {label}: fault started {} ms after the calls",
        ms(started.start.elapsed())
    ));
    let bound = timeout + MARGIN;
    // Releasing also lets go of the row lock: through PgBouncer no server-side timeout ends
    // the waiting write (the layer's timeouts travel in the `options` startup parameter, which
    // the pooler drops).
    let observed = started.collect(&format!("item2 {label}"), bound, || {
        fault_off();
        let _ = admin.batch_execute("ROLLBACK");
    });

    let mut violations = Vec::new();
    for o in &observed {
        figure(format_args!(
            "item2 {label} {}: {} after {} ms (bound: statement timeout {} ms + 250 ms){}",
            o.what,
            o.outcome(),
            ms(o.elapsed),
            STATEMENT_TIMEOUT_MS,
            o.note
        ));
        if o.elapsed > bound {
            violations.push(format!(
                "{} returned after {} ms, over {} ms",
                o.what,
                ms(o.elapsed),
                ms(bound)
            ));
        }
        match &o.result {
            Ok(()) => violations.push(format!("{} returned Ok", o.what)),
            Err(e @ (Error::QueryTimeout { .. } | Error::Unavailable { .. })) => {
                if let Err(v) = one_line(e) {
                    violations.push(format!("{}: {v}", o.what));
                }
            }
            Err(e) => violations.push(format!(
                "{} returned {} instead of QueryTimeout or Unavailable: {e}",
                o.what,
                e.kind_name()
            )),
        }
        if let Some(d) = o.drop_time
            && d > Duration::from_millis(50)
        {
            violations.push(format!(
                "{}: dropping the connection blocked for {} ms",
                o.what,
                ms(d)
            ));
        }
    }
    let discarded = db.stats().broken_discarded - discarded_before;
    figure(format_args!(
        "item2 {label}: connections discarded: {discarded} of {n}"
    ));
    if discarded < n as u64 {
        violations.push(format!(
            "only {discarded} of the {n} connections stuck in a statement were discarded"
        ));
    }
    assert!(
        violations.is_empty(),
        "item 2 ({label}):\n  {}",
        violations.join("\n  ")
    );
}

fn item2_frozen(transport: Transport) {
    let cluster = Cluster::start(&[]);
    let frozen = std::cell::RefCell::new(None);
    item2_in_flight(
        &format!("frozen/{transport}"),
        &transport.url(&cluster),
        || *frozen.borrow_mut() = Some(freeze(&cluster)),
        || drop(frozen.borrow_mut().take()),
    );
}

#[test]
fn item2_statements_in_flight_frozen_server_tcp() {
    item2_frozen(Transport::Tcp);
}

#[test]
fn item2_statements_in_flight_frozen_server_unix_socket() {
    item2_frozen(Transport::Unix);
}

#[test]
fn item2_statements_in_flight_blackholed_network() {
    let cluster = NetnsCluster::start(&[]);
    let hole = std::cell::RefCell::new(None);
    item2_in_flight(
        "blackhole/tcp",
        &cluster.url(),
        || *hole.borrow_mut() = Some(cluster.blackhole(Duration::from_secs(45))),
        || drop(hole.borrow_mut().take()),
    );
}

/// Through a pooler the client's socket leads to PgBouncer and the server reports PgBouncer's
/// port: a mechanism that matches TCP ports finds nothing to bound.
#[test]
fn item2_statements_in_flight_frozen_server_through_pgbouncer() {
    let cluster = Cluster::start(&[]);
    let pooler = Pgbouncer::start(&cluster);
    let frozen = std::cell::RefCell::new(None);
    item2_in_flight(
        "frozen/pgbouncer",
        &pooler.url(),
        || *frozen.borrow_mut() = Some(freeze(&cluster)),
        || drop(frozen.borrow_mut().take()),
    );
}

// ---------------------------------------------------------------------------------------------
// Item 3: unknown outcomes are typed, and resolvable, outside transactions too

#[test]
fn item3_immediate_stop_under_four_writers() {
    const ROUNDS: usize = 5;
    const WRITERS: usize = 4;
    let cluster = Cluster::start(&[]);
    let db = connect(&cluster.url(), &[]);
    let owner = common::factories::user(&db).id;
    // (title, result) of every create.
    type Created = (String, Result<TaskId, Error>);
    let results: Arc<Mutex<Vec<Created>>> = Arc::default();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (db, stop, results) = (db.clone(), Arc::clone(&stop), Arc::clone(&results));
                std::thread::spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let title = format!("r{round}-w{w}-{i}");
                        let r = db
                            .tasks()
                            .create(
                                owner,
                                &NewTask {
                                    title: &title,
                                    ..NewTask::default()
                                },
                            )
                            .map(|t| t.id);
                        let failed = r.is_err();
                        results.lock().unwrap().push((title, r));
                        if failed {
                            break;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        stop_immediate(&cluster);
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        cluster.pg_ctl_start();
        assert!(
            wait_for(Duration::from_secs(20), || db
                .run(|c| Ok(c.batch_execute("SELECT 1")?))
                .is_ok()),
            "the database answers after the restart"
        );
    }

    let present: std::collections::HashMap<String, TaskId> =
        common::factories::all_tasks(&db, owner)
            .into_iter()
            .map(|t| (t.title, t.id))
            .collect();
    let results = results.lock().unwrap();
    let acked: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(t, _)| !present.contains_key(t))
        .collect();
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    let failed_present: Vec<_> = failed
        .iter()
        .filter(|(t, _)| present.contains_key(t))
        .collect();
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    for (_, r) in &failed {
        if let Err(e) = r {
            *by_kind.entry(e.kind_name()).or_default() += 1;
        }
    }
    figure(format_args!(
        "item3 pg_ctl stop -m immediate x{ROUNDS} under {WRITERS} writers: {} creates, {} acknowledged, {} rows present, {} acknowledged rows lost, {} failed ({by_kind:?}), {} failed but committed",
        results.len(),
        acked.len(),
        present.len(),
        lost.len(),
        failed.len(),
        failed_present.len()
    ));
    let mut violations = Vec::new();
    for (title, _) in &lost {
        violations.push(format!("acknowledged create {title} is missing"));
    }
    for (title, r) in &failed_present {
        let id = present[title.as_str()];
        match r {
            Err(e @ Error::CommitUnknown { .. }) => {
                // Resolvable: the error names the id the layer generated, so the caller can
                // look the row up (the README must say how).
                if !e.to_string().contains(&id.to_string()) {
                    violations.push(format!(
                        "create {title} (committed as {id}) is CommitUnknown but its error does not name the id: {e}"
                    ));
                }
            }
            Err(e) => violations.push(format!(
                "create {title} was committed as {id} but reported {}: {e}",
                e.kind_name()
            )),
            Ok(_) => unreachable!(),
        }
    }
    for (title, r) in &failed {
        if let Err(e) = r {
            if let Err(v) = one_line(e) {
                violations.push(v);
            }
            // A connection lost while the INSERT may have reached the server is an unknown
            // outcome, whether or not the row turned out to be there; libpq cannot tell a lost
            // request from a lost answer (it reports a failed send when it reads).
            if matches!(
                e,
                Error::Database {
                    kind: taskstore::DbErrorKind::Disconnected,
                    ..
                }
            ) {
                violations.push(format!(
                    "create {title} lost its connection and reported Database(Disconnected), not CommitUnknown: {e}"
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "item 3:\n  {}",
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Item 4: recovery is prompt

#[test]
fn item4_recovery_after_a_three_second_outage() {
    const CALLERS: usize = 4;
    let outage = Duration::from_secs(3);
    let cluster = Cluster::start(&[]);
    let url = cluster.url();
    let db = connect(&url, &[]);
    let fx = fixture(&db);
    warm(&db, CALLERS);
    cluster.stop();
    let stopped_at = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    // (start, end, ok, error text) of every call.
    type Record = (Instant, Instant, Result<(), String>);
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (db, done, records) = (db.clone(), Arc::clone(&done), Arc::clone(&records));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let r = db
                        .tasks()
                        .get(fx.user, fx.task)
                        .map(drop)
                        .map_err(|e| e.to_string());
                    let end = Instant::now();
                    let failed = r.is_err();
                    records.lock().unwrap().push((start, end, r));
                    if failed {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(outage.saturating_sub(stopped_at.elapsed()));
    // The moment the server accepts again: the first raw connection that succeeds.
    let (back_tx, back_rx) = mpsc::channel();
    let probe_url = url.clone();
    let probe = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if PgConnection::establish(&probe_url).is_ok() {
                let _ = back_tx.send(Instant::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    cluster.pg_ctl_start();
    let back = back_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server accepts connections again");
    probe.join().expect("probe");
    std::thread::sleep(Duration::from_secs(2).saturating_sub(back.elapsed()));
    // Let every caller finish its current call (each bounded by the acquire deadline).
    std::thread::sleep(acquire_timeout(&db));
    done.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().expect("caller");
    }

    let records = records.lock().unwrap();
    let first_ok = records
        .iter()
        .filter(|(_, end, r)| r.is_ok() && *end >= back)
        .map(|(_, end, _)| end.duration_since(back))
        .min();
    let late_failures: Vec<_> = records
        .iter()
        .filter(|(_, end, r)| r.is_err() && *end >= back + MARGIN)
        .collect();
    let waiting_at_back = records
        .iter()
        .filter(|(start, end, _)| *start < back && *end > back)
        .count();
    figure(format_args!(
        "item4 3 s outage, default acquire {} ms, {CALLERS} callers: first success {} ms after the server accepted again; calls waiting when it came back: {waiting_at_back}; calls failing 250 ms or more after it was back: {}",
        ms(acquire_timeout(&db)),
        first_ok.map_or("never".into(), |d| ms(d).to_string()),
        late_failures.len()
    ));
    let mut violations = Vec::new();
    match first_ok {
        Some(d) if d <= MARGIN => {}
        Some(d) => violations.push(format!(
            "first success {} ms after the server was back (bound 250 ms)",
            ms(d)
        )),
        None => violations.push("no call succeeded after the server was back".into()),
    }
    for (start, end, r) in late_failures {
        violations.push(format!(
            "a call started {} ms before the server was back failed {} ms after it: {}",
            back.saturating_duration_since(*start).as_millis(),
            end.duration_since(back).as_millis(),
            r.as_ref().err().map_or("", String::as_str)
        ));
    }
    assert!(
        violations.is_empty(),
        "item 4:\n  {}",
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Item 5: reads are not failed by a connection that died before they ran

#[test]
fn item5_a_thousand_reads_after_non_waiting_terminates() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    const READS: usize = 10; // per thread and round: 4 x 25 x 10 = 1 000
    let cluster = Cluster::start(&[]);
    let db = connect(&cluster.url(), &[]);
    let fx = fixture(&db);
    warm(&db, THREADS);
    let mut admin = PgConnection::establish(&cluster.url()).expect("admin connection");
    let mut failures: Vec<String> = Vec::new();
    let mut first_call_failures = 0;
    let mut terminated = 0;
    for _ in 0..ROUNDS {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        // No timeout argument: pg_terminate_backend signals and returns at once.
        let killed: Count = diesel::sql_query(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE application_name = 'taskstore' AND pid <> pg_backend_pid()",
        )
        .get_result(&mut admin)
        .expect("pg_terminate_backend");
        terminated += killed.n;
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (db, barrier) = (db.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..READS)
                        .map(|i| (i, db.tasks().get(fx.user, fx.task).map(drop)))
                        .filter_map(|(i, r)| r.err().map(|e| (i, e.to_string())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, e) in h.join().expect("reader") {
                if i == 0 {
                    first_call_failures += 1;
                }
                failures.push(e);
            }
        }
    }
    let total = THREADS * ROUNDS * READS;
    figure(format_args!(
        "item5 {ROUNDS} rounds of non-waiting pg_terminate_backend ({terminated} backends) then {THREADS} threads x {READS} reads: {} of {total} reads failed ({first_call_failures} of them first calls of a round)",
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "item 5: {} of {total} reads failed; first: {:?}",
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Item 6: leaks are reported while they happen

#[test]
fn item6_leaks_are_reported_while_held() {
    const THRESHOLD_MS: u64 = 200;
    let threshold = Duration::from_millis(THRESHOLD_MS);
    let cluster = Cluster::start(&[]);
    let db = connect(
        &cluster.url(),
        &[("DATABASE_LEAK_THRESHOLD_MS", &THRESHOLD_MS.to_string())],
    );
    let before = db.stats().leaks;
    let start = Instant::now();
    let (held, held_line) = (db.conn().expect("checkout"), line!());
    let (never_returned, lost_line) = (db.conn().expect("checkout"), line!());
    // Never returned: the layer can only notice it while it is out.
    std::mem::forget(never_returned);
    let held_at = format!("deadlines.rs:{held_line}:");
    let lost_at = format!("deadlines.rs:{lost_line}:");

    let mut first_report = None;
    let mut both_reported = None;
    while start.elapsed() < Duration::from_millis(1500) {
        let leaks = db.stats().leaks - before;
        if leaks >= 1 && first_report.is_none() {
            first_report = Some(start.elapsed());
        }
        if leaks >= 2 && both_reported.is_none() {
            both_reported = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let held_lines_while_out = common::capture::lines_containing(&held_at).len();
    let lost_lines = common::capture::lines_containing(&lost_at).len();
    let leaks_while_out = db.stats().leaks - before;
    drop(held);
    let held_lines_after = common::capture::lines_containing(&held_at).len();
    let leaks_after = db.stats().leaks - before;
    let show = |d: Option<Duration>| d.map_or("never".into(), |d| format!("{} ms", ms(d)));
    figure(format_args!(
        "item6 DATABASE_LEAK_THRESHOLD_MS={THRESHOLD_MS}: first leak counted after {}, both after {}; log lines naming the holder while out {held_lines_while_out}, after it came back {held_lines_after}; naming the never-returned one {lost_lines}; stats().leaks while out {leaks_while_out}, after the return {leaks_after}",
        show(first_report),
        show(both_reported)
    ));
    let bound = threshold + MARGIN;
    let mut violations = Vec::new();
    match both_reported {
        Some(d) if d <= bound => {}
        other => violations.push(format!(
            "both held connections counted in stats().leaks after {}, bound {} ms",
            show(other),
            ms(bound)
        )),
    }
    if held_lines_while_out != 1 {
        violations.push(format!(
            "the held connection was reported {held_lines_while_out} times while out (want once, naming {held_at})"
        ));
    }
    if lost_lines != 1 {
        violations.push(format!(
            "the never-returned connection was reported {lost_lines} times (want once, naming {lost_at})"
        ));
    }
    if held_lines_after != 2 {
        violations.push(format!(
            "the held connection was reported {held_lines_after} times in all (want once while out and once when it came back)"
        ));
    }
    if leaks_after != 2 {
        violations.push(format!(
            "stats().leaks counts {leaks_after} leaks for 2 leaked connections"
        ));
    }
    assert!(
        violations.is_empty(),
        "item 6:\n  {}",
        violations.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Item 7: errors say what happened

/// Every pooled connection is stuck in a statement on a frozen server: a new caller learns that
/// the server is unavailable, not that the pool is too small.
#[test]
fn item7_pool_stuck_on_a_frozen_server_is_unavailable() {
    let cluster = Cluster::start(&[]);
    let db = connect(&cluster.url(), &[]);
    let fx = fixture(&db);
    let size = db.config().pool().max_size as usize;
    warm(&db, size);
    let stuck: Vec<_> = (0..size)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || db.run(|c| Ok(c.batch_execute("SELECT pg_sleep(3)")?)))
        })
        .collect();
    assert!(
        wait_for(Duration::from_secs(5), || db.pool_state().in_use as usize
            >= size),
        "every connection checked out: {:?}",
        db.pool_state()
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut frozen = freeze(&cluster);
    let deadline = acquire_timeout(&db);
    let d = db.clone();
    let get: Call = Box::new(move || call(&d, fx, Entry::TasksGet));
    let observed = start_calls(vec![("tasks().get".into(), get)]).collect(
        "item7 stuck pool",
        deadline + MARGIN,
        || frozen.thaw(),
    );
    drop(frozen);
    for s in stuck {
        let _ = s.join();
    }
    let o = &observed[0];
    let text = o
        .result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    figure(format_args!(
        "item7 pool of {size} stuck on a frozen server, new caller: {} after {} ms: {text}",
        o.outcome(),
        ms(o.elapsed)
    ));
    match &o.result {
        Err(e @ Error::Unavailable { .. }) => {
            one_line(e).unwrap_or_else(|v| panic!("item 7: {v}"));
            assert!(
                !text.contains("DATABASE_POOL_MAX_SIZE"),
                "item 7: an unavailable server is not a reason to grow the pool: {text}"
            );
        }
        other => panic!("item 7: want Unavailable, got {other:?}"),
    }
    assert!(
        o.elapsed <= deadline + MARGIN,
        "item 7: returned after {} ms",
        ms(o.elapsed)
    );
}

/// Idle connections whose sockets TCP keepalives killed behind a silent network (keepalive
/// settings in the URL, which win over the layer's, so that they die in ~3 s): the caller's
/// error is a timeout, not "connection refused".
#[test]
fn item7_socket_killed_by_keepalives_is_a_timeout() {
    let cluster = NetnsCluster::start(&[]);
    let url = format!(
        "{}?keepalives_idle=1&keepalives_interval=1&keepalives_count=2",
        cluster.url()
    );
    let db = connect(&url, &[]);
    warm(&db, 3);
    let mut hole = cluster.blackhole(Duration::from_secs(45));
    let target = format!("dst {}", cluster.ns().ns_addr());
    let dead = wait_for(Duration::from_secs(15), || {
        common::outage::run_bounded(
            "ss",
            &["-Htn", "state", "established", &target],
            Duration::from_secs(5),
        )
        .is_ok_and(|o| o.status.success() && o.stdout.iter().all(u8::is_ascii_whitespace))
    });
    assert!(dead, "TCP keepalives did not close the pooled sockets");
    let deadline = acquire_timeout(&db);
    let start = Instant::now();
    let result = db.conn().map(drop);
    let elapsed = start.elapsed();
    hole.lift();
    let text = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    figure(format_args!(
        "item7 pooled sockets killed by keepalives behind a silent network: conn() {} after {} ms: {text}",
        match &result {
            Ok(()) => "Ok".to_owned(),
            Err(e) => format!("Err({})", e.kind_name()),
        },
        ms(elapsed)
    ));
    match &result {
        Err(
            e @ Error::Unavailable {
                kind: ConnectFailure::Timeout,
                ..
            },
        ) => {
            one_line(e).unwrap_or_else(|v| panic!("item 7: {v}"));
            assert!(
                !text.to_lowercase().contains("refused"),
                "item 7: a keepalive timeout is not a refusal: {text}"
            );
        }
        other => panic!("item 7: want Unavailable(Timeout), got {other:?}"),
    }
    assert!(
        elapsed <= deadline + MARGIN,
        "item 7: returned after {} ms",
        ms(elapsed)
    );
}
