//! The fair acquisition queue in front of r2d2: callers that find no idle connection wait here
//! in arrival order, and a connection checked in while someone waits goes straight to the
//! longest waiter.
//!
//! r2d2 stays the pool of record (it opens, counts, reaps and closes every connection); the
//! queue only decides who gets a connection when there are more callers than connections.
//! r2d2's own `get_timeout` lets every waiter race for a returned connection: its condition
//! variable wakes one, and before that one runs the returning thread (or any newcomer) takes
//! the connection again through the fast path; under contention a waiter wakes for nothing,
//! and the order is luck (bench/RESULTS.md measured 64 threads on a pool of 8 at 0.69–0.85× of
//! 8 threads, p99 wait 14 ms against p50 1 µs).
//!
//! Here:
//! - each waiter parks on its own mutex and condition variable, so a hand-off wakes exactly
//!   the waiter it is for, and the waiter wakes without contending for the queue's lock (the
//!   queue's lock is taken first, a waiter's second, never the other way round);
//! - a healthy connection checked in while someone waits is handed to the head of the queue
//!   directly (it never goes back to r2d2's idle list in between, so nobody can barge);
//! - a newcomer takes r2d2's fast path only while nobody is queued;
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
use std::time::Instant;

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
}

struct Waiter {
    ticket: u64,
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
        self.lock().nudged = true;
        self.wake.notify_one();
    }
}

/// A caller's place in the queue.
pub(crate) struct Ticket {
    id: u64,
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
        }
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
            parker: Arc::clone(&ticket.parker),
            polling: false,
        };
        if front {
            waiting.push_front(waiter);
        } else {
            waiting.push_back(waiter);
        }
        self.len.fetch_add(1, SeqCst);
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
        loop {
            if let Some(conn) = state.handed.take() {
                return Step::Handed(conn);
            }
            let now = Instant::now();
            let timed_out = now >= until;
            if state.nudged || timed_out {
                // The head also looks at r2d2 at the end of every slice (without blocking when
                // the pool is full), whatever it missed.
                state.nudged = false;
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
            state = parker
                .wake
                .wait_timeout(state, until - now)
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
            if i == 0
                && self.pool_has_room()
                && let Some(next) = waiting.front()
            {
                // The next waiter is the head now: it polls r2d2 while the pool has room.
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
            Some(head) if !head.polling => waiting.pop_front().expect("front exists"),
            _ => return Some(conn),
        };
        self.len.fetch_sub(1, SeqCst);
        // Under the queue's lock, so that a waiter leaving finds what it was handed.
        head.parker.lock().handed = Some(conn);
        if self.pool_has_room()
            && let Some(next) = waiting.front()
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
        if self.is_empty() {
            return;
        }
        if let Some(head) = self.lock().front() {
            head.parker.nudge();
        }
    }
}
