//! Finding a connection's socket without matching TCP ports (which fails over Unix sockets
//! and through a pooler, where the server reports the pooler's port): the process's sockets
//! are listed before and after the connect, and the new one whose peer is the URL's target is
//! the connection's. Diesel keeps libpq's handle private, so `PQsocket` cannot be asked.

use std::collections::HashSet;
use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock};

/// Where a connection's socket leads, as the URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A TCP port (of the server, or of a pooler in front of it).
    Tcp(u16),
    /// A Unix socket, `<dir>/.s.PGSQL.<port>`: matched by its file name.
    Unix(String),
}

impl Target {
    /// The target of a libpq URL (`postgres://user@host:port/db?host=/dir`).
    /// The target of a PostgreSQL connection string: TCP to `port` when `host` names a host,
    /// the socket `.s.PGSQL.<port>` when it is empty or a directory (libpq's rule).
    pub fn of(host: &str, port: u16) -> Self {
        if !host.is_empty() && !host.starts_with('/') && !host.starts_with('@') {
            Self::Tcp(port)
        } else {
            Self::Unix(format!(".s.PGSQL.{port}"))
        }
    }

    fn matches(&self, fd: RawFd) -> bool {
        // SAFETY: sockaddr_storage is plain data; the kernel writes at most `len` bytes.
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let ptr = (&raw mut addr).cast::<libc::sockaddr>();
            if libc::getpeername(fd, ptr, &mut len) != 0 {
                return false;
            }
            match (self, i32::from(addr.ss_family)) {
                (Self::Tcp(port), libc::AF_INET) => {
                    u16::from_be((*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port) == *port
                }
                (Self::Tcp(port), libc::AF_INET6) => {
                    u16::from_be((*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port)
                        == *port
                }
                (Self::Unix(name), libc::AF_UNIX) => {
                    let un = &*(&raw const addr).cast::<libc::sockaddr_un>();
                    let bytes: Vec<u8> = un
                        .sun_path
                        .iter()
                        .take_while(|c| **c != 0)
                        .map(|c| *c as u8)
                        .collect();
                    bytes.ends_with(name.as_bytes())
                }
                _ => false,
            }
        }
    }
}

/// The process's sockets: (fd, inode).
pub(crate) fn sockets() -> HashSet<(RawFd, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse::<RawFd>().ok()?;
            // SAFETY: `stat` is plain data; fstat on a closed fd only fails.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
                return None;
            }
            (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some((fd, st.st_ino))
        })
        .collect()
}

/// Sockets claimed by live connections (inodes), so that a diff never picks one twice.
fn claimed() -> &'static Mutex<HashSet<u64>> {
    static CLAIMED: OnceLock<Mutex<HashSet<u64>>> = OnceLock::new();
    CLAIMED.get_or_init(Mutex::default)
}

/// The one new socket since `before` whose peer is `target`, claimed for a connection
/// (release it with [`release`]); `None` when there is none or several (another thread
/// connected to the same target at the same time).
pub(crate) fn claim_new_socket(
    before: &HashSet<(RawFd, u64)>,
    target: &Target,
) -> Option<(RawFd, u64)> {
    let mut claimed = claimed().lock().unwrap_or_else(|e| e.into_inner());
    let candidates: Vec<(RawFd, u64)> = sockets()
        .into_iter()
        .filter(|s| !before.contains(s) && !claimed.contains(&s.1) && target.matches(s.0))
        .collect();
    match candidates.as_slice() {
        [one] => {
            claimed.insert(one.1);
            Some(*one)
        }
        _ => None,
    }
}

/// Releases a socket claimed by [`claim_new_socket`] (its connection is closing).
pub(crate) fn release(inode: u64) {
    claimed()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&inode);
}
