//! Acquisition: the fast path, waiters, retries on transient connection errors, the checkout
//! decision (stale, expired or dead connections are not handed out), and the error at the
//! deadline. See the [module documentation](super) for the promises.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use retry::OperationResult;

use super::Pool;
use super::guard::Conn;
use super::manager::Manager;
use super::queue::{Pooled, Step, Ticket};
use super::shared::Shared;
use crate::backoff::Backoff;
use crate::conn::{self, ConnectError, Input};
use crate::error::{ConnectFailure, Error, PoolState, Result};

/// How long one wait inside an acquisition lasts before the caller looks at connection errors
/// and the deadline again (a connection handed over ends the wait at once).
const WAIT_SLICE: Duration = Duration::from_millis(25);

/// A pooled connection found dead at checkout.
struct Dead {
    /// Why, scrubbed, one line.
    message: String,
}

/// Why an idle connection's socket hung up, from its `SO_ERROR`.
fn hang_up_message(code: i32) -> &'static str {
    match code {
        libc::ETIMEDOUT => "the connection timed out (TCP keepalives got no answer)",
        libc::ECONNRESET => "the server reset the connection",
        libc::EHOSTUNREACH | libc::ENETUNREACH => "the server's host became unreachable",
        _ => "the server closed the connection",
    }
}

enum Wait {
    Failed(ConnectError),
    Deadline,
}

impl Pool {
    /// A connection within `DATABASE_ACQUIRE_TIMEOUT_MS`, or the typed error that says why not.
    /// `location` is the caller's code, named in the leak report and in log lines.
    ///
    /// For the layer's own statements: a connection used recently is trusted without a round
    /// trip, and the statements run on it are bounded by this call's deadline (see
    /// [`crate::conn`]'s watchdog).
    pub fn acquire(&self, location: &'static Location<'static>) -> Result<Conn> {
        self.acquire_with(
            location,
            false,
            Instant::now() + self.settings.acquire_timeout,
        )
    }

    /// [`Pool::acquire`] with the deadline of a call already under way (a read run once more
    /// after a disconnect stays within its first acquisition's deadline).
    pub fn acquire_until(
        &self,
        location: &'static Location<'static>,
        deadline: Instant,
    ) -> Result<Conn> {
        self.acquire_with(location, false, deadline)
    }

    /// Like [`Pool::acquire`], for a connection handed out raw: it proves it is alive with a
    /// round trip within the deadline before it is handed out, so that a frozen server is
    /// reported here and not at the caller's first statement.
    pub fn acquire_raw(&self, location: &'static Location<'static>) -> Result<Conn> {
        self.acquire_with(
            location,
            true,
            Instant::now() + self.settings.acquire_timeout,
        )
    }

    #[tracing::instrument(name = "acquire", level = "debug", skip_all, fields(pool = %self.shared.name))]
    fn acquire_with(
        &self,
        location: &'static Location<'static>,
        verify: bool,
        deadline: Instant,
    ) -> Result<Conn> {
        let start = Instant::now();
        let marks = (self.shared.error_mark(), self.shared.interrupted());
        let counters = &self.shared.counters;

        // A pooled connection found dead during this acquisition: if the deadline passes, the
        // caller learns that the server is not answering rather than that the pool is full.
        let mut dead: Option<Dead> = None;

        // Fast path: an idle connection, no waiting, no bookkeeping for waiters. Only while
        // nobody is queued or the longest waiter may still be overtaken (`OVERTAKE_BOUND`).
        if self.shared.queue.may_barge()
            && let Some(pooled) = self.r2d2().try_get()
        {
            match self.checkout(pooled, deadline, location, verify) {
                Ok(conn) => {
                    // The checkout's own clock reading: one read less on the hot path.
                    counters.record_acquire(conn.checked_out_at.saturating_duration_since(start));
                    return Ok(conn);
                }
                Err(rejected) => dead = rejected.or(dead),
            }
        }

        let Some(waiter) = WaiterGuard::enter(&self.shared, self.settings.max_waiters) else {
            counters.waiter_rejections.incr();
            let err = Error::PoolTimeout {
                waited: start.elapsed(),
                state: self.state(),
                last_error: Some(format!(
                    "{} callers are already waiting (DATABASE_POOL_MAX_WAITERS); failing fast",
                    self.settings.max_waiters
                )),
            };
            tracing::debug!(error = %err, location = %location, "connection acquisition refused");
            return Err(err);
        };

        let delays = Backoff::new(
            self.settings.retry_base_delay,
            self.settings.acquire_timeout,
        )
        .until(deadline)
        .take(self.settings.retry_attempts as usize);
        let outcome = retry::retry_with_index(delays, |attempt| {
            if attempt > 1 {
                counters.retries.incr();
            }
            match self.wait_for_connection(&waiter, deadline, location, verify, &mut dead) {
                Ok(conn) => OperationResult::Ok(conn),
                Err(Wait::Failed(e)) if e.kind.is_transient() && Instant::now() < deadline => {
                    tracing::debug!(attempt, kind = %e.kind, error = %e.message, "transient connection error; retrying");
                    OperationResult::Retry(Wait::Failed(e))
                }
                Err(other) => OperationResult::Err(other),
            }
        });

        let error = match outcome {
            Ok(conn) => {
                counters.record_acquire(conn.checked_out_at.saturating_duration_since(start));
                return Ok(conn);
            }
            Err(retry::Error { error, .. }) => error,
        };
        let err = match error {
            Wait::Deadline => {
                counters.timeouts.incr();
                self.deadline_error(start.elapsed(), self.state(), dead, marks)
            }
            Wait::Failed(e) => {
                if !e.kind.is_transient() {
                    counters.permanent_failures.incr();
                } else if Instant::now() >= deadline {
                    counters.timeouts.incr();
                } else {
                    counters.retries_exhausted.incr();
                }
                Error::from(e)
            }
        };
        tracing::warn!(error = %err, location = %location, "connection acquisition failed");
        Err(err)
    }

    /// At the deadline: a pool whose connections are all open and checked out is exhausted
    /// (`PoolTimeout`). Anything else means the caller waited for the server — a new
    /// connection that did not complete, or a pooled one that failed its liveness check — and
    /// is `Unavailable`, with the last connection error when there is one.
    ///
    /// Only errors recorded during this acquisition (after `mark`) count: an older one (from
    /// before a restart, say) would describe another outage.
    fn deadline_error(
        &self,
        waited: Duration,
        state: PoolState,
        dead: Option<Dead>,
        (mark, interrupted): (u64, u64),
    ) -> Error {
        let last = self.shared.error_since(mark);
        let waited_ms = waited.as_millis();
        // Connections the watchdog took back from a silent server during the wait: the pool is
        // not too small, the server is not answering.
        let stuck = self.shared.interrupted() != interrupted;
        if state.connections >= state.max_size && state.idle == 0 && dead.is_none() && !stuck {
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
                origin: e.origin.or_else(|| Some(self.url.origin().clone())),
            },
            // The caller waited, to the end, for a new connection that did not complete: a
            // timeout, whatever became of the pooled one.
            (None, Some(d)) => Error::Unavailable {
                kind: ConnectFailure::Timeout,
                message: format!(
                    "no live connection within {waited_ms} ms; a pooled connection failed its \
                     liveness check ({}) and no new one could be opened in time",
                    d.message
                ),
                origin: Some(self.url.origin().clone()),
            },
            (None, None) if stuck => Error::Unavailable {
                kind: ConnectFailure::Timeout,
                message: format!(
                    "no connection within {waited_ms} ms: the connections in use were waiting \
                     for a server that does not answer ({state})"
                ),
                origin: Some(self.url.origin().clone()),
            },
            (None, None) => Error::Unavailable {
                kind: ConnectFailure::Timeout,
                message: format!(
                    "the server did not complete a new connection within {waited_ms} ms ({state})"
                ),
                origin: Some(self.url.origin().clone()),
            },
        }
    }

    /// Waits in the queue (see `queue`) for a usable connection until a new connection error
    /// is recorded or the deadline. A permanent error (authentication, unknown database, ...)
    /// from the most recent connect attempt ends the wait at once when the pool needs a new
    /// connection to serve the caller: waiting for r2d2's next background attempt would only
    /// fail later with the same error.
    fn wait_for_connection(
        &self,
        waiter: &WaiterGuard<'_>,
        deadline: Instant,
        location: &'static Location<'static>,
        verify: bool,
        dead: &mut Option<Dead>,
    ) -> Result<Conn, Wait> {
        let mark = self.shared.error_mark();
        let queue = &self.shared.queue;
        let ticket = &waiter.ticket;
        loop {
            let now = Instant::now();
            let pooled = match queue.wait(ticket, deadline.min(now + WAIT_SLICE)) {
                Step::Handed(pooled) => Some(pooled),
                Step::Poll => {
                    let remaining = deadline.saturating_duration_since(now);
                    let got = if queue.pool_has_room() {
                        self.r2d2().get_timeout(remaining.min(WAIT_SLICE)).ok()
                    } else {
                        self.r2d2().try_get()
                    };
                    match got {
                        Some(pooled) => {
                            if let Some(extra) = queue.leave(ticket) {
                                self.pass_on(extra);
                            }
                            Some(pooled)
                        }
                        None => {
                            queue.polled(ticket);
                            None
                        }
                    }
                }
                Step::Look => None,
            };
            if let Some(pooled) = pooled {
                match self.checkout(pooled, deadline, location, verify) {
                    Ok(conn) => return Ok(conn),
                    Err(rejected) => {
                        *dead = rejected.or(dead.take());
                        // Still the longest waiter.
                        queue.rejoin_front(ticket);
                        continue;
                    }
                }
            }
            if let Some(e) = self.shared.error_since(mark) {
                return Err(Wait::Failed(e));
            }
            if let Some(e) = self.shared.last_error() {
                let s = self.r2d2().state();
                if !e.kind.is_transient() && s.connections < self.r2d2().max_size() {
                    return Err(Wait::Failed(e));
                }
            }
            if Instant::now() >= deadline {
                return Err(Wait::Deadline);
            }
        }
    }

    /// A connection handed to a waiter that has stopped waiting: to the next waiter, or back
    /// to r2d2.
    fn pass_on(&self, pooled: Pooled) {
        if let Some(pooled) = self.shared.queue.offer(pooled) {
            drop(pooled);
            self.shared.queue.nudge();
        }
    }

    /// Decides whether a connection from the pool may be handed out. Stale and expired
    /// connections are discarded (`Err(None)`); dead ones too, and they evict their idle
    /// siblings (`Err(Some(_))`).
    ///
    /// Two checks find dead connections. The first costs one `poll()` and no round trip: an
    /// idle PostgreSQL connection has nothing to read, so readable data or a hang-up on its
    /// socket means the server said goodbye (restart, `pg_terminate_backend`, failover, or a
    /// socket TCP keepalives killed: its `SO_ERROR` says which). The second is a round trip
    /// bounded by the acquisition's deadline, for connections idle longer than
    /// `DATABASE_VALIDATE_IDLE_MS`, connections handed out raw (`verify`), and connections a
    /// raw user returned (the session reset, deferred from their return so that dropping a
    /// connection never waits for the server).
    fn checkout(
        &self,
        mut pooled: r2d2::PooledConnection<Manager>,
        deadline: Instant,
        location: &'static Location<'static>,
        verify: bool,
    ) -> Result<Conn, Option<Dead>> {
        let now = Instant::now();
        let meta = &mut pooled.meta;
        if meta.generation < self.shared.generation.load(Relaxed) || now >= meta.expires {
            meta.broken = true;
            return Err(None);
        }
        let socket = meta.slot.as_ref().and_then(|s| s.socket());
        if let Some(state) = socket.and_then(conn::unexpected_input) {
            meta.broken = true;
            let message = match state {
                Input::HangUp(code) => hang_up_message(code),
                Input::Data => "the server sent data on an idle connection",
            };
            if let Input::HangUp(_) = state {
                tracing::info!(
                    reason = message,
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
            }));
        }
        let needs_reset = std::mem::take(&mut meta.needs_reset);
        if needs_reset
            || verify
            || now.duration_since(meta.last_used) >= self.settings.validate_idle
        {
            let reset = &self.reset;
            let slot = pooled.meta.slot.clone();
            let conn = &mut pooled.conn;
            let mut round_trip = || {
                if needs_reset {
                    reset.apply(conn)
                } else {
                    conn::ping(conn)
                }
            };
            let (result, fired) = match slot {
                Some(slot) => slot.bounded(deadline, round_trip),
                None => (round_trip(), false),
            };
            if let Err(message) = result {
                pooled.meta.broken = true;
                let message = if fired {
                    format!(
                        "no answer to a liveness check within {} ms",
                        self.settings.acquire_timeout.as_millis()
                    )
                } else {
                    message
                };
                tracing::info!(watchdog_fired = fired, error = %message, "discarding a dead idle connection; evicting its idle siblings");
                self.shared.evict_all();
                return Err(Some(Dead { message }));
            }
        }
        pooled.meta.last_used = now;
        Ok(Conn::new(
            pooled,
            now,
            deadline,
            location,
            Arc::clone(&self.shared),
            self.settings.leak_threshold,
            Arc::clone(&self.reset),
        ))
    }
}

/// Counts a caller as waiting, and holds its place in the queue, for as long as it lives.
struct WaiterGuard<'a> {
    shared: &'a Shared,
    ticket: Ticket,
}

impl<'a> WaiterGuard<'a> {
    /// Counted and queued under the queue's lock: the order of the count is the order of the
    /// queue.
    fn enter(shared: &'a Shared, max: u32) -> Option<Self> {
        let ticket = shared.queue.enter(|| {
            let before = shared.waiter_enters();
            if max > 0 && before >= max {
                shared.waiter_leaves();
                return false;
            }
            true
        })?;
        Some(Self { shared, ticket })
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        // A connection handed over after the caller's last look goes to the next waiter.
        if let Some(pooled) = self.shared.queue.leave(&self.ticket)
            && let Some(pooled) = self.shared.queue.offer(pooled)
        {
            drop(pooled);
            self.shared.queue.nudge();
        }
        self.shared.waiter_leaves();
    }
}
