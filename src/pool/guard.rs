//! The [`Conn`] guard: a checked-out connection, and what happens when it goes back — the
//! leak registration, marking connections handed out raw for the session reset (run at their
//! next checkout, so that dropping a connection never waits for the server), discarding after
//! a panic or after the watchdog interrupted a statement.

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::leaks;
use super::manager::Manager;
use super::shared::Shared;
use crate::conn::{DbConnection, Fired, SessionReset};
use crate::error::{Error, Result};

/// A checked-out connection. Dereferences to [`DbConnection`]; returns to the pool on drop.
pub struct Conn {
    inner: Option<r2d2::PooledConnection<Manager>>,
    pub(super) checked_out_at: Instant,
    location: &'static Location<'static>,
    shared: Arc<Shared>,
    /// The key of this checkout in the pool's leak watch, when a leak threshold is set.
    leak_key: Option<u64>,
    /// Set while the connection may carry state a caller left behind; see
    /// [`Database::conn`](crate::Database::conn).
    reset: Option<Arc<SessionReset>>,
}

impl Conn {
    pub(super) fn new(
        pooled: r2d2::PooledConnection<Manager>,
        checked_out_at: Instant,
        deadline: Instant,
        location: &'static Location<'static>,
        shared: Arc<Shared>,
        leak_threshold: Option<Duration>,
        reset: Arc<SessionReset>,
    ) -> Self {
        shared.checked_out();
        let leak_key =
            leak_threshold.map(|t| leaks::register(&shared, t, location, checked_out_at));
        if let Some(slot) = &pooled.meta.slot {
            // Statements of this call are bounded by its deadline when the server is silent.
            slot.set_call_deadline(Some(deadline));
        }
        Self {
            inner: Some(pooled),
            checked_out_at,
            location,
            shared,
            leak_key,
            reset: Some(reset),
        }
    }

    /// For the layer's own code, which leaves no transaction or session setting behind: skips
    /// the reset on return.
    pub(crate) fn trusted(mut self) -> Self {
        self.reset = None;
        self
    }

    /// Runs `f` on this connection (trusted: see [`Conn::trusted`]); a disconnect-class error
    /// discards it and evicts its idle siblings.
    pub(crate) fn run<T>(self, f: impl FnOnce(&mut DbConnection) -> Result<T>) -> Result<T> {
        let mut conn = self.trusted();
        let result = f(&mut conn);
        if let Err(e) = &result {
            conn.note_error(e);
        }
        result
    }

    /// Whether row-level security applies to this session on `tasks`
    /// (`row_security_active`): asked once per physical connection, on its first task call, and
    /// remembered with it, so later calls cost no round trip. Always false on SQLite (no
    /// question asked), for superusers and `BYPASSRLS` roles, and while the table has row-level
    /// security disabled (the default deployment); a connection opened before
    /// `docs/row-security.sql` turned it on keeps its answer until it is recycled
    /// (`DATABASE_MAX_LIFETIME_S`). While `tasks` does not exist yet (before the first
    /// migration) the answer is false and is asked again next time.
    pub(crate) fn row_security(&mut self) -> Result<bool> {
        let p = self.inner.as_mut().expect("connection present until drop");
        if let Some(known) = p.meta.row_security {
            return Ok(known);
        }
        let DbConnection::Postgres(pg) = &mut *p.conn else {
            p.meta.row_security = Some(false);
            return Ok(false);
        };
        use diesel::RunQueryDsl;
        // A catalog question with no input: `to_regclass` is NULL while the table is missing.
        let active: Option<bool> =
            diesel::select(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Bool>,
            >("row_security_active(to_regclass('tasks'))"))
            .get_result(pg)?;
        if active.is_some() {
            p.meta.row_security = active;
        }
        Ok(active.unwrap_or(false))
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
        let held = now.saturating_duration_since(self.checked_out_at);
        if let Some(key) = self.leak_key {
            leaks::returned(&self.shared, key, held);
        }
        if std::thread::panicking() {
            // A panic may have left a transaction open; never return such a connection.
            self.discard();
        }
        if let Some(p) = self.inner.as_mut() {
            if let Some(slot) = &p.meta.slot {
                slot.set_call_deadline(None);
                if let Some(why) = slot.fired() {
                    // The watchdog shut the socket down: the connection is gone, and when the
                    // server went silent its idle siblings are as dead.
                    p.meta.broken = true;
                    if why == Fired::ServerSilent {
                        self.shared.evict_all();
                    }
                    self.shared.note_interrupted();
                }
            }
            // No round trip here: the next checkout resets the session (see `checkout`).
            if self.reset.take().is_some() && !p.meta.broken {
                p.meta.needs_reset = true;
            }
        }
        if let Some(mut p) = self.inner.take() {
            p.meta.last_used = now;
            // Counted back before r2d2 sees it: a broken connection is closed during the
            // return, and the gauges count connections as closed only while idle.
            self.shared.checked_in();
            // A caller has waited `OVERTAKE_BOUND`: hand it this connection directly (see
            // `queue`), unless it must be closed. Otherwise back to r2d2, and the head of the
            // queue (if one arrived meanwhile, and may not be overtaken) looks there.
            let back = if self.shared.queue.is_empty()
                || super::manager::is_broken(&self.shared, &mut p)
            {
                Some(p)
            } else {
                self.shared.queue.offer(p)
            };
            if let Some(p) = back {
                drop(p);
                self.shared.queue.nudge();
            }
        }
    }
}
