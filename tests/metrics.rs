//! Observability. The pool publishes through the `metrics` facade: a recorder installed by the
//! application (a Prometheus exporter in production; a recording one here) sees the pool's
//! events, each labelled with its pool, described with a unit, and gauges that follow the pool
//! as it changes. Acquisitions and transactions open `tracing` spans.
//!
//! One test installs the recorder globally, as an application does. The others build their
//! `Database` under a recorder of their own (`metrics::with_local_recorder`): the pool
//! registers its metrics when it is built, so everything it publishes afterwards, from any
//! thread, goes to that recorder, and the tests can run in one process without seeing each
//! other's events.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::wait_for;
use common::{Backend, TestDb};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use taskstore::{ConnectFailure, Error};

/// Everything a recorder was told, by key: `name{label=value,...}` (labels sorted).
#[derive(Default)]
struct Recording {
    cells: Mutex<BTreeMap<String, Arc<Cell>>>,
    described: Mutex<BTreeMap<String, Option<Unit>>>,
}

/// A counter's total, a histogram's number of samples, or a gauge's value (as f64 bits).
#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _v: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Cell {
    fn update_f64(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.update_f64(|x| x + v);
    }
    fn decrement(&self, v: f64) {
        self.update_f64(|x| x - v);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

fn key_string(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        return key.name().to_owned();
    }
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recording {
    fn new() -> &'static Self {
        Box::leak(Box::default())
    }

    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut cells = self.cells.lock().unwrap();
        Arc::clone(cells.entry(key_string(key)).or_default())
    }

    /// The sum over every label set of `name` (counters and histogram sample counts).
    fn get(&self, name: &str) -> u64 {
        self.cells
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, c)| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// A counter (or histogram sample count) by its full key; 0 when never registered.
    fn count(&self, key: &str) -> u64 {
        self.cells
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }

    /// A gauge by its full key.
    fn gauge(&self, key: &str) -> Option<f64> {
        self.cells
            .lock()
            .unwrap()
            .get(key)
            .map(|c| f64::from_bits(c.0.load(Ordering::Relaxed)))
    }

    fn keys(&self) -> Vec<String> {
        self.cells.lock().unwrap().keys().cloned().collect()
    }

    fn describe(&self, name: KeyName, unit: Option<Unit>) {
        self.described
            .lock()
            .unwrap()
            .insert(name.as_str().to_owned(), unit);
    }
}

impl Recorder for &'static Recording {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(name, unit);
    }
    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(name, unit);
    }
    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(name, unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// A test database whose pools publish to `recorder`.
fn recorded(recorder: &'static Recording, backend: Backend, extra: &[(&str, &str)]) -> TestDb {
    metrics::with_local_recorder(&recorder, || TestDb::new(backend, extra))
}

#[test]
fn pool_events_reach_an_installed_recorder() {
    let recorder = Recording::new();
    metrics::set_global_recorder(recorder).expect("first recorder of this test process");
    let db = TestDb::new(
        Backend::Sqlite,
        &[
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "100"),
        ],
    );
    for _ in 0..5 {
        drop(db.conn().unwrap());
    }
    let held = db.conn().unwrap();
    assert!(db.conn().is_err());
    drop(held);
    assert!(
        recorder.get("taskstore_pool_acquire_seconds") >= 6,
        "acquisitions recorded"
    );
    assert_eq!(recorder.get("taskstore_pool_timeouts_total"), 1);
    assert!(recorder.get("taskstore_pool_connections_created_total") >= 1);
}

#[test]
fn every_metric_is_described_with_a_unit_and_labelled_with_its_pool() {
    let recorder = Recording::new();
    // The "replica" is the test database under a second pool: enough to tell the pools apart.
    let primary = recorded(recorder, Backend::Postgres, &[]);
    let config = taskstore::Config::from_vars([
        ("DATABASE_URL", primary.url.as_str()),
        ("DATABASE_REPLICA_URLS", primary.url.as_str()),
    ])
    .unwrap();
    let db =
        metrics::with_local_recorder(&recorder, || taskstore::Database::connect(&config).unwrap());
    db.run_read(taskstore::repo::users::count).unwrap();
    db.with_transaction(taskstore::repo::users::count).unwrap();

    let keys = recorder.keys();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.contains("pool=primary") || key.contains("pool=replica1"),
            "{key} carries its pool"
        );
    }
    assert_eq!(
        recorder.count("taskstore_pool_acquire_seconds{pool=replica1}"),
        1,
        "the read went to the replica: {keys:?}"
    );
    assert!(recorder.count("taskstore_pool_acquire_seconds{pool=primary}") >= 2);
    assert!(recorder.count("taskstore_pool_connections_created_total{pool=replica1}") >= 1);
    assert_eq!(
        recorder.count("taskstore_tx_total{outcome=committed,pool=primary}"),
        1
    );
    assert_eq!(
        recorder.gauge("taskstore_pool_in_use{pool=replica1}"),
        Some(0.0)
    );

    let described = recorder.described.lock().unwrap().clone();
    for key in &keys {
        let name = key.split('{').next().unwrap();
        assert!(described.contains_key(name), "{name} is described");
    }
    assert_eq!(
        described["taskstore_pool_acquire_seconds"],
        Some(Unit::Seconds)
    );
    for name in [
        "taskstore_pool_timeouts_total",
        "taskstore_pool_permanent_failures_total",
        "taskstore_pool_retries_exhausted_total",
        "taskstore_pool_waiter_rejections_total",
        "taskstore_pool_in_use",
        "taskstore_pool_waiters",
    ] {
        assert_eq!(described.get(name), Some(&Some(Unit::Count)), "{name}");
    }
}

#[test]
fn gauges_follow_the_pool_without_a_stats_call() {
    let recorder = Recording::new();
    let db = recorded(
        recorder,
        Backend::Sqlite,
        &[
            ("DATABASE_POOL_MAX_SIZE", "2"),
            ("DATABASE_POOL_MIN_IDLE", "0"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "5000"),
        ],
    );
    let gauge = |name: &str| {
        recorder
            .gauge(&format!("taskstore_pool_{name}{{pool=primary}}"))
            .unwrap_or_else(|| panic!("{name} published"))
    };
    let settled = |open: f64, idle: f64, in_use: f64, waiters: f64| {
        wait_for(Duration::from_secs(5), || {
            (
                gauge("connections"),
                gauge("idle"),
                gauge("in_use"),
                gauge("waiters"),
            ) == (open, idle, in_use, waiters)
        })
    };

    let a = db.conn().unwrap();
    assert_eq!(gauge("in_use"), 1.0);
    let b = db.conn().unwrap();
    assert!(
        settled(2.0, 0.0, 2.0, 0.0),
        "two connections, both in use: {:?}",
        recorder.keys()
    );

    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.conn().map(drop));
        assert!(settled(2.0, 0.0, 2.0, 1.0), "a caller waits");
        drop(a);
        waiter
            .join()
            .unwrap()
            .expect("the waiter gets the returned connection");
    });
    assert!(settled(2.0, 1.0, 1.0, 0.0), "one returned, one held");

    drop(b);
    assert!(settled(2.0, 2.0, 0.0, 0.0), "both returned");
    let state = db.pool_state();
    assert_eq!((state.connections, state.idle, state.in_use), (2, 2, 0));
}

#[test]
fn timeouts_and_waiter_rejections_are_counted_apart() {
    let recorder = Recording::new();
    let db = recorded(
        recorder,
        Backend::Sqlite,
        &[
            ("DATABASE_POOL_MAX_SIZE", "1"),
            ("DATABASE_POOL_MAX_WAITERS", "1"),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    );
    let counter = |name: &str| recorder.count(&format!("taskstore_pool_{name}{{pool=primary}}"));
    let held = db.conn().unwrap();

    // Into the deadline: a timeout.
    let err = db.conn().unwrap_err();
    assert!(matches!(err, Error::PoolTimeout { .. }), "{err}");
    assert_eq!(counter("timeouts_total"), 1);
    assert_eq!(counter("waiter_rejections_total"), 0);

    // Beyond DATABASE_POOL_MAX_WAITERS: a rejection, not a timeout.
    std::thread::scope(|s| {
        let waiter = s.spawn(|| db.conn().map(drop));
        assert!(wait_for(Duration::from_secs(2), || db.pool_state().waiters == 1));
        let err = db.conn().unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_POOL_MAX_WAITERS"),
            "{err}"
        );
        drop(held);
        waiter
            .join()
            .unwrap()
            .expect("the queued caller gets the connection");
    });
    assert_eq!(counter("waiter_rejections_total"), 1);
    assert_eq!(counter("timeouts_total"), 1);
    assert_eq!(counter("permanent_failures_total"), 0);
    let stats = db.stats();
    assert_eq!(
        (
            stats.timeouts,
            stats.waiter_rejections,
            stats.permanent_failures
        ),
        (1, 1, 0)
    );
}

#[test]
fn permanent_failures_are_counted_apart_from_timeouts() {
    let recorder = Recording::new();
    let db = recorded(
        recorder,
        Backend::Postgres,
        &[("DATABASE_POOL_MIN_IDLE", "0")],
    );
    db.run(taskstore::repo::users::count).unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::establish(&common::pg_admin_url()).unwrap();
    // A test-owned name (taskstore_test_<pid>_<n>); DDL takes no bind parameters.
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .unwrap();

    let err = db.conn().unwrap_err();
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
    let counter = |name: &str| recorder.count(&format!("taskstore_pool_{name}{{pool=primary}}"));
    assert_eq!(counter("permanent_failures_total"), 1);
    assert_eq!(counter("timeouts_total"), 0);
    assert!(counter("connect_failures_total") >= 1);
    let stats = db.stats();
    assert_eq!((stats.permanent_failures, stats.timeouts), (1, 0));
}

/// The spans a subscriber saw opened, as `name field=value ...`.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut line = attrs.metadata().name().to_owned();
        attrs.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                line.push_str(&format!(" {}={value:?}", field.name()));
            },
        );
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn acquisitions_and_transactions_open_spans() {
    use tracing_subscriber::layer::SubscriberExt;

    let db = TestDb::new(Backend::Sqlite, &[]);
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    tracing::subscriber::with_default(subscriber, || {
        drop(db.conn().unwrap());
        db.with_transaction(taskstore::repo::users::count).unwrap();
    });
    let seen = spans.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "acquire pool=primary",
            "transaction pool=primary read_only=false isolation=None",
            "acquire pool=primary",
            "users.count",
        ],
        "one span per acquisition (the transaction's inside its own) and per repository call, \
         none for the arguments"
    );
}
