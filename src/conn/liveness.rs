//! Is a connection still alive? A client-side bound on every PostgreSQL round trip (the
//! watchdog), a look at an idle socket that costs no round trip ([`unexpected_input`]), and the
//! round trip itself ([`ping`]).
//!
//! libpq blocks in `poll()` until the server answers; a frozen server (SIGSTOP) or a network
//! that silently drops packets never answers, and no libpq setting bounds that wait for a
//! query on an established connection (`connect_timeout` covers only the connect, TCP
//! keepalives are answered by the frozen host's kernel). The watchdog bounds it from outside:
//! it shuts the socket down, the blocked call returns with an error, and the connection is
//! discarded.
//!
//! Every statement is armed through Diesel's instrumentation (`StartQuery` arms,
//! `FinishQuery` disarms): two atomic stores, no lock, no clock read (the watchdog keeps a
//! coarse millisecond clock), so the hot path stays within its budget. One background thread
//! looks at the armed slots every [`TICK`] and fires when
//! - the statement has run for `DATABASE_STATEMENT_TIMEOUT_MS` + [`HARD_MARGIN_MS`]: the
//!   server's own timeout would have fired by then, so it cannot answer;
//! - the deadline of the call that checked the connection out is close and nothing proves the
//!   server alive: no connection of the same pool got an answer since the statement started,
//!   and a liveness probe (a new connection) did not complete within [`PROBE_MS`]. A server
//!   that answers keeps slow statements running until their hard deadline;
//! - an explicit limit passes (the checkout's ping, the session reset).
//!
//! The socket is found once per connection by [`super::socket`].

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};

use super::DbConnection;
use crate::redact::scrub;

/// How often the watchdog looks at the armed statements.
pub(crate) const TICK: Duration = Duration::from_millis(25);
/// Past the statement timeout, how long the watchdog gives the server's own timeout.
pub(crate) const HARD_MARGIN_MS: u64 = 200;
/// How long a liveness probe (a new connection) may take before the server counts as silent.
const PROBE_MS: u64 = 250;
/// How long before a call's deadline the probe starts: the probe's time, ticks, and margin.
const PROBE_LEAD_MS: u64 = PROBE_MS + 100;

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const FIRING: u8 = 2;

/// Why the watchdog shut a socket down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The statement outlived `DATABASE_STATEMENT_TIMEOUT_MS` + [`HARD_MARGIN_MS`].
    StatementTimeout = 1,
    /// The call's deadline came and neither the pool nor a probe heard from the server.
    ServerSilent = 2,
    /// An explicit limit ([`Slot::bounded`]) passed.
    Limit = 3,
}

impl Fired {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::StatementTimeout),
            2 => Some(Self::ServerSilent),
            3 => Some(Self::Limit),
            _ => None,
        }
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The coarse clock: milliseconds since [`epoch`], updated by the watchdog each tick.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn precise_ms(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

fn coarse_ms() -> u64 {
    CLOCK.load(Relaxed)
}

/// Opens a new connection and says whether the server answered.
pub(crate) type Probe = Arc<dyn Fn() -> bool + Send + Sync>;

/// What a pool's connections share: the server they talk to.
pub(crate) struct Peer {
    /// Coarse time of the last answer any connection of the pool got.
    last_answer: AtomicU64,
    /// Opens a connection to prove the server alive; `None` never probes.
    probe: Option<Probe>,
    /// `DATABASE_STATEMENT_TIMEOUT_MS`, 0 for none.
    statement_ms: u64,
    /// Probes started: (coarse start, 0 pending / 1 alive / 2 dead). Watchdog only.
    probes: Mutex<Vec<(u64, Arc<AtomicU8>)>>,
}

impl Peer {
    pub fn new(statement_timeout: Duration, probe: Option<Probe>) -> Self {
        Self {
            last_answer: AtomicU64::new(0),
            probe,
            statement_ms: u64::try_from(statement_timeout.as_millis()).unwrap_or(u64::MAX),
            probes: Mutex::new(Vec::new()),
        }
    }

    /// The server's verdict for a statement armed at `armed` (coarse ms): `Some(true)` alive,
    /// `Some(false)` silent, `None` not known yet (a probe was started or is pending).
    fn verdict(&self, armed: u64, now: u64) -> Option<bool> {
        if self.last_answer.load(Relaxed) > armed {
            return Some(true);
        }
        let probe = self.probe.as_ref()?;
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes.retain(|(start, _)| now.saturating_sub(*start) < 10_000);
        if let Some((start, result)) = probes.iter().rev().find(|(s, _)| *s >= armed) {
            return match result.load(Acquire) {
                1 => Some(true),
                2 => Some(false),
                _ if now >= start + PROBE_MS => Some(false),
                _ => None,
            };
        }
        let result = Arc::new(AtomicU8::new(0));
        probes.push((now, Arc::clone(&result)));
        drop(probes);
        let probe = Arc::clone(probe);
        // Bounded by libpq's connect_timeout; the verdict is taken after PROBE_MS whatever
        // the thread is doing then.
        let spawned = std::thread::Builder::new()
            .name("taskstore-probe".into())
            .spawn(move || result.store(if probe() { 1 } else { 2 }, Release));
        if spawned.is_err() {
            tracing::warn!("could not start a liveness probe thread");
        }
        None
    }
}

/// One connection's liveness state, shared by its instrumentation, the pool and the watchdog.
pub(crate) struct Slot {
    fd: AtomicI32,
    /// The socket's inode, claimed while the slot lives.
    inode: Option<u64>,
    peer: Arc<Peer>,
    state: AtomicU8,
    armed_at: AtomicU64,
    /// Coarse ms of the deadline of the call holding the connection; 0 for none.
    call_deadline: AtomicU64,
    /// Coarse ms of an explicit limit; 0 for none.
    limit: AtomicU64,
    /// A probe or an answer showed the server alive during the current statement.
    cleared: AtomicBool,
    fired: AtomicU8,
}

impl Slot {
    fn new(socket: Option<(RawFd, u64)>, peer: Arc<Peer>) -> Arc<Self> {
        let slot = Arc::new(Self {
            fd: AtomicI32::new(socket.map_or(-1, |s| s.0)),
            inode: socket.map(|s| s.1),
            peer,
            state: AtomicU8::new(IDLE),
            armed_at: AtomicU64::new(0),
            call_deadline: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            cleared: AtomicBool::new(false),
            fired: AtomicU8::new(0),
        });
        watchdog().register(&slot);
        slot
    }

    /// The socket, when it was found.
    pub fn socket(&self) -> Option<RawFd> {
        let fd = self.fd.load(Relaxed);
        (fd >= 0).then_some(fd)
    }

    /// Whether (and why) the watchdog shut this connection's socket down.
    pub fn fired(&self) -> Option<Fired> {
        Fired::from_u8(self.fired.load(Acquire))
    }

    /// The deadline of the call that now holds the connection (`None` when returned).
    pub fn set_call_deadline(&self, deadline: Option<Instant>) {
        self.call_deadline
            .store(deadline.map_or(0, precise_ms), Relaxed);
    }

    /// Runs `f` (round trips on this connection) with every statement bounded by `deadline`.
    /// Returns `f`'s result and whether the watchdog fired.
    pub fn bounded<T>(&self, deadline: Instant, f: impl FnOnce() -> T) -> (T, bool) {
        self.limit.store(precise_ms(deadline).max(1), Relaxed);
        let out = f();
        self.limit.store(0, Relaxed);
        (out, self.fired().is_some())
    }

    fn arm(&self) {
        self.armed_at.store(coarse_ms(), Relaxed);
        self.cleared.store(false, Relaxed);
        self.state.store(ARMED, Release);
    }

    fn disarm(&self, failed: bool) {
        if self
            .state
            .compare_exchange(ARMED, IDLE, AcqRel, Acquire)
            .is_err()
        {
            // The watchdog is shutting the socket down: the fd must stay open until it is done.
            while self.state.load(Acquire) == FIRING {
                std::hint::spin_loop();
            }
        }
        if failed {
            if let Some(fired) = self.fired() {
                crate::error::set_interruption(self.interruption(fired));
            }
        } else {
            let now = coarse_ms();
            if self.peer.last_answer.load(Relaxed) != now {
                self.peer.last_answer.store(now, Relaxed);
            }
        }
    }

    fn interruption(&self, fired: Fired) -> crate::error::Error {
        use crate::error::{ConnectFailure, Error};
        match fired {
            Fired::StatementTimeout => Error::QueryTimeout {
                message: format!(
                    "no answer from the server within DATABASE_STATEMENT_TIMEOUT_MS ({} ms) + \
                     {HARD_MARGIN_MS} ms; the connection was discarded",
                    self.peer.statement_ms
                ),
            },
            Fired::ServerSilent | Fired::Limit => Error::Unavailable {
                kind: ConnectFailure::Timeout,
                message: "the server did not answer before the call's deadline (and no other \
                          connection heard from it); the connection was discarded"
                    .into(),
                origin: None,
            },
        }
    }

    /// Called by the watchdog: fires if a deadline passed.
    fn check(&self, now: u64) {
        if self.state.load(Acquire) != ARMED {
            return;
        }
        let armed = self.armed_at.load(Relaxed);
        let limit = self.limit.load(Relaxed);
        if limit != 0 && now >= limit {
            return self.fire(Fired::Limit);
        }
        let hard = self.peer.statement_ms;
        if hard != 0 && now >= armed.saturating_add(hard + HARD_MARGIN_MS) {
            return self.fire(Fired::StatementTimeout);
        }
        let call = self.call_deadline.load(Relaxed);
        // A statement started after its call's deadline (a connection held long) is bounded
        // only by the statement timeout.
        if call == 0 || armed >= call || self.cleared.load(Relaxed) {
            return;
        }
        if now + PROBE_LEAD_MS >= call {
            match self.peer.verdict(armed, now) {
                Some(true) => self.cleared.store(true, Relaxed),
                Some(false) => self.fire(Fired::ServerSilent),
                None => {}
            }
        }
    }

    fn fire(&self, why: Fired) {
        let fd = self.fd.load(Relaxed);
        if fd < 0
            || self
                .state
                .compare_exchange(ARMED, FIRING, AcqRel, Acquire)
                .is_err()
        {
            return;
        }
        self.fired.store(why as u8, Release);
        // SAFETY: the state was ARMED, so the connection is inside a statement on the thread
        // that armed it; that thread waits for FIRING to end before it can close the fd (see
        // `disarm`). shutdown() only changes the socket's state; it never closes it.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        self.state.store(IDLE, Release);
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("socket", &self.socket())
            .field("fired", &self.fired())
            .finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inode) = self.inode {
            super::socket::release(inode);
        }
    }
}

/// Diesel's hook into every statement of one PostgreSQL connection.
struct Arming(Arc<Slot>);

impl Instrumentation for Arming {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => {
                crate::error::clear_interruption();
                self.0.arm();
            }
            InstrumentationEvent::FinishQuery { error, .. } => self.0.disarm(error.is_some()),
            _ => {}
        }
    }
}

/// Attaches a slot for `fd` to `conn`: from now on every statement is bounded.
pub(crate) fn attach(
    conn: &mut diesel::PgConnection,
    socket: Option<(RawFd, u64)>,
    peer: Arc<Peer>,
) -> Arc<Slot> {
    use diesel::Connection;
    let slot = Slot::new(socket, peer);
    conn.set_instrumentation(Arming(Arc::clone(&slot)));
    slot
}

struct Watchdog {
    slots: Mutex<Vec<Weak<Slot>>>,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            slots: Mutex::default(),
        }));
        CLOCK.store(precise_ms(Instant::now()), Relaxed);
        std::thread::Builder::new()
            .name("taskstore-watchdog".into())
            .spawn(move || dog.run())
            .expect("spawning the taskstore watchdog thread");
        dog
    })
}

impl Watchdog {
    fn register(&self, slot: &Arc<Slot>) {
        CLOCK.fetch_max(precise_ms(Instant::now()), Relaxed);
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(slot));
    }

    fn run(&self) {
        loop {
            std::thread::sleep(TICK);
            let now = precise_ms(Instant::now());
            CLOCK.store(now, Relaxed);
            let live: Vec<Arc<Slot>> = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.retain(|w| w.strong_count() > 0);
                slots.iter().filter_map(Weak::upgrade).collect()
            };
            for slot in &live {
                slot.check(now);
            }
        }
    }
}

/// What is waiting on an idle connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The peer closed the connection (`SO_ERROR` 0), or the socket is in error (its code).
    HangUp(i32),
    /// Bytes the server sent although no query was running (a notice, or the error message
    /// that precedes a hang-up).
    Data,
}

/// Looks, without blocking, for anything on the socket of an idle connection. An idle
/// PostgreSQL connection has nothing to read, so any input means it should not be handed out.
/// Costs one `poll()` system call, well under a microsecond.
pub(crate) fn unexpected_input(fd: RawFd) -> Option<Input> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; the fd belongs to a connection this thread holds.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    if rc <= 0 {
        return None;
    }
    let r = pfd.revents;
    if r & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        let mut code: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: one int out-parameter of the right size.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut code).cast(),
                &mut len,
            )
        };
        Some(Input::HangUp(code))
    } else if r & libc::POLLIN != 0 {
        Some(Input::Data)
    } else {
        None
    }
}

/// One cheap round trip; the error is scrubbed and on one line.
pub(crate) fn ping(conn: &mut DbConnection) -> Result<(), String> {
    conn.batch_execute("SELECT 1")
        .map_err(|e| scrub(&super::open::one_line(&e.to_string())))
}
