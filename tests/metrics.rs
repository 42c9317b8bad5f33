//! The pool publishes through the `metrics` facade: a recorder installed by the application
//! (a Prometheus exporter in production; a counting recorder here) sees the pool's events.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Backend, TestDb};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

#[derive(Default)]
struct Counting {
    counts: Mutex<BTreeMap<String, Arc<Cell>>>,
}

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

impl Counting {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        Arc::clone(
            self.counts
                .lock()
                .unwrap()
                .entry(key.name().to_owned())
                .or_default(),
        )
    }
    fn get(&self, name: &str) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for &'static Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn pool_events_reach_an_installed_recorder() {
    let recorder: &'static Counting = Box::leak(Box::default());
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
