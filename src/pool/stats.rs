//! Pool and transaction statistics: the counters a pool keeps, and the [`Stats`] snapshot
//! built from them. Each counter is also published through the `metrics` facade (see
//! `metrics`), where the pool's gauges are published too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::metrics::{self as m, Tally};
use crate::error::PoolState;

/// Counters shared by a pool and its connections.
pub(crate) struct Counters {
    acquisitions: AtomicU64,
    acquire_seconds: metrics::Histogram,
    latency_us: Mutex<Histogram<u64>>,
    pub timeouts: Tally,
    pub permanent_failures: Tally,
    pub retries_exhausted: Tally,
    pub waiter_rejections: Tally,
    pub retries: Tally,
    pub broken: Tally,
    pub created: Tally,
    pub connect_failures: Tally,
    pub leaks: Tally,
    pub tx_committed: Tally,
    pub tx_rolled_back: Tally,
    pub tx_retried: Tally,
}

impl Counters {
    /// Counters for the pool `pool`, registered with the recorder installed now.
    pub fn new(pool: &str) -> Self {
        let tally = |name| Tally::new(name, pool, &[]);
        Self {
            acquisitions: AtomicU64::new(0),
            acquire_seconds: m::acquire_histogram(pool),
            // 1 µs .. 1 h at 3 significant digits.
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
            ),
            timeouts: tally(m::TIMEOUTS),
            permanent_failures: tally(m::PERMANENT_FAILURES),
            retries_exhausted: tally(m::RETRIES_EXHAUSTED),
            waiter_rejections: tally(m::WAITER_REJECTIONS),
            retries: tally(m::RETRIES),
            broken: tally(m::BROKEN),
            created: tally(m::CREATED),
            connect_failures: tally(m::CONNECT_FAILURES),
            leaks: tally(m::LEAKS),
            tx_committed: Tally::new(m::TX_TOTAL, pool, &[("outcome", "committed")]),
            tx_rolled_back: Tally::new(m::TX_TOTAL, pool, &[("outcome", "rolled_back")]),
            tx_retried: tally(m::TX_RETRIES),
        }
    }

    pub fn record_acquire(&self, waited: Duration) {
        self.acquisitions.fetch_add(1, Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut h) = self.latency_us.lock() {
            h.saturating_record(micros);
        }
        self.acquire_seconds.record(waited.as_secs_f64());
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
        Stats {
            pool,
            acquisitions: self.acquisitions.load(Relaxed),
            timeouts: self.timeouts.get(),
            permanent_failures: self.permanent_failures.get(),
            retries_exhausted: self.retries_exhausted.get(),
            waiter_rejections: self.waiter_rejections.get(),
            retries: self.retries.get(),
            broken_discarded: self.broken.get(),
            connections_created: self.created.get(),
            connect_failures: self.connect_failures.get(),
            leaks: self.leaks.get(),
            transactions_committed: self.tx_committed.get(),
            transactions_rolled_back: self.tx_rolled_back.get(),
            transactions_retried: self.tx_retried.get(),
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Stats {
    /// Size, idle, in use, waiters.
    pub pool: PoolState,
    /// Connections handed out.
    pub acquisitions: u64,
    /// Acquisitions that ran into `DATABASE_ACQUIRE_TIMEOUT_MS`: a full pool (`PoolTimeout`)
    /// or a server that did not answer in time (`Unavailable`).
    pub timeouts: u64,
    /// Acquisitions that failed at once on a permanent connection error (authentication,
    /// unknown database, malformed URL).
    pub permanent_failures: u64,
    /// Acquisitions that failed before the deadline after `DATABASE_RETRY_ATTEMPTS` retries on
    /// transient connection errors.
    pub retries_exhausted: u64,
    /// Acquisitions refused at once because `DATABASE_POOL_MAX_WAITERS` callers were already
    /// waiting.
    pub waiter_rejections: u64,
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
