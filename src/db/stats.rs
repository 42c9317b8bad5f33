//! Pool and transaction statistics: a [`Stats`] snapshot, `tracing` events, and the `metrics`
//! facade (so a Prometheus exporter installed by the application publishes them).
//!
//! Metric names: `taskstore_pool_acquire_seconds` (histogram), `taskstore_pool_timeouts_total`,
//! `taskstore_pool_acquire_retries_total`, `taskstore_pool_broken_total`,
//! `taskstore_pool_connections_created_total`, `taskstore_pool_connect_failures_total`,
//! `taskstore_pool_leaks_total`, `taskstore_tx_total{outcome=committed|rolled_back}`,
//! `taskstore_tx_retries_total`, and the gauges `taskstore_pool_connections`,
//! `taskstore_pool_idle`, `taskstore_pool_in_use`, `taskstore_pool_waiters`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::PoolState;

/// Counters shared by a pool and its connections.
pub(crate) struct Counters {
    pub acquisitions: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub broken: AtomicU64,
    pub created: AtomicU64,
    pub connect_failures: AtomicU64,
    pub leaks: AtomicU64,
    pub tx_committed: AtomicU64,
    pub tx_rolled_back: AtomicU64,
    pub tx_retried: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            acquisitions: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            broken: AtomicU64::new(0),
            created: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            leaks: AtomicU64::new(0),
            tx_committed: AtomicU64::new(0),
            tx_rolled_back: AtomicU64::new(0),
            tx_retried: AtomicU64::new(0),
            // 1 µs .. 1 h at 3 significant digits.
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }
}

impl Counters {
    pub fn record_acquire(&self, waited: Duration) {
        self.acquisitions.fetch_add(1, Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut h) = self.latency_us.lock() {
            h.saturating_record(micros);
        }
        metrics::histogram!("taskstore_pool_acquire_seconds").record(waited.as_secs_f64());
    }

    pub fn incr(&self, counter: &AtomicU64, metric: &'static str) {
        counter.fetch_add(1, Relaxed);
        metrics::counter!(metric).increment(1);
    }

    pub fn snapshot(&self, pool: PoolState) -> Stats {
        let (p50, p90, p99, max) = match self.latency_us.lock() {
            Ok(h) if !h.is_empty() => (
                h.value_at_quantile(0.50),
                h.value_at_quantile(0.90),
                h.value_at_quantile(0.99),
                h.max(),
            ),
            _ => (0, 0, 0, 0),
        };
        metrics::gauge!("taskstore_pool_connections").set(f64::from(pool.connections));
        metrics::gauge!("taskstore_pool_idle").set(f64::from(pool.idle));
        metrics::gauge!("taskstore_pool_in_use").set(f64::from(pool.in_use));
        metrics::gauge!("taskstore_pool_waiters").set(f64::from(pool.waiters));
        Stats {
            pool,
            acquisitions: self.acquisitions.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            retries: self.retries.load(Relaxed),
            broken_discarded: self.broken.load(Relaxed),
            connections_created: self.created.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            leaks: self.leaks.load(Relaxed),
            transactions_committed: self.tx_committed.load(Relaxed),
            transactions_rolled_back: self.tx_rolled_back.load(Relaxed),
            transactions_retried: self.tx_retried.load(Relaxed),
            acquire_latency: LatencySummary {
                p50_us: p50,
                p90_us: p90,
                p99_us: p99,
                max_us: max,
            },
        }
    }
}

/// Acquisition latency percentiles in microseconds (0 until the first acquisition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// A snapshot of a pool's state and its counters since the pool was built.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Size, idle, in use, waiters.
    pub pool: PoolState,
    /// Connections handed out.
    pub acquisitions: u64,
    /// Acquisitions that failed at the deadline.
    pub timeouts: u64,
    /// Acquisition retries after transient connection errors.
    pub retries: u64,
    /// Connections discarded as broken, expired or stale.
    pub broken_discarded: u64,
    /// Connections opened.
    pub connections_created: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections held longer than `DATABASE_LEAK_THRESHOLD_MS`.
    pub leaks: u64,
    /// Transactions committed by `with_transaction`.
    pub transactions_committed: u64,
    /// Transactions rolled back by `with_transaction`.
    pub transactions_rolled_back: u64,
    /// Whole-transaction re-runs after serialization failures or deadlocks.
    pub transactions_retried: u64,
    /// Time to get a connection.
    pub acquire_latency: LatencySummary,
}
