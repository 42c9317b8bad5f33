//! Pools, acquisition with a hard deadline, and the [`Database`] handle.
//!
//! Acquisition is the layer's main promise: [`Database::conn`] returns a connection or a typed
//! error within `DATABASE_ACQUIRE_TIMEOUT_MS` (plus a few milliseconds of scheduling), also when
//! the server is frozen or the network drops packets.
//!
//! How, given r2d2's own behaviour:
//! - r2d2 opens connections on its own threads and retries failed connects forever; a caller
//!   only ever *waits* for one, in slices, so no caller is stuck inside a connect. libpq's
//!   `connect_timeout` bounds each attempt on those threads.
//! - r2d2's `test_on_check_out` would run a `SELECT 1` outside any deadline (and double the cost
//!   of a point query), so it is off. Instead a connection idle longer than
//!   `DATABASE_VALIDATE_IDLE_MS` is pinged under the watchdog (see `watchdog`), which shuts the
//!   socket down at the deadline; connections used recently are trusted.
//! - Connection errors are classified. Transient ones (refused, starting up, too many clients)
//!   are retried with the `retry` crate — exponential backoff with jitter, at most
//!   `DATABASE_RETRY_ATTEMPTS` times, each delay clipped to what is left of the one deadline.
//!   Permanent ones (authentication, unknown database, malformed URL) fail at once.
//! - Every checkout of a PostgreSQL connection polls its socket without blocking (no round
//!   trip): after a restart, a failover or `pg_terminate_backend` the server's goodbye and FIN
//!   are already there, so the connection is discarded instead of failing its caller.
//! - A disconnect-class error, or a connection found closed, evicts every idle connection of
//!   the pool (a generation counter): after a restart they are all dead, and handing them out
//!   one by one would fail one caller each.
//! - At the deadline, `PoolTimeout` means every connection is open and checked out; any other
//!   wait (a connect that did not complete, a liveness check that timed out, connect errors)
//!   is `Unavailable`.

mod connection;
mod health;
mod manager;
pub(crate) mod stats;
mod watchdog;

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::Rng;
use retry::OperationResult;

pub(crate) use connection::on_backend;
pub use connection::{DbConnection, MultiBackend};
pub use health::Health;
pub use manager::ConnectError;
use manager::{Manager, SessionReset, Shared};
pub use stats::{LatencySummary, Stats};

use crate::backoff::Backoff;
use crate::config::{BackendKind, Config, DatabaseUrl};
use crate::error::{ConnectFailure, Error, PoolState, Result};

type Pool = r2d2::Pool<Manager>;

/// How long one wait inside an acquisition lasts before the caller looks at connection errors
/// and the deadline again.
const WAIT_SLICE: Duration = Duration::from_millis(25);

/// The handle an application builds once at start-up and shares (it is cheap to clone).
///
/// ```no_run
/// # fn main() -> Result<(), taskstore::Error> {
/// let config = taskstore::Config::from_env()?;
/// let db = taskstore::Database::connect(&config)?;
/// let mut conn = db.conn()?;           // a connection, or a typed error within the deadline
/// # let _ = &mut conn;
/// println!("{:?}", db.stats().pool);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// For `sqlite::memory:`: a connection held for the life of the `Database`, because an
    /// in-memory database disappears when its last connection closes.
    _anchor: Option<std::sync::Mutex<DbConnection>>,
    primary: PoolHandle,
    replicas: Vec<PoolHandle>,
    next_replica: AtomicUsize,
}

struct PoolHandle {
    /// `None` only while the handle is being dropped (see its `Drop`).
    pool: Option<Pool>,
    shared: Arc<Shared>,
    /// Bound on waiting for in-flight connection attempts when the handle is dropped.
    connect_timeout: Duration,
    url: DatabaseUrl,
    reset: Arc<SessionReset>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.inner.primary.url)
            .field("replicas", &self.inner.replicas.len())
            .field("pool", &self.pool_state())
            .finish()
    }
}

/// r2d2's connection errors go to the log scrubbed and classified, and are remembered for the
/// next timeout error.
#[derive(Debug)]
struct ErrorSink;

impl r2d2::HandleError<ConnectError> for ErrorSink {
    fn handle_error(&self, _error: ConnectError) {
        // Already recorded and logged by the manager.
    }
}

impl Database {
    /// Builds the pools, waits up to `DATABASE_STARTUP_WAIT_MS` for the database (logging each
    /// attempt), checks the pool against the server's `max_connections`, and applies pending
    /// migrations when `DATABASE_MIGRATE_ON_STARTUP` is true.
    pub fn connect(config: &Config) -> Result<Self> {
        let anchor = if config.database_url().is_memory() {
            let shared = Arc::new(Shared::new());
            let manager = Manager::new(
                config.database_url(),
                config.pool(),
                config.session(),
                shared,
            );
            let conn = manager.open().map_err(|e| Error::Unavailable {
                kind: e.kind,
                message: e.message,
            })?;
            Some(std::sync::Mutex::new(*conn.conn))
        } else {
            None
        };
        // Probe before building the pool: r2d2 would otherwise start its own connection attempts
        // in parallel with the probe's, doubling the load (and the log lines) on a database that
        // is still starting.
        PoolHandle::wait_until_ready(config.database_url(), config)?;
        let primary = PoolHandle::build(config.database_url(), config)?;
        let replicas = config
            .replica_urls()
            .iter()
            .map(|u| PoolHandle::build(u, config))
            .collect::<Result<Vec<_>>>()?;
        let db = Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                _anchor: anchor,
                primary,
                replicas,
                next_replica: AtomicUsize::new(0),
            }),
        };
        db.check_server_capacity();
        if config.migrate_on_startup() {
            crate::migrate::run_on_startup(&db)?;
        }
        Ok(db)
    }

    /// The configuration this database was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The backend of the primary.
    pub fn backend(&self) -> BackendKind {
        self.inner.primary.url.backend()
    }

    /// Checks a connection out of the primary pool, within the acquire deadline.
    ///
    /// The caller may do anything with it, including a raw `BEGIN` or `SET` through
    /// `sql_query`, so it is reset when it returns to the pool: any open transaction rolled
    /// back, session settings restored (on PostgreSQL `RESET ALL` and friends, one round trip
    /// on return; on SQLite the layer's pragmas, no network). A connection that cannot be reset
    /// is discarded. [`Database::run`], [`Database::with_transaction`] and the repositories run
    /// only the layer's own statements and skip that round trip, which is why they are the
    /// fast path: prefer them for ordinary work and keep `conn()` for code that needs the
    /// connection itself.
    #[track_caller]
    pub fn conn(&self) -> Result<Conn> {
        self.inner
            .primary
            .acquire(&self.inner.config, Location::caller())
    }

    /// Checks a connection out of a read replica (round robin) when replicas are configured,
    /// else out of the primary. A replica that cannot hand out a connection falls back to the
    /// primary. Replicas lag: read your own writes from [`Database::conn`].
    #[track_caller]
    pub fn read_conn(&self) -> Result<Conn> {
        let location = Location::caller();
        let replicas = &self.inner.replicas;
        if replicas.is_empty() {
            return self.inner.primary.acquire(&self.inner.config, location);
        }
        let i = self.inner.next_replica.fetch_add(1, Relaxed) % replicas.len();
        match replicas[i].acquire(&self.inner.config, location) {
            Ok(conn) => Ok(conn),
            Err(e) => {
                tracing::warn!(replica = %replicas[i].url, error = %e, "read replica unavailable; reading from the primary");
                self.inner.primary.acquire(&self.inner.config, location)
            }
        }
    }

    /// Checks out a connection, runs `f` on it and returns its result. A disconnect-class error
    /// discards the connection and evicts its idle siblings.
    ///
    /// The connection is not reset on return (see [`Database::conn`]): `f` must not leave a
    /// transaction open or change session settings; use [`Database::with_transaction`] for
    /// transactions.
    #[track_caller]
    pub fn run<T>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?.trusted();
        let result = f(&mut conn);
        if let Err(e) = &result {
            conn.note_error(e);
        }
        result
    }

    /// Like [`Database::run`], on a read replica when configured.
    #[track_caller]
    pub fn run_read<T>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.read_conn()?.trusted();
        let result = f(&mut conn);
        if let Err(e) = &result {
            conn.note_error(e);
        }
        result
    }

    /// The primary pool's current state.
    pub fn pool_state(&self) -> PoolState {
        self.inner.primary.state()
    }

    /// A snapshot of the primary pool's state and counters.
    pub fn stats(&self) -> Stats {
        let p = &self.inner.primary;
        p.shared.counters.snapshot(p.state())
    }

    pub(crate) fn counters(&self) -> &stats::Counters {
        &self.inner.primary.shared.counters
    }

    /// Warns when this pool alone could exhaust the server's connection slots.
    fn check_server_capacity(&self) {
        if self.backend() != BackendKind::Postgres {
            return;
        }
        let result = self.run(|conn| {
            Ok(diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "current_setting('max_connections')",
            ))
            .get_result::<String>(conn)?)
        });
        if let Ok(Some(max)) = result.map(|s| s.parse::<u32>().ok()) {
            let ours = self.inner.config.pool().max_size;
            if ours + 3 > max {
                tracing::warn!(
                    pool_max_size = ours,
                    server_max_connections = max,
                    "DATABASE_POOL_MAX_SIZE does not fit the server's max_connections (minus reserved slots); \
                     lower it or raise max_connections"
                );
            } else {
                tracing::debug!(
                    pool_max_size = ours,
                    server_max_connections = max,
                    "pool fits the server"
                );
            }
        }
    }
}

/// Opens one connection to `url` outside any pool, customised like a pooled one: for work that
/// needs a session of its own (migrations hold a session advisory lock on it) or only one
/// round trip (a one-shot status check), without building a pool.
pub(crate) fn open_dedicated(config: &Config, url: &DatabaseUrl) -> Result<DbConnection> {
    let manager = Manager::new(
        url,
        config.pool(),
        config.session(),
        Arc::new(Shared::new()),
    );
    manager
        .open()
        .map(|m| *m.conn)
        .map_err(|e| Error::Unavailable {
            kind: e.kind,
            message: e.message,
        })
}

impl PoolHandle {
    fn build(url: &DatabaseUrl, config: &Config) -> Result<Self> {
        let shared = Arc::new(Shared::new());
        let manager = Manager::new(url, config.pool(), config.session(), Arc::clone(&shared));
        let reset = Arc::new(manager.session_reset(config.pool().acquire_timeout));
        let pool = r2d2::Pool::builder()
            .max_size(config.pool().max_size)
            .min_idle(Some(config.pool().min_idle))
            .test_on_check_out(false)
            .connection_timeout(config.pool().acquire_timeout)
            .idle_timeout(Some(config.pool().idle_timeout))
            .max_lifetime(Some(config.pool().max_lifetime))
            .error_handler(Box::new(ErrorSink))
            .build_unchecked(manager);
        Ok(Self {
            pool: Some(pool),
            shared,
            connect_timeout: config.pool().connect_timeout,
            url: url.clone(),
            reset,
        })
    }

    fn pool(&self) -> &Pool {
        self.pool
            .as_ref()
            .expect("the pool lives until the handle is dropped")
    }

    fn state(&self) -> PoolState {
        let s = self.pool().state();
        PoolState {
            max_size: self.pool().max_size(),
            connections: s.connections,
            idle: s.idle_connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
            waiters: self.shared.waiters.load(Relaxed),
        }
    }

    /// Start-up: wait for the database, logging each attempt, failing fast on permanent errors.
    fn wait_until_ready(url: &DatabaseUrl, config: &Config) -> Result<()> {
        let start = Instant::now();
        let deadline = start + config.pool().startup_wait;
        let manager = Manager::new(
            url,
            config.pool(),
            config.session(),
            Arc::new(Shared::new()),
        );
        let mut delays = Backoff::new(
            config
                .pool()
                .retry_base_delay
                .max(Duration::from_millis(10)),
            Duration::from_secs(2),
        )
        .until(deadline);
        for attempt in 1u32.. {
            match manager.open() {
                Ok(_) => {
                    if attempt > 1 {
                        tracing::info!(attempt, waited_ms = start.elapsed().as_millis() as u64, url = %url, "database is ready");
                    }
                    return Ok(());
                }
                Err(e) if !e.kind.is_transient() => {
                    tracing::error!(attempt, kind = %e.kind, error = %e.message, url = %url, "database refused the connection");
                    return Err(Error::Unavailable {
                        kind: e.kind,
                        message: e.message,
                    });
                }
                Err(e) => {
                    let Some(delay) = delays.next() else {
                        return Err(Error::Unavailable {
                            kind: e.kind,
                            message: format!(
                                "gave up after {attempt} attempts over {} ms (DATABASE_STARTUP_WAIT_MS); last error: {}",
                                start.elapsed().as_millis(),
                                e.message
                            ),
                        });
                    };
                    tracing::info!(attempt, kind = %e.kind, error = %e.message, retry_in_ms = delay.as_millis() as u64, url = %url, "waiting for the database");
                    std::thread::sleep(delay);
                }
            }
        }
        unreachable!("the start-up loop returns")
    }

    fn acquire(&self, config: &Config, location: &'static Location<'static>) -> Result<Conn> {
        let start = Instant::now();
        let deadline = start + config.pool().acquire_timeout;
        let counters = &self.shared.counters;

        // A pooled connection found dead during this acquisition: if the deadline passes, the
        // caller learns that the server is not answering rather than that the pool is full.
        let mut dead: Option<Dead> = None;

        // Fast path: an idle connection, no waiting, no bookkeeping for waiters.
        if let Some(pooled) = self.pool().try_get() {
            match self.checkout(pooled, deadline, config, location) {
                Ok(conn) => {
                    // The checkout's own clock reading: one read less on the hot path.
                    counters.record_acquire(conn.taken_at.saturating_duration_since(start));
                    return Ok(conn);
                }
                Err(rejected) => dead = rejected.or(dead),
            }
        }

        let _waiter =
            WaiterGuard::enter(&self.shared, config.pool().max_waiters).ok_or_else(|| {
                counters.incr(&counters.timeouts, "taskstore_pool_timeouts_total");
                Error::PoolTimeout {
                    waited: start.elapsed(),
                    state: self.state(),
                    last_error: Some(format!(
                        "{} callers are already waiting (DATABASE_POOL_MAX_WAITERS); failing fast",
                        config.pool().max_waiters
                    )),
                }
            })?;

        let base = u64::try_from(config.pool().retry_base_delay.as_millis())
            .unwrap_or(50)
            .max(1);
        let delays = retry::delay::Exponential::from_millis(base)
            .map(|d| d.mul_f64(rand::rng().random_range(0.5..1.5)))
            .map(move |d| d.min(deadline.saturating_duration_since(Instant::now())))
            .take(config.pool().retry_attempts as usize);

        let outcome = retry::retry_with_index(delays, |attempt| {
            if attempt > 1 {
                counters.incr(&counters.retries, "taskstore_pool_acquire_retries_total");
            }
            match self.wait_for_connection(deadline, config, location, &mut dead) {
                Ok(conn) => OperationResult::Ok(conn),
                Err(Wait::Failed(e)) if e.kind.is_transient() && Instant::now() < deadline => {
                    tracing::debug!(attempt, kind = %e.kind, error = %e.message, "transient connection error; retrying");
                    OperationResult::Retry(Wait::Failed(e))
                }
                Err(other) => OperationResult::Err(other),
            }
        });

        match outcome {
            Ok(conn) => {
                counters.record_acquire(conn.taken_at.saturating_duration_since(start));
                Ok(conn)
            }
            Err(retry::Error { error, .. }) => {
                counters.incr(&counters.timeouts, "taskstore_pool_timeouts_total");
                let state = self.state();
                let err = match error {
                    Wait::Failed(e) => Error::Unavailable {
                        kind: e.kind,
                        message: e.message,
                    },
                    Wait::Deadline => self.deadline_error(start.elapsed(), state, dead),
                };
                tracing::warn!(error = %err, location = %location, "connection acquisition failed");
                Err(err)
            }
        }
    }

    /// At the deadline: a pool whose connections are all open and checked out is exhausted
    /// (`PoolTimeout`). Anything else means the caller waited for the server — a new
    /// connection that did not complete, or a pooled one that failed its liveness check — and
    /// is `Unavailable`, with the last connection error when there is one.
    fn deadline_error(&self, waited: Duration, state: PoolState, dead: Option<Dead>) -> Error {
        let last = self.shared.last_error();
        let waited_ms = waited.as_millis();
        if state.connections >= state.max_size && state.idle == 0 {
            return Error::PoolTimeout {
                waited,
                state,
                last_error: last.map(|e| e.to_string()),
            };
        }
        match (last, dead) {
            (Some(e), _) => Error::Unavailable {
                kind: e.kind,
                message: format!(
                    "no connection within {waited_ms} ms; last error: {}",
                    e.message
                ),
            },
            (None, Some(d)) => Error::Unavailable {
                kind: if d.watchdog_fired {
                    ConnectFailure::Timeout
                } else {
                    ConnectFailure::classify(&d.message)
                },
                message: format!(
                    "no live connection within {waited_ms} ms; a pooled connection failed its \
                     liveness check ({}) and no new one could be opened in time",
                    d.message
                ),
            },
            (None, None) => Error::Unavailable {
                kind: ConnectFailure::Timeout,
                message: format!(
                    "the server did not complete a new connection within {waited_ms} ms ({state})"
                ),
            },
        }
    }

    /// Waits for a usable connection until a new connection error is recorded or the deadline.
    /// A permanent error (authentication, unknown database, ...) from the most recent connect
    /// attempt ends the wait at once when the pool needs a new connection to serve the caller:
    /// waiting for r2d2's next background attempt would only fail later with the same error.
    fn wait_for_connection(
        &self,
        deadline: Instant,
        config: &Config,
        location: &'static Location<'static>,
        dead: &mut Option<Dead>,
    ) -> Result<Conn, Wait> {
        let mark = self.shared.error_mark();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Wait::Deadline);
            }
            match self.pool().get_timeout(remaining.min(WAIT_SLICE)) {
                Ok(pooled) => match self.checkout(pooled, deadline, config, location) {
                    Ok(conn) => return Ok(conn),
                    Err(rejected) => *dead = rejected.or(dead.take()),
                },
                Err(_) => {
                    if let Some(e) = self.shared.error_since(mark) {
                        return Err(Wait::Failed(e));
                    }
                    if let Some(e) = self.shared.last_error() {
                        let s = self.pool().state();
                        if !e.kind.is_transient() && s.connections < self.pool().max_size() {
                            return Err(Wait::Failed(e));
                        }
                    }
                }
            }
        }
    }

    /// Decides whether a connection from the pool may be handed out. Stale and expired
    /// connections are discarded (`Err(None)`); dead ones too, and they evict their idle
    /// siblings (`Err(Some(_))`).
    ///
    /// Two checks find dead connections. The first costs one `poll()` and no round trip: an
    /// idle PostgreSQL connection has nothing to read, so readable data or a hang-up on its
    /// socket means the server said goodbye (restart, `pg_terminate_backend`, failover). The
    /// second, for connections idle longer than `DATABASE_VALIDATE_IDLE_MS`, is a round trip
    /// under the watchdog: it catches a server that vanished without a word.
    fn checkout(
        &self,
        mut pooled: r2d2::PooledConnection<Manager>,
        deadline: Instant,
        config: &Config,
        location: &'static Location<'static>,
    ) -> Result<Conn, Option<Dead>> {
        let now = Instant::now();
        let meta = &mut pooled.meta;
        if meta.generation < self.shared.generation.load(Relaxed) || now >= meta.expires {
            meta.broken = true;
            return Err(None);
        }
        if let Some(state) = meta.socket.and_then(watchdog::unexpected_input) {
            meta.broken = true;
            let message = match state {
                watchdog::Input::HangUp => "the server closed the connection",
                watchdog::Input::Data => "the server sent data on an idle connection",
            };
            if state == watchdog::Input::HangUp {
                tracing::info!(
                    "discarding an idle connection its server closed; evicting its idle siblings"
                );
                self.shared.evict_all();
            } else {
                tracing::info!(
                    "discarding an idle connection with unexpected input from the server"
                );
            }
            return Err(Some(Dead {
                message: message.into(),
                watchdog_fired: false,
            }));
        }
        if now.duration_since(meta.last_used) >= config.pool().validate_idle {
            let socket = meta.socket;
            let (result, fired) =
                watchdog::with_deadline(socket, deadline, || manager::ping(&mut pooled.conn));
            if let Err(message) = result {
                pooled.meta.broken = true;
                tracing::info!(watchdog_fired = fired, error = %message, "discarding a dead idle connection; evicting its idle siblings");
                self.shared.evict_all();
                return Err(Some(Dead {
                    message,
                    watchdog_fired: fired,
                }));
            }
        }
        pooled.meta.last_used = now;
        Ok(Conn {
            inner: Some(pooled),
            taken_at: now,
            location,
            shared: Arc::clone(&self.shared),
            leak_threshold: config.pool().leak_threshold,
            reset: Some(Arc::clone(&self.reset)),
        })
    }
}

/// A pooled connection found dead at checkout.
struct Dead {
    /// Why, scrubbed.
    message: String,
    /// The liveness check ran into the acquisition deadline.
    watchdog_fired: bool,
}

impl Drop for PoolHandle {
    /// r2d2 opens connections on its own threads and never joins them. A process that exits
    /// while one of them is inside libpq's connect races OpenSSL's exit-time clean-up and can
    /// crash (seen as SIGSEGV in short-lived CLI runs). Dropping the pool stops new attempts;
    /// then wait, bounded by the connect timeout, for the ones already running.
    fn drop(&mut self) {
        drop(self.pool.take());
        let deadline = Instant::now()
            + self.connect_timeout.max(Duration::from_secs(2))
            + Duration::from_secs(1);
        while self.shared.in_flight.load(Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

enum Wait {
    Failed(ConnectError),
    Deadline,
}

/// Counts a caller as waiting for as long as it lives.
struct WaiterGuard<'a>(&'a Shared);

impl<'a> WaiterGuard<'a> {
    fn enter(shared: &'a Shared, max: u32) -> Option<Self> {
        let before = shared.waiters.fetch_add(1, Relaxed);
        if max > 0 && before >= max {
            shared.waiters.fetch_sub(1, Relaxed);
            return None;
        }
        Some(Self(shared))
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Relaxed);
    }
}

/// A checked-out connection. Dereferences to [`DbConnection`]; returns to the pool on drop.
pub struct Conn {
    inner: Option<r2d2::PooledConnection<Manager>>,
    taken_at: Instant,
    location: &'static Location<'static>,
    shared: Arc<Shared>,
    leak_threshold: Option<Duration>,
    /// Set while the connection may carry state a caller left behind; see [`Database::conn`].
    reset: Option<Arc<SessionReset>>,
}

impl Conn {
    /// For the layer's own code, which leaves no transaction or session setting behind: skips
    /// the reset on return.
    pub(crate) fn trusted(mut self) -> Self {
        self.reset = None;
        self
    }

    /// Discards this connection instead of returning it to the pool.
    pub fn discard(&mut self) {
        if let Some(p) = self.inner.as_mut() {
            p.meta.broken = true;
        }
    }

    /// Looks at an error this connection produced: a disconnect discards it and evicts the
    /// pool's idle connections.
    pub fn note_error(&mut self, err: &Error) {
        if err.is_disconnect() {
            self.discard();
            self.shared.evict_all();
            tracing::warn!(error = %err, "connection lost; discarding it and evicting idle connections");
        }
    }

    /// The place in the caller's code that checked this connection out.
    pub fn taken_at(&self) -> &'static Location<'static> {
        self.location
    }

    #[expect(dead_code, reason = "used by the transaction module (issue 3)")]
    pub(crate) fn counters(&self) -> &stats::Counters {
        &self.shared.counters
    }
}

impl Deref for Conn {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self
            .inner
            .as_ref()
            .expect("connection present until drop")
            .conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self
            .inner
            .as_mut()
            .expect("connection present until drop")
            .conn
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("taken_at", &format_args!("{}", self.location))
            .finish()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let now = Instant::now();
        let held = now.saturating_duration_since(self.taken_at);
        if let Some(threshold) = self.leak_threshold
            && held > threshold
        {
            let c = &self.shared.counters;
            c.incr(&c.leaks, "taskstore_pool_leaks_total");
            tracing::warn!(
                held_ms = held.as_millis() as u64,
                threshold_ms = threshold.as_millis() as u64,
                taken_at = %self.location,
                "connection held longer than DATABASE_LEAK_THRESHOLD_MS"
            );
        }
        if std::thread::panicking() {
            // A panic may have left a transaction open; never return such a connection.
            self.discard();
        }
        if let (Some(reset), Some(p)) = (self.reset.take(), self.inner.as_mut())
            && !p.meta.broken
        {
            let deadline = Instant::now() + reset.deadline;
            let socket = p.meta.socket;
            let (result, _) =
                watchdog::with_deadline(socket, deadline, || reset.apply(&mut p.conn));
            if let Err(error) = result {
                tracing::warn!(%error, taken_at = %self.location, "could not reset a returned connection; discarding it");
                p.meta.broken = true;
            }
        }
        if let Some(mut p) = self.inner.take() {
            p.meta.last_used = now;
            drop(p);
        }
    }
}
