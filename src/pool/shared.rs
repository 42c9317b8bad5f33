//! State shared by a pool, its r2d2 manager and every checked-out connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::leaks::LeakWatch;
use super::metrics::Gauges;
use super::queue::Queue;
use super::stats::Counters;
use crate::conn::ConnectError;

/// See the module documentation.
pub(crate) struct Shared {
    /// `primary`, `replica1`, ...: the `pool` label of every metric and the span field.
    pub name: String,
    pub counters: Counters,
    gauges: Gauges,
    /// Bumped on every disconnect-class error; connections from an older generation are
    /// discarded at checkout instead of being handed out one by one to fail.
    pub generation: AtomicU64,
    pub waiters: AtomicU32,
    /// Callers waiting for a connection, in arrival order (see `queue`).
    pub queue: Queue,
    /// Connection attempts running right now (on r2d2's threads or a caller's).
    pub in_flight: AtomicU32,
    /// Checkouts, while `DATABASE_LEAK_THRESHOLD_MS` is set (see `leaks`).
    pub leak_watch: LeakWatch,
    error_seq: AtomicU64,
    /// Connections whose statement the watchdog interrupted (the server did not answer).
    interrupted: AtomicU64,
    last_error: Mutex<Option<(u64, ConnectError)>>,
}

impl Shared {
    /// Registers the pool's metrics under `name` with the recorder installed now; `max_size`
    /// is the pool's (`DATABASE_POOL_MAX_SIZE`).
    pub fn new(name: &str, max_size: u32) -> Self {
        Self {
            name: name.to_owned(),
            counters: Counters::new(name),
            gauges: Gauges::new(name),
            generation: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            queue: Queue::new(max_size),
            in_flight: AtomicU32::new(0),
            leak_watch: LeakWatch::default(),
            error_seq: AtomicU64::new(0),
            interrupted: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn record_failure(&self, err: &ConnectError) {
        let seq = self.error_seq.fetch_add(1, Relaxed) + 1;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, err.clone()));
        self.counters.connect_failures.incr();
    }

    /// The current error sequence number: pass it to [`Shared::error_since`] later.
    pub fn error_mark(&self) -> u64 {
        self.error_seq.load(Relaxed)
    }

    /// The most recent connection error recorded after `mark`, if any.
    pub fn error_since(&self, mark: u64) -> Option<ConnectError> {
        match &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((seq, err)) if *seq > mark => Some(err.clone()),
            _ => None,
        }
    }

    /// The most recent connection error, if the last attempt failed.
    pub fn last_error(&self) -> Option<ConnectError> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, e)| e.clone())
    }

    pub fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A connection came back from a statement the watchdog interrupted.
    pub fn note_interrupted(&self) {
        self.interrupted.fetch_add(1, Relaxed);
    }

    /// How many connections came back interrupted so far: compare two readings.
    pub fn interrupted(&self) -> u64 {
        self.interrupted.load(Relaxed)
    }

    /// Marks every connection opened so far as stale.
    pub fn evict_all(&self) {
        self.generation.fetch_add(1, Relaxed);
    }

    // The gauges move by increments at the moment the pool changes, from whichever thread
    // changed it: no lock, no snapshot that a concurrent update could overtake, and exact once
    // the updates are in. In this model a connection is idle from the moment it is opened
    // until a caller gets it, and again from the moment the caller returns it; connections are
    // closed only while idle (a broken one right after its return).

    /// The manager opened a connection for this pool.
    pub fn connection_opened(&self) {
        self.queue.opened();
        self.gauges.connections.increment(1.0);
        self.gauges.idle.increment(1.0);
    }

    /// A connection of this pool was closed (discarded, reaped, or the pool dropped).
    pub fn connection_closed(&self) {
        self.queue.closed();
        self.gauges.connections.decrement(1.0);
        self.gauges.idle.decrement(1.0);
    }

    /// A connection was handed to a caller.
    pub fn checked_out(&self) {
        self.gauges.idle.decrement(1.0);
        self.gauges.in_use.increment(1.0);
    }

    /// A caller gave its connection back.
    pub fn checked_in(&self) {
        self.gauges.in_use.decrement(1.0);
        self.gauges.idle.increment(1.0);
    }

    /// A caller starts waiting; returns how many were waiting before.
    pub fn waiter_enters(&self) -> u32 {
        self.gauges.waiters.increment(1.0);
        self.waiters.fetch_add(1, Relaxed)
    }

    /// A caller stops waiting.
    pub fn waiter_leaves(&self) {
        self.waiters.fetch_sub(1, Relaxed);
        self.gauges.waiters.decrement(1.0);
    }
}
