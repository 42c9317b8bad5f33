//! The r2d2 manager: opens connections for one pool (through [`Connector`]) and judges them on
//! return.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rand::Rng;

use super::shared::Shared;
use crate::conn::{ConnectError, Connector, DbConnection, Opened, Slot};
use crate::error::ConnectFailure;

/// What the pool keeps per connection besides the connection itself.
#[derive(Debug)]
pub(crate) struct Meta {
    pub expires: Instant,
    pub last_used: Instant,
    pub generation: u64,
    pub broken: bool,
    /// A caller used the connection raw: reset its session at the next checkout.
    pub needs_reset: bool,
    /// The liveness slot of a PostgreSQL connection (its socket, the watchdog's verdict).
    pub slot: Option<Arc<Slot>>,
    /// Whether row-level security applies to this session on `tasks`, once asked (see
    /// [`Conn::row_security`](super::Conn::row_security)); `None`: not asked yet.
    pub row_security: Option<bool>,
}

/// A pooled connection with its bookkeeping.
pub(crate) struct Managed {
    /// Boxed: r2d2 moves its connections in and out of its idle list on every checkout and
    /// return, and a `PgConnection` (statement cache, buffers) is several hundred bytes.
    pub conn: Box<DbConnection>,
    pub meta: Meta,
    /// To count the connection out of the gauges when r2d2 closes it.
    shared: Arc<Shared>,
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.shared.connection_closed();
    }
}

/// The r2d2 manager of one pool.
pub(crate) struct Manager {
    connector: Connector,
    max_lifetime: Duration,
    shared: Arc<Shared>,
}

impl Manager {
    pub fn new(connector: Connector, max_lifetime: Duration, shared: Arc<Shared>) -> Self {
        Self {
            connector,
            max_lifetime,
            shared,
        }
    }
}

/// Counts a connection attempt as running for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Managed;
    type Error = ConnectError;

    fn connect(&self) -> Result<Managed, ConnectError> {
        self.shared.in_flight.fetch_add(1, Relaxed);
        let _done = InFlight(&self.shared);
        match self.connector.open() {
            Ok(Opened { conn, slot }) => {
                self.shared.clear_error();
                self.shared.counters.created.incr();
                self.shared.connection_opened();
                // Up to 5 % shorter than the configured lifetime, so that a pool filled in one
                // burst does not recycle every connection in the same second.
                let jitter = rand::rng().random_range(0.0..0.05);
                let lifetime = self.max_lifetime.mul_f64(1.0 - jitter);
                let now = Instant::now();
                Ok(Managed {
                    conn: Box::new(conn),
                    meta: Meta {
                        expires: now + lifetime,
                        last_used: now,
                        generation: self.shared.generation.load(Relaxed),
                        broken: false,
                        needs_reset: false,
                        slot,
                        row_security: None,
                    },
                    shared: Arc::clone(&self.shared),
                })
            }
            Err(err) => {
                self.shared.record_failure(&err);
                // Debug, not warn: r2d2 retries in the background and every caller that gives up
                // logs the failure itself (and start-up logs each of its attempts).
                tracing::debug!(pool = %self.shared.name, kind = %err.kind, error = %err.message, "database connection attempt failed");
                Err(err)
            }
        }
    }

    fn is_valid(&self, conn: &mut Managed) -> Result<(), ConnectError> {
        crate::conn::ping(&mut conn.conn).map_err(|message| ConnectError {
            kind: ConnectFailure::classify(&message),
            message,
            origin: None,
        })
    }

    fn has_broken(&self, conn: &mut Managed) -> bool {
        // Expiry is not checked here: checkout discards expired connections, and r2d2's
        // reaper closes idle ones past DATABASE_MAX_LIFETIME_S. One clock read less per call.
        let broken = is_broken(&self.shared, conn);
        if broken {
            self.shared.counters.broken.incr();
        }
        broken
    }
}

/// Whether a returned connection must be closed rather than used again: marked broken, its
/// statement interrupted by the watchdog, from before an eviction, or left in a broken
/// transaction state. r2d2 asks at every return ([`Manager::has_broken`]); the queue asks
/// before it hands a connection to a waiter directly.
pub(crate) fn is_broken(shared: &Shared, conn: &mut Managed) -> bool {
    conn.meta.broken
        || conn.meta.slot.as_ref().is_some_and(|s| s.fired().is_some())
        || conn.meta.generation < shared.generation.load(Relaxed)
        || diesel::r2d2::R2D2Connection::is_broken(&mut *conn.conn)
}
