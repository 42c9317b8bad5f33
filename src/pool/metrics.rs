//! What the pool publishes through the `metrics` facade, so that a recorder the application
//! installs (a Prometheus exporter, say) sees it: one table of names, kinds, units and
//! descriptions, and the handles one pool publishes through.
//!
//! Every metric carries a `pool` label: `primary`, or `replica1`, `replica2`, ... in the order
//! of `DATABASE_REPLICA_URLS`; the transaction counter also carries `outcome`.
//!
//! The handles are registered when the pool is built (an increment is then one call on a
//! handle, with no lookup by name on the hot path), and the metrics are described at the same
//! time: install the recorder **before** [`Database::connect`](crate::Database::connect).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use metrics::{Counter, Gauge, Histogram, Unit};

/// How one metric is published.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Name, kind, unit, description: the one list of what taskstore publishes.
const METRICS: &[(&str, Kind, Unit, &str)] = &[
    (
        ACQUIRE_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time a caller waited for a connection that it got.",
    ),
    (
        TIMEOUTS,
        Kind::Counter,
        Unit::Count,
        "Acquisitions that ran into DATABASE_ACQUIRE_TIMEOUT_MS (PoolTimeout, or Unavailable at the deadline).",
    ),
    (
        PERMANENT_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Acquisitions that failed at once on a permanent connection error (authentication, unknown database, malformed URL).",
    ),
    (
        RETRIES_EXHAUSTED,
        Kind::Counter,
        Unit::Count,
        "Acquisitions that failed before the deadline after DATABASE_RETRY_ATTEMPTS retries on transient connection errors.",
    ),
    (
        WAITER_REJECTIONS,
        Kind::Counter,
        Unit::Count,
        "Acquisitions refused at once because DATABASE_POOL_MAX_WAITERS callers were already waiting.",
    ),
    (
        RETRIES,
        Kind::Counter,
        Unit::Count,
        "Acquisition retries after transient connection errors.",
    ),
    (
        BROKEN,
        Kind::Counter,
        Unit::Count,
        "Connections discarded as broken, expired or stale.",
    ),
    (CREATED, Kind::Counter, Unit::Count, "Connections opened."),
    (
        CONNECT_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Connection attempts that failed (each attempt, on the pool's threads or a caller's).",
    ),
    (
        LEAKS,
        Kind::Counter,
        Unit::Count,
        "Connections held longer than DATABASE_LEAK_THRESHOLD_MS.",
    ),
    (
        TX_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Transactions run by with_transaction, by outcome (committed, rolled_back).",
    ),
    (
        TX_RETRIES,
        Kind::Counter,
        Unit::Count,
        "Whole-transaction re-runs after serialization failures or deadlocks.",
    ),
    (CONNECTIONS, Kind::Gauge, Unit::Count, "Connections open."),
    (
        IDLE,
        Kind::Gauge,
        Unit::Count,
        "Open connections waiting in the pool.",
    ),
    (
        IN_USE,
        Kind::Gauge,
        Unit::Count,
        "Open connections checked out by callers.",
    ),
    (
        WAITERS,
        Kind::Gauge,
        Unit::Count,
        "Callers waiting for a connection.",
    ),
];

pub(crate) const ACQUIRE_SECONDS: &str = "taskstore_pool_acquire_seconds";
pub(crate) const TIMEOUTS: &str = "taskstore_pool_timeouts_total";
pub(crate) const PERMANENT_FAILURES: &str = "taskstore_pool_permanent_failures_total";
pub(crate) const RETRIES_EXHAUSTED: &str = "taskstore_pool_retries_exhausted_total";
pub(crate) const WAITER_REJECTIONS: &str = "taskstore_pool_waiter_rejections_total";
pub(crate) const RETRIES: &str = "taskstore_pool_acquire_retries_total";
pub(crate) const BROKEN: &str = "taskstore_pool_broken_total";
pub(crate) const CREATED: &str = "taskstore_pool_connections_created_total";
pub(crate) const CONNECT_FAILURES: &str = "taskstore_pool_connect_failures_total";
pub(crate) const LEAKS: &str = "taskstore_pool_leaks_total";
pub(crate) const TX_TOTAL: &str = "taskstore_tx_total";
pub(crate) const TX_RETRIES: &str = "taskstore_tx_retries_total";
pub(crate) const CONNECTIONS: &str = "taskstore_pool_connections";
pub(crate) const IDLE: &str = "taskstore_pool_idle";
pub(crate) const IN_USE: &str = "taskstore_pool_in_use";
pub(crate) const WAITERS: &str = "taskstore_pool_waiters";

/// Describes every metric (unit and help text) to the recorder installed now.
pub(crate) fn describe() {
    for &(name, kind, unit, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// A counter kept twice: in the pool (for [`Stats`](super::Stats)) and in the recorder.
pub(crate) struct Tally {
    count: AtomicU64,
    metric: Counter,
}

impl Tally {
    /// Registers `name{pool}` (plus `extra` labels).
    pub fn new(name: &'static str, pool: &str, extra: &[(&'static str, &'static str)]) -> Self {
        let mut labels = vec![metrics::Label::new("pool", pool.to_owned())];
        labels.extend(extra.iter().map(|&(k, v)| metrics::Label::new(k, v)));
        Self {
            count: AtomicU64::new(0),
            metric: metrics::counter!(name, labels),
        }
    }

    pub fn incr(&self) {
        self.count.fetch_add(1, Relaxed);
        self.metric.increment(1);
    }

    pub fn get(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// The acquisition-latency histogram of one pool.
pub(crate) fn acquire_histogram(pool: &str) -> Histogram {
    metrics::histogram!(ACQUIRE_SECONDS, "pool" => pool.to_owned())
}

/// The pool's gauges, moved by increments as the pool changes (see `Shared`).
pub(crate) struct Gauges {
    pub connections: Gauge,
    pub idle: Gauge,
    pub in_use: Gauge,
    pub waiters: Gauge,
}

impl Gauges {
    pub fn new(pool: &str) -> Self {
        let gauge = |name: &'static str| metrics::gauge!(name, "pool" => pool.to_owned());
        Self {
            connections: gauge(CONNECTIONS),
            idle: gauge(IDLE),
            in_use: gauge(IN_USE),
            waiters: gauge(WAITERS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_in_the_table_once() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.0).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a metric is listed twice");
        assert!(names.iter().all(|n| n.starts_with("taskstore_")));
    }

    #[test]
    fn the_module_documentation_lists_every_metric_with_its_kind() {
        let doc = include_str!("mod.rs");
        for &(name, kind, _, _) in METRICS {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let row = format!("//! | `{name}` | {kind} |");
            assert!(doc.contains(&row), "pool/mod.rs documents {name} as: {row}");
        }
        let rows = doc
            .lines()
            .filter(|l| l.starts_with("//! | `taskstore_"))
            .count();
        assert_eq!(
            rows,
            METRICS.len(),
            "pool/mod.rs lists a metric that is not published"
        );
    }
}
