//! Is a connection still alive? A hard deadline for a blocking round trip on a PostgreSQL
//! socket (the watchdog), a look at an idle socket that costs no round trip
//! ([`unexpected_input`]), and the round trip itself ([`ping`]).
//!
//! libpq blocks in `poll()` until the server answers; a frozen server (SIGSTOP) or a network
//! that silently drops packets never answers, and no libpq setting bounds that wait for a
//! query on an established connection (`connect_timeout` covers only the connect, TCP
//! keepalives are answered by the frozen host's kernel). The watchdog bounds it from outside:
//! when the deadline passes, it shuts the socket down, the blocked call returns with an error,
//! and the connection is discarded.
//!
//! One background thread serves all deadlines. The socket is found once per connection, right
//! after connecting, by matching the client port the server reports (`inet_client_port()`)
//! against the process's open sockets.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

use diesel::connection::SimpleConnection;

use super::DbConnection;
use crate::redact::scrub;

#[derive(Default)]
struct State {
    next_id: u64,
    armed: BTreeMap<u64, (Instant, RawFd)>,
    fired: Vec<u64>,
}

struct Watchdog {
    state: Mutex<State>,
    wake: Condvar,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let dog: &'static Watchdog = Box::leak(Box::new(Watchdog {
            state: Mutex::default(),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("taskstore-watchdog".into())
            .spawn(move || dog.run())
            .expect("spawning the taskstore watchdog thread");
        dog
    })
}

impl Watchdog {
    fn run(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let due: Vec<u64> = state
                .armed
                .iter()
                .filter(|(_, (d, _))| *d <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if let Some((_, fd)) = state.armed.remove(&id) {
                    // SAFETY: the fd belongs to a connection that is alive and checked out by
                    // the thread that armed this entry; that thread disarms (under this same
                    // lock) before the connection can be closed, so the fd cannot have been
                    // reused. shutdown() only changes the socket's state; it never closes it.
                    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                    state.fired.push(id);
                }
            }
            let next = state.armed.values().map(|(d, _)| *d).min();
            state = match next {
                Some(d) => {
                    self.wake
                        .wait_timeout(state, d.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// Runs `f` (a blocking round trip on `fd`) and shuts the socket down if it is still running at
/// `deadline`. Returns `f`'s result and whether the watchdog fired.
pub(crate) fn with_deadline<T>(
    fd: Option<RawFd>,
    deadline: Instant,
    f: impl FnOnce() -> T,
) -> (T, bool) {
    let Some(fd) = fd else { return (f(), false) };
    let dog = watchdog();
    let id = {
        let mut state = dog.state.lock().unwrap_or_else(|e| e.into_inner());
        state.next_id += 1;
        let id = state.next_id;
        state.armed.insert(id, (deadline, fd));
        id
    };
    dog.wake.notify_one();
    let out = f();
    let mut state = dog.state.lock().unwrap_or_else(|e| e.into_inner());
    state.armed.remove(&id);
    let fired = match state.fired.iter().position(|x| *x == id) {
        Some(pos) => {
            state.fired.swap_remove(pos);
            true
        }
        None => false,
    };
    (out, fired)
}

/// Finds the process's TCP socket whose local port is `local_port` and remote port
/// `remote_port`.
pub(crate) fn find_tcp_socket(local_port: u16, remote_port: u16) -> Option<RawFd> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        if port_of(fd, false) == Some(local_port) && port_of(fd, true) == Some(remote_port) {
            return Some(fd);
        }
    }
    None
}

fn port_of(fd: RawFd, peer: bool) -> Option<u16> {
    // SAFETY: sockaddr_storage is plain data; the kernel writes at most `len` bytes into it.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let ptr = (&raw mut addr).cast::<libc::sockaddr>();
        let rc = if peer {
            libc::getpeername(fd, ptr, &mut len)
        } else {
            libc::getsockname(fd, ptr, &mut len)
        };
        if rc != 0 {
            return None;
        }
        match i32::from(addr.ss_family) {
            libc::AF_INET => Some(u16::from_be(
                (*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port,
            )),
            libc::AF_INET6 => Some(u16::from_be(
                (*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port,
            )),
            _ => None,
        }
    }
}

/// What is waiting on an idle connection's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The peer closed the connection, or the socket is in error.
    HangUp,
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
        Some(Input::HangUp)
    } else if r & libc::POLLIN != 0 {
        Some(Input::Data)
    } else {
        None
    }
}

/// One cheap round trip; the error is scrubbed.
pub(crate) fn ping(conn: &mut DbConnection) -> Result<(), String> {
    conn.batch_execute("SELECT 1")
        .map_err(|e| scrub(e.to_string().trim_end()))
}
