//! Leak reports while they happen: with `DATABASE_LEAK_THRESHOLD_MS` set, every checkout is
//! registered here, and a reporter thread (one per pool, started with the first checkout)
//! looks at the registry every [`TICK`]. A connection held past the threshold is reported once
//! while it is out, naming the place that took it, and counted once in `stats().leaks`; it is
//! reported again, without counting, when it comes back. One that never comes back (a `Conn`
//! forgotten or stuck in a thread that never ends) is still reported and counted.
//!
//! Off by default: without a threshold nothing is registered and no thread runs.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

use super::shared::Shared;

/// How often the reporter looks: a leak is reported within the threshold plus this.
const TICK: Duration = Duration::from_millis(25);

/// The checkouts of one pool, while a leak threshold is set.
pub(crate) struct LeakWatch {
    out: Mutex<HashMap<u64, Checkout>>,
    next_key: AtomicU64,
    reporter: Once,
}

/// One connection out of the pool.
struct Checkout {
    taken_at: Instant,
    threshold: Duration,
    location: &'static Location<'static>,
    reported: bool,
}

impl Default for LeakWatch {
    fn default() -> Self {
        Self {
            out: Mutex::default(),
            next_key: AtomicU64::new(0),
            reporter: Once::new(),
        }
    }
}

impl LeakWatch {
    fn out(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Checkout>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports (and counts) every checkout held past its threshold and not reported yet.
    fn scan(&self, shared: &Shared) {
        let now = Instant::now();
        for c in self.out().values_mut() {
            let held = now.saturating_duration_since(c.taken_at);
            if !c.reported && held > c.threshold {
                c.reported = true;
                report_held(shared, c, held);
            }
        }
    }
}

/// Registers a checkout taken at `taken_at` by `location`; returns the key for [`returned`].
pub(crate) fn register(
    shared: &Arc<Shared>,
    threshold: Duration,
    location: &'static Location<'static>,
    taken_at: Instant,
) -> u64 {
    let watch = &shared.leak_watch;
    watch
        .reporter
        .call_once(|| spawn_reporter(Arc::downgrade(shared)));
    let key = watch.next_key.fetch_add(1, Relaxed);
    watch.out().insert(
        key,
        Checkout {
            taken_at,
            threshold,
            location,
            reported: false,
        },
    );
    key
}

/// The checkout `key` came back after `held`: reported again if it was reported while out;
/// reported and counted now if it is over the threshold and the reporter had not seen it yet.
pub(crate) fn returned(shared: &Shared, key: u64, held: Duration) {
    let Some(c) = shared.leak_watch.out().remove(&key) else {
        return;
    };
    if c.reported {
        tracing::warn!(
            pool = %shared.name,
            held_ms = held.as_millis() as u64,
            taken_at = %c.location,
            "a connection reported as held too long came back"
        );
    } else if held > c.threshold {
        report_held(shared, &c, held);
    }
}

fn report_held(shared: &Shared, c: &Checkout, held: Duration) {
    shared.counters.leaks.incr();
    tracing::warn!(
        pool = %shared.name,
        held_ms = held.as_millis() as u64,
        threshold_ms = c.threshold.as_millis() as u64,
        taken_at = %c.location,
        "connection held longer than DATABASE_LEAK_THRESHOLD_MS"
    );
}

/// The reporter holds the pool's state weakly and ends once the pool and all its connections
/// are gone.
fn spawn_reporter(shared: Weak<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("taskstore-leaks".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.leak_watch.scan(&shared);
            }
        });
    if let Err(error) = spawned {
        // Leaks are then reported only when they come back, as before.
        tracing::warn!(%error, "could not start the leak reporter thread");
    }
}
