//! The fair acquisition queue in front of r2d2: callers that find no idle connection wait here
//! in arrival order, and once the longest waiter has waited [`OVERTAKE_BOUND`] (20 ms), a
//! connection checked in goes straight to it.
//!
//! r2d2 stays the pool of record (it opens, counts, reaps and closes every connection); the
//! queue only decides who gets a connection when there are more callers than connections.
//! r2d2's own `get_timeout` lets every waiter race for a returned connection: its condition
//! variable wakes one, and before that one runs the returning thread (or any newcomer) takes
//! the connection again through the fast path; under contention a waiter wakes for nothing,
//! and the order is luck (bench/RESULTS.md measured 64 threads on a pool of 8 at 0.69–0.85× of
//! 8 threads, p99 wait 14 ms against p50 1 µs).
//!
//! The promise: waiters are served among themselves in arrival order, always; a caller that is
//! not queued (a thread returning its connection and asking again at once, or a newcomer) may
//! take an idle connection before them only while the longest waiter has waited less than
//! [`OVERTAKE_BOUND`]. Why the bound: strict hand-off costs a context switch per acquisition
//! under contention (the connection goes to a sleeping thread, the returning thread sleeps at
//! the back of the queue); letting the returning thread go on, on a warm CPU, for a bounded
//! time is what r2d2's barging gains, without r2d2's unbounded overtaking. Under a sustained
//! overload the bound is where the waits settle (bench/RESULTS.md, issue 14 item 1).
//!
//! Here:
//! - each waiter parks on its own mutex and condition variable, so a hand-off wakes exactly
//!   the waiter it is for, and the waiter wakes without contending for the queue's lock (the
//!   queue's lock is taken first, a waiter's second, never the other way round);
//! - a healthy connection checked in while the head has waited `OVERTAKE_BOUND` or longer is
//!   handed to it directly (it never goes back to r2d2's idle list in between, so nobody can
//!   barge); before that it goes back to r2d2 without waking anybody, and the head looks there
//!   every `HEAD_LOOK` (1 ms) and once more when its bound is reached, so a connection nobody
//!   took back is not left idle for long;
//! - a caller that is not queued takes r2d2's fast path only while nobody is queued or the
//!   head may still be overtaken;
//! - only the head of the queue ever waits inside r2d2 ("polls"): when the pool is not full
//!   (r2d2 opens connections only for a caller inside `get_timeout`) or when it was told a
//!   connection went back to r2d2. While the head polls, connections checked in go back to r2d2,
//!   whose condition variable wakes the head (the only thread waiting there): still in order.
//!
//! Waiters still wake every `WAIT_SLICE` (see `acquire`) to look at connection errors and the
//! deadline; a hand-off never waits for that.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::manager::Manager;

/// A connection checked out of r2d2.
pub(crate) type Pooled = r2d2::PooledConnection<Manager>;

/// See the module documentation.
pub(crate) struct Queue {
    inner: Mutex<VecDeque<Waiter>>,
    /// Waiters queued, readable without the lock (the fast paths of checkout and check-in).
    len: AtomicUsize,
    next_ticket: AtomicU64,
    /// Connections open (opened by the manager and not yet closed), against `max_size`: whether
    /// r2d2 may still open one for a caller inside `get_timeout`.
    open: AtomicU32,
    max_size: u32,
    /// The clock `head_since` counts from.
    epoch: Instant,
    /// When the head of the queue arrived, in nanoseconds since `epoch` (`NO_HEAD` while
    /// nobody waits): readable without the lock, for the barging decision.
    head_since: AtomicU64,
    /// [`OVERTAKE_BOUND`] in nanoseconds.
    bound: u64,
}

/// `head_since` while nobody waits.
const NO_HEAD: u64 = u64::MAX;

/// How long a queued caller may be overtaken by callers that are not queued (a thread that
/// returns its connection and asks again at once, or a newcomer): from its arrival until it has
/// waited this long. After that every connection checked in goes to the longest waiter. See
/// the module documentation.
pub const OVERTAKE_BOUND: Duration = Duration::from_millis(20);

/// While the head of the queue may still be overtaken, it looks at r2d2 this often, so that a
/// connection checked in without a hand-off that nobody took back does not stay idle for long.
const HEAD_LOOK: Duration = Duration::from_millis(1);

struct Waiter {
    ticket: u64,
    /// When the caller arrived, in nanoseconds since the queue's `epoch`.
    since: u64,
    parker: Arc<Parker>,
    /// Looking inside r2d2: check-ins go to r2d2, which wakes it.
    polling: bool,
}

/// Where one waiter sleeps, and what it is handed.
#[derive(Default)]
struct Parker {
    state: Mutex<Parked>,
    wake: Condvar,
}

#[derive(Default)]
struct Parked {
    handed: Option<Pooled>,
    /// Look at r2d2 (a connection went there, the pool has room, or this is a new head).
    nudged: bool,
}

impl Parker {
    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nudge(&self) {
        let mut state = self.lock();
        if !state.nudged {
            state.nudged = true;
            drop(state);
            self.wake.notify_one();
        }
    }
}

/// A caller's place in the queue.
pub(crate) struct Ticket {
    id: u64,
    since: u64,
    parker: Arc<Parker>,
}

/// What a waiter does next.
pub(crate) enum Step {
    /// A connection handed over at check-in; the waiter has left the queue.
    Handed(Pooled),
    /// The head of the queue: look inside r2d2 — waiting there while the pool has room —
    /// then call [`Queue::polled`] or [`Queue::leave`].
    Poll,
    /// Nothing yet, `until` has passed: look at errors and the deadline.
    Look,
}

impl Queue {
    pub fn new(max_size: u32) -> Self {
        Self {
            inner: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            next_ticket: AtomicU64::new(0),
            open: AtomicU32::new(0),
            max_size,
            epoch: Instant::now(),
            head_since: AtomicU64::new(NO_HEAD),
            bound: OVERTAKE_BOUND.as_nanos() as u64,
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Publishes when the (new) head arrived; under the queue's lock.
    fn update_head(&self, waiting: &VecDeque<Waiter>) {
        self.head_since
            .store(waiting.front().map_or(NO_HEAD, |w| w.since), SeqCst);
    }

    /// Whether a caller that is not queued may take an idle connection from r2d2: nobody
    /// waits, or the longest waiter has waited less than [`OVERTAKE_BOUND`] (no lock; one
    /// clock reading while someone waits).
    pub fn may_barge(&self) -> bool {
        let head = self.head_since.load(SeqCst);
        head == NO_HEAD || self.now_ns() < head.saturating_add(self.bound)
    }

    /// Whether `waiter` may still be overtaken (it has waited less than the bound).
    fn overtakable(&self, waiter: &Waiter) -> bool {
        self.now_ns() < waiter.since.saturating_add(self.bound)
    }

    /// When the caller stops being overtaken, if it is the head of the queue.
    fn head_window_end(&self, ticket: &Ticket) -> Option<Instant> {
        (self.head_since.load(SeqCst) == ticket.since)
            .then(|| self.epoch + Duration::from_nanos(ticket.since.saturating_add(self.bound)))
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anybody waits (no lock; a newcomer checks this before taking r2d2's fast path).
    pub fn is_empty(&self) -> bool {
        self.len.load(SeqCst) == 0
    }

    pub fn opened(&self) {
        self.open.fetch_add(1, SeqCst);
    }

    pub fn closed(&self) {
        self.open.fetch_sub(1, SeqCst);
    }

    /// Whether r2d2 may open another connection (then the head waits inside r2d2 for it;
    /// otherwise it only looks there without blocking).
    pub fn pool_has_room(&self) -> bool {
        self.open.load(SeqCst) < self.max_size
    }

    /// Queues a caller at the back if `admit` (run under the queue's lock, so that the order
    /// of admissions is the order of the queue) says so.
    pub fn enter(&self, admit: impl FnOnce() -> bool) -> Option<Ticket> {
        let mut waiting = self.lock();
        if !admit() {
            return None;
        }
        let ticket = Ticket {
            id: self.next_ticket.fetch_add(1, SeqCst),
            since: self.now_ns(),
            parker: Arc::default(),
        };
        self.push(&mut waiting, &ticket, false);
        Some(ticket)
    }

    /// Puts a waiter whose handed connection was refused at checkout back at the front: it is
    /// still the longest waiter.
    pub fn rejoin_front(&self, ticket: &Ticket) {
        let mut waiting = self.lock();
        if !waiting.iter().any(|w| w.ticket == ticket.id) {
            self.push(&mut waiting, ticket, true);
        }
    }

    fn push(&self, waiting: &mut VecDeque<Waiter>, ticket: &Ticket, front: bool) {
        // A new head looks at r2d2 once: a connection checked in while this caller was between
        // the fast path and the queue went there. (Behind a head, nothing can: check-ins go to
        // the head.)
        if front || waiting.is_empty() {
            ticket.parker.lock().nudged = true;
        }
        let waiter = Waiter {
            ticket: ticket.id,
            since: ticket.since,
            parker: Arc::clone(&ticket.parker),
            polling: false,
        };
        if front {
            waiting.push_front(waiter);
        } else {
            waiting.push_back(waiter);
        }
        self.len.fetch_add(1, SeqCst);
        self.update_head(waiting);
    }

    /// Marks the caller as polling r2d2 if it is the head.
    fn start_polling(&self, ticket: &Ticket) -> bool {
        let mut waiting = self.lock();
        match waiting.front_mut() {
            Some(head) if head.ticket == ticket.id => {
                head.polling = true;
                true
            }
            _ => false,
        }
    }

    /// Waits until a connection is handed over, this waiter should poll r2d2, or `until`.
    pub fn wait(&self, ticket: &Ticket, until: Instant) -> Step {
        let parker = &ticket.parker;
        let mut state = parker.lock();
        // While this caller is the head and may still be overtaken, connections checked in go
        // back to r2d2 without waking it: it looks there every `HEAD_LOOK`, and once more when
        // its window ends (from then on it is handed the next one).
        let mut look_at: Option<Instant> = None;
        loop {
            if let Some(conn) = state.handed.take() {
                return Step::Handed(conn);
            }
            let now = Instant::now();
            let timed_out = now >= until;
            let look = look_at.is_some_and(|t| now >= t);
            if state.nudged || timed_out || look {
                // The head also looks at r2d2 at the end of every slice (without blocking when
                // the pool is full), whatever it missed.
                state.nudged = false;
                look_at = None;
                drop(state);
                let head = self.start_polling(ticket);
                state = parker.lock();
                if let Some(conn) = state.handed.take() {
                    // Handed over between the two locks: this caller is no longer queued.
                    return Step::Handed(conn);
                }
                if head {
                    return Step::Poll;
                }
                if timed_out {
                    return Step::Look;
                }
                continue;
            }
            if look_at.is_none() {
                look_at = self
                    .head_window_end(ticket)
                    .filter(|&end| end > now)
                    .map(|end| end.min(now + HEAD_LOOK));
            }
            let wake = look_at.map_or(until, |t| t.min(until));
            state = parker
                .wake
                .wait_timeout(state, wake - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The head's look inside r2d2 ended without a connection.
    pub fn polled(&self, ticket: &Ticket) {
        let mut waiting = self.lock();
        if let Some(w) = waiting.iter_mut().find(|w| w.ticket == ticket.id) {
            w.polling = false;
        }
    }

    /// Takes the caller out of the queue; returns a connection handed to it meanwhile, if any.
    pub fn leave(&self, ticket: &Ticket) -> Option<Pooled> {
        let mut waiting = self.lock();
        if let Some(i) = waiting.iter().position(|w| w.ticket == ticket.id) {
            waiting.remove(i);
            self.len.fetch_sub(1, SeqCst);
            self.update_head(&waiting);
            if i == 0
                && let Some(next) = waiting.front()
                && (self.pool_has_room() || self.overtakable(next))
            {
                // The next waiter is the head now: it polls r2d2 while the pool has room, and
                // looks there on its own while it may be overtaken (see `wait`).
                next.parker.nudge();
            }
        }
        ticket.parker.lock().handed.take()
    }

    /// A healthy connection checked in: handed to the head of the queue when it waits on its
    /// own condition variable; returned (`Some`) when nobody waits or the head is polling r2d2,
    /// to go back to r2d2 (then call [`Queue::nudge`]).
    pub fn offer(&self, conn: Pooled) -> Option<Pooled> {
        if self.is_empty() {
            return Some(conn);
        }
        let mut waiting = self.lock();
        let head = match waiting.front() {
            Some(head) if !head.polling && !self.overtakable(head) => {
                waiting.pop_front().expect("front exists")
            }
            _ => return Some(conn),
        };
        self.len.fetch_sub(1, SeqCst);
        self.update_head(&waiting);
        // Under the queue's lock, so that a waiter leaving finds what it was handed.
        head.parker.lock().handed = Some(conn);
        if let Some(next) = waiting.front()
            && (self.pool_has_room() || self.overtakable(next))
        {
            next.parker.nudge();
        }
        drop(waiting);
        head.parker.wake.notify_one();
        None
    }

    /// A connection went back to r2d2 (healthy while nobody seemed to wait, or broken and
    /// closed): the head, if any, looks at r2d2.
    pub fn nudge(&self) {
        // While the head may be overtaken it looks at r2d2 on its own (see `wait`): waking it
        // for every check-in would cost a context switch each, mostly for nothing.
        if self.is_empty() || self.may_barge() {
            return;
        }
        if let Some(head) = self.lock().front() {
            head.parker.nudge();
        }
    }
}
