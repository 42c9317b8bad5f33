//! The pool: one r2d2 pool per database URL, acquisition with a hard deadline, the [`Conn`]
//! guard, start-up, and the pool's statistics and metrics.
//!
//! Acquisition is the layer's main promise: [`Database::conn`](crate::Database::conn) returns a
//! connection or a typed error within `DATABASE_ACQUIRE_TIMEOUT_MS` (plus a few milliseconds of
//! scheduling), also when the server is frozen or the network drops packets.
//!
//! How, given r2d2's own behaviour:
//! - r2d2 opens connections on its own threads and retries failed connects forever; a caller
//!   only ever *waits* for one, so no caller is stuck inside a connect.
//! - Callers that find no idle connection queue in arrival order (`queue`), and are served in
//!   that order. A caller that is not queued (one returning its connection and asking again at
//!   once, or a newcomer) may take an idle connection before them only while the longest
//!   waiter has waited less than [`OVERTAKE_BOUND`] (20 ms); after that every connection
//!   checked in is handed straight to the longest waiter. The bound keeps most of the
//!   throughput of a pool that lets returning threads barge (no context switch per
//!   acquisition) without its unbounded overtaking. Waiters still wake every 25 ms to look at
//!   connection errors and the deadline. libpq's `connect_timeout` bounds each attempt on
//!   those threads.
//! - r2d2's `test_on_check_out` would run a `SELECT 1` outside any deadline (and double the cost
//!   of a point query), so it is off. Instead a connection idle longer than
//!   `DATABASE_VALIDATE_IDLE_MS` is pinged under the watchdog (see [`crate::conn`]), which shuts
//!   the socket down at the deadline; connections used recently are trusted.
//! - Connection errors are classified. Transient ones (refused, starting up, too many clients)
//!   are retried with the crate's backoff (the `retry` crate's exponential delays and jitter),
//!   at most `DATABASE_RETRY_ATTEMPTS` times, each delay clipped to what is left of the one
//!   deadline. Permanent ones (authentication, unknown database, malformed URL) fail at once.
//! - Every checkout of a PostgreSQL connection polls its socket without blocking (no round
//!   trip): after a restart, a failover or `pg_terminate_backend` the server's goodbye and FIN
//!   are already there, so the connection is discarded instead of failing its caller.
//! - A disconnect-class error, or a connection found closed, evicts every idle connection of
//!   the pool (a generation counter): after a restart they are all dead, and handing them out
//!   one by one would fail one caller each.
//! - At the deadline, `PoolTimeout` means every connection is open and checked out; any other
//!   wait (a connect that did not complete, a liveness check that timed out, connect errors)
//!   is `Unavailable`.
//!
//! Each acquisition runs in a `debug`-level `tracing` span `acquire` with the field `pool`;
//! the events it logs (retries, discarded connections, the failure) carry it.
//!
//! # Metrics
//!
//! Published through the `metrics` facade, each with the label `pool` (`primary`, or
//! `replica1`, `replica2`, ... in the order of `DATABASE_REPLICA_URLS`), described with a unit
//! and a help text. Install the recorder before [`Database::connect`](crate::Database::connect):
//! the pools register their metrics when they are built.
//!
//! | metric | kind | counts or shows |
//! |---|---|---|
//! | `taskstore_pool_acquire_seconds` | histogram | time a caller waited for a connection it got |
//! | `taskstore_pool_timeouts_total` | counter | acquisitions that ran into `DATABASE_ACQUIRE_TIMEOUT_MS` |
//! | `taskstore_pool_permanent_failures_total` | counter | acquisitions failed at once on a permanent connection error |
//! | `taskstore_pool_retries_exhausted_total` | counter | acquisitions failed before the deadline after `DATABASE_RETRY_ATTEMPTS` retries |
//! | `taskstore_pool_waiter_rejections_total` | counter | acquisitions refused because `DATABASE_POOL_MAX_WAITERS` callers were waiting |
//! | `taskstore_pool_acquire_retries_total` | counter | acquisition retries after transient connection errors |
//! | `taskstore_pool_broken_total` | counter | connections discarded as broken, expired or stale |
//! | `taskstore_pool_connections_created_total` | counter | connections opened |
//! | `taskstore_pool_connect_failures_total` | counter | connection attempts that failed |
//! | `taskstore_pool_leaks_total` | counter | connections held longer than `DATABASE_LEAK_THRESHOLD_MS` |
//! | `taskstore_tx_total` | counter | transactions, by `outcome` (`committed`, `rolled_back`) |
//! | `taskstore_tx_retries_total` | counter | whole-transaction re-runs |
//! | `taskstore_pool_connections` | gauge | connections open |
//! | `taskstore_pool_idle` | gauge | open connections waiting in the pool |
//! | `taskstore_pool_in_use` | gauge | open connections checked out |
//! | `taskstore_pool_waiters` | gauge | callers waiting for a connection |
//!
//! The gauges move when the pool changes (a connection opened, closed, checked out or
//! returned; a caller starting or stopping to wait), not when [`Stats`] are read.
//!
//! Files: `acquire` (fast path, waiters, retries, the checkout decision, the deadline error),
//! `guard` ([`Conn`]: check-in reset, leak report), `manager` (r2d2's `ManageConnection`),
//! `queue` (the fair queue of waiters in front of r2d2, with the
//! direct hand-off at check-in), `startup` (waiting for the database, the `max_connections` check), `shared` (state shared
//! by a pool and its connections), `stats` ([`Stats`]) and `metrics` (names, units, labels).

mod acquire;
mod guard;
mod leaks;
mod manager;
mod metrics;
mod queue;
mod shared;
mod startup;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use guard::Conn;
pub(crate) use metrics::describe as describe_metrics;
pub use queue::OVERTAKE_BOUND;
pub(crate) use startup::wait_until_ready;
pub use stats::{LatencySummary, Stats};

use crate::backoff::Backoff;
use crate::config::{BackendKind, Config, DatabaseUrl, PoolConfig};
use crate::conn::{ConnectError, Connector, SessionReset};
use crate::error::PoolState;
use manager::Manager;
use shared::Shared;

/// The longest r2d2 waits before it tries a failed background connect again.
const RECONNECT_BACKOFF_CAP: Duration = Duration::from_millis(150);

/// One r2d2 pool and the state it shares with its connections.
pub(crate) struct Pool {
    /// `None` only while the pool is being dropped (see its `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    shared: Arc<Shared>,
    settings: PoolConfig,
    url: DatabaseUrl,
    reset: Arc<SessionReset>,
}

/// r2d2's connection errors are logged (scrubbed and classified) and remembered for the next
/// timeout error by the manager, not here.
#[derive(Debug)]
struct ErrorSink;

impl r2d2::HandleError<ConnectError> for ErrorSink {
    fn handle_error(&self, _error: ConnectError) {}
}

impl Pool {
    /// Builds the pool `name` (`primary`, `replica1`, ...: the `pool` label of its metrics)
    /// for `url`. r2d2 starts opening `DATABASE_POOL_MIN_IDLE` connections in the background;
    /// nothing here waits for the database.
    pub fn build(name: &str, url: &DatabaseUrl, config: &Config) -> Self {
        let settings = config.pool().clone();
        let shared = Arc::new(Shared::new(name, settings.max_size));
        let connector = Connector::new(url, &settings, config.session());
        let reset = Arc::new(connector.session_reset());
        let manager = Manager::new(connector, settings.max_lifetime, Arc::clone(&shared));
        let pool = r2d2::Pool::builder()
            .max_size(settings.max_size)
            .min_idle(Some(settings.min_idle))
            .test_on_check_out(false)
            // The layer never calls r2d2's `get()` (it waits in its own slices), so this only
            // caps r2d2's reconnect back-off at half of it: a failed background connect is
            // tried again after at most 150 ms, whatever DATABASE_ACQUIRE_TIMEOUT_MS says, and
            // callers get a connection promptly once the server accepts again.
            .connection_timeout(RECONNECT_BACKOFF_CAP * 2)
            .idle_timeout(Some(settings.idle_timeout))
            .max_lifetime(Some(settings.max_lifetime))
            .error_handler(Box::new(ErrorSink))
            .build_unchecked(manager);
        Self {
            pool: Some(pool),
            shared,
            settings,
            url: url.clone(),
            reset,
        }
    }

    fn r2d2(&self) -> &r2d2::Pool<Manager> {
        self.pool
            .as_ref()
            .expect("the pool lives until it is dropped")
    }

    /// The URL this pool connects to (its `Display` hides the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn backend(&self) -> BackendKind {
        self.url.backend()
    }

    /// The `pool` label of this pool's metrics.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn state(&self) -> PoolState {
        let r2d2 = self.r2d2();
        let s = r2d2.state();
        PoolState {
            max_size: r2d2.max_size(),
            connections: s.connections,
            idle: s.idle_connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
            waiters: self
                .shared
                .waiters
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A snapshot of the pool's state and counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(self.state())
    }

    /// The counters, for the transaction layer's outcomes.
    pub fn counters(&self) -> &stats::Counters {
        &self.shared.counters
    }
}

impl Drop for Pool {
    /// r2d2 opens connections on its own threads and never joins them. A process that exits
    /// while one of them is inside libpq's connect races OpenSSL's exit-time clean-up and can
    /// crash (seen as SIGSEGV in short-lived CLI runs). Dropping the pool stops new attempts;
    /// then wait, bounded by the connect timeout, for the ones already running.
    fn drop(&mut self) {
        drop(self.pool.take());
        let deadline = Instant::now()
            + self.settings.connect_timeout.max(Duration::from_secs(2))
            + Duration::from_secs(1);
        let in_flight = || {
            self.shared
                .in_flight
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let mut delays =
            Backoff::new(Duration::from_millis(1), Duration::from_millis(10)).until(deadline);
        while in_flight() > 0 {
            match delays.next() {
                Some(delay) => std::thread::sleep(delay),
                None => break,
            }
        }
    }
}
