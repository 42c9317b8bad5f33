//! A silent network: a network namespace joined to this machine by a veth pair, a throw-away
//! cluster listening inside it, and `iptables -j DROP` inside the namespace switched on and
//! off. Traffic only ever goes between this machine and its own namespace, on addresses in
//! 10.213.7.0/24 (one /30 per namespace: `.4i+1` on this side, `.4i+2` inside).
//!
//! Clean-up: dropping a [`Blackhole`] lifts the rule; dropping a [`Netns`] deletes the
//! namespace and its veth pair (Rust runs both while a test panics). A blackhole is also lifted
//! by its own timer when its bound passes, so a stuck test cannot leave the network silent.
//! Slots left by a killed test process (SIGKILL runs no destructor) are reclaimed, processes
//! inside included, by the next [`Netns::create`]. Every `ip`/`iptables` call is bounded.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use super::super::cluster::{Cluster, wait_for};
use super::{run_bounded, run_ok};

/// How many namespaces may exist at once (test processes running in parallel).
const SLOTS: u8 = 64;
/// Where slots are claimed: one file per slot holding the owner's pid, under one lock file.
const SLOT_DIR: &str = "/tmp/taskstore-netns";
/// Bound on each `ip`/`iptables` call.
const CMD_LIMIT: Duration = Duration::from_secs(15);

/// A network namespace with a veth pair to this machine.
pub struct Netns {
    slot: u8,
    name: String,
    host_if: String,
    slot_file: PathBuf,
}

fn ns_name(slot: u8) -> String {
    format!("taskstore-bh{slot}")
}

/// Interface names are limited to 15 bytes.
fn if_names(slot: u8) -> (String, String) {
    (format!("tsbh{slot}h"), format!("tsbh{slot}n"))
}

fn require_tools() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the blackhole tests need root (network namespaces, iptables)"
    );
    for tool in ["ip", "iptables"] {
        let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(tool).exists());
        assert!(
            found,
            "the blackhole tests need `{tool}`: run scripts/install-test-deps.sh"
        );
    }
}

/// Holds an exclusive lock on the slot directory while it lives.
struct SlotLock(File);

impl SlotLock {
    fn take() -> Self {
        std::fs::create_dir_all(SLOT_DIR).expect("create the netns slot directory");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{SLOT_DIR}/.lock"))
            .expect("open the netns slot lock");
        // SAFETY: flock on a file descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock the netns slot lock");
        Self(file)
    }
}

/// Deletes whatever a slot's namespace left behind: processes inside, the namespace, the veth.
fn scrub_slot(slot: u8) {
    let name = ns_name(slot);
    if let Ok(out) = run_bounded("ip", &["netns", "pids", &name], CMD_LIMIT) {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2); the process is inside a namespace only this harness creates.
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    let _ = run_bounded("ip", &["netns", "del", &name], CMD_LIMIT);
    let (host_if, _) = if_names(slot);
    let _ = run_bounded("ip", &["link", "del", &host_if], CMD_LIMIT);
}

impl Netns {
    /// Claims a free slot (reclaiming those of dead processes) and builds the namespace: veth
    /// pair up, addresses assigned, loopback up inside.
    pub fn create() -> Self {
        require_tools();
        let _lock = SlotLock::take();
        let me = std::process::id();
        let mut claimed = None;
        for slot in 0..SLOTS {
            let path = PathBuf::from(format!("{SLOT_DIR}/slot-{slot}"));
            if let Ok(owner) = std::fs::read_to_string(&path) {
                let alive = owner
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                if alive {
                    continue;
                }
                scrub_slot(slot);
                let _ = std::fs::remove_file(&path);
            }
            let mut f = File::create(&path).expect("claim a netns slot");
            write!(f, "{me}").expect("write the netns slot owner");
            claimed = Some((slot, path));
            break;
        }
        let (slot, slot_file) =
            claimed.unwrap_or_else(|| panic!("all {SLOTS} netns slots are in use"));
        // A namespace of the same name may survive a process whose slot file was removed.
        scrub_slot(slot);
        let (host_if, ns_if) = if_names(slot);
        let ns = Self {
            slot,
            name: ns_name(slot),
            host_if,
            slot_file,
        };
        let host_cidr = format!("{}/30", ns.host_addr());
        let ns_cidr = format!("{}/30", ns.ns_addr());
        let name = ns.name.clone();
        // From here on, a failure drops `ns`, which deletes what was built.
        run_ok("ip", &["netns", "add", &name]);
        run_ok(
            "ip",
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns_if,
            ],
        );
        run_ok("ip", &["link", "set", &ns_if, "netns", &name]);
        run_ok("ip", &["addr", "add", &host_cidr, "dev", &ns.host_if]);
        run_ok("ip", &["link", "set", &ns.host_if, "up"]);
        let exec = |args: &[&str]| {
            let mut full = vec!["netns", "exec", name.as_str()];
            full.extend_from_slice(args);
            run_ok("ip", &full);
        };
        exec(&["ip", "addr", "add", &ns_cidr, "dev", &ns_if]);
        exec(&["ip", "link", "set", &ns_if, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This machine's end of the veth pair.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 7, self.slot * 4 + 1)
    }

    /// The namespace's end: where its servers listen.
    pub fn ns_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, 7, self.slot * 4 + 2)
    }

    /// Moves the calling thread into the namespace until the guard drops. Processes it spawns
    /// meanwhile (`pg_ctl`, and so the postmaster) live in the namespace; other threads of the
    /// test process are not affected.
    pub fn enter(&self) -> Entered {
        let original = File::open("/proc/thread-self/ns/net").expect("open this thread's netns");
        let target = File::open(format!("/run/netns/{}", self.name)).expect("open the netns");
        // SAFETY: setns with a namespace file descriptor; affects only the calling thread.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
        Entered {
            original,
            _not_send: PhantomData,
        }
    }

    /// Drops every packet in and out of the namespace until the returned guard is dropped or
    /// lifted, and at the latest after `bound`.
    pub fn blackhole(&self, bound: Duration) -> Blackhole {
        let name = self.name.clone();
        for chain in ["INPUT", "OUTPUT"] {
            run_ok(
                "ip",
                &[
                    "netns", "exec", &name, "iptables", "-w", "5", "-I", chain, "1", "-j", "DROP",
                ],
            );
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let timer = std::thread::Builder::new()
            .name("blackhole-timer".into())
            .spawn(move || {
                if stopped.recv_timeout(bound).is_err() {
                    eprintln!("blackhole in {name}: bound of {bound:?} reached; lifting it");
                }
                lift(&name);
            })
            .expect("spawn the blackhole timer");
        Blackhole {
            stop: Some(stop),
            timer: Some(timer),
        }
    }
}

fn lift(name: &str) {
    for chain in ["INPUT", "OUTPUT"] {
        let _ = run_bounded(
            "ip",
            &["netns", "exec", name, "iptables", "-w", "5", "-F", chain],
            CMD_LIMIT,
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _lock = SlotLock::take();
        scrub_slot(self.slot);
        let _ = std::fs::remove_file(&self.slot_file);
    }
}

/// The calling thread is inside a namespace; dropping the guard brings it back.
pub struct Entered {
    original: File,
    /// Namespaces are per thread: the guard must be dropped where it was made.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: setns back to the namespace this thread started in.
        let rc = unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            // A thread left in the wrong namespace would make every later test on it lie.
            eprintln!(
                "setns back to the original network namespace failed: {}",
                std::io::Error::last_os_error()
            );
            std::process::abort();
        }
    }
}

/// Packets to and from the namespace are dropped while this lives.
#[must_use = "the blackhole is lifted when the guard is dropped"]
pub struct Blackhole {
    stop: Option<mpsc::Sender<()>>,
    timer: Option<std::thread::JoinHandle<()>>,
}

impl Blackhole {
    /// Lets packets through again (idempotent; bounded by the `ip`/`iptables` call limits).
    pub fn lift(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.lift();
    }
}

/// A throw-away [`Cluster`] whose server listens inside its own namespace, on
/// [`Netns::ns_addr`], reachable from this machine only through the veth pair.
///
/// Start and restart it only through this type: `pg_ctl` must run inside the namespace (the
/// postmaster binds the namespace's address), which [`Cluster`]'s own methods do not know.
/// Freezing, thawing and stopping work on pids and are fine from anywhere.
pub struct NetnsCluster {
    // Field order is drop order: the server stops before its namespace goes.
    cluster: Cluster,
    ns: Netns,
}

impl NetnsCluster {
    /// A namespace, then `initdb` + start inside it, listening on the namespace's address, with
    /// `extra_conf` lines appended to postgresql.conf.
    pub fn start(extra_conf: &[&str]) -> Self {
        let ns = Netns::create();
        let listen = format!("listen_addresses = '{}'", ns.ns_addr());
        let mut conf = vec![listen.as_str()];
        conf.extend_from_slice(extra_conf);
        let cluster = {
            let _inside = ns.enter();
            Cluster::start(&conf)
        };
        // initdb's pg_hba.conf trusts loopback only; the client comes from the veth's far end.
        let hba = cluster.dir().join("data").join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        text.push_str(&format!("host all all {}/32 trust\n", ns.host_addr()));
        std::fs::write(&hba, text).expect("write pg_hba.conf");
        let pm = cluster.postmaster_pid().expect("postmaster running");
        // SAFETY: SIGHUP to our own postmaster: reload pg_hba.conf.
        unsafe { libc::kill(pm, libc::SIGHUP) };
        let this = Self { cluster, ns };
        let url = this.url();
        let reachable = wait_for(Duration::from_secs(10), || {
            use diesel::Connection;
            diesel::PgConnection::establish(&url).is_ok()
        });
        assert!(
            reachable,
            "the cluster in {} does not accept connections at {url}",
            this.ns.name
        );
        this
    }

    /// `postgres://postgres@<ns addr>:<port>/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// URL of database `db`.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{db}",
            self.ns.ns_addr(),
            self.cluster.port
        )
    }

    /// The cluster, for `freeze`, `pids`, `stop` and `postmaster_pid` (not for starting it).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Drops every packet to and from the server until the guard drops, at most `bound`.
    pub fn blackhole(&self, bound: Duration) -> Blackhole {
        self.ns.blackhole(bound)
    }

    /// Starts the (stopped) server inside the namespace.
    pub fn pg_ctl_start(&self) {
        let _inside = self.ns.enter();
        self.cluster.pg_ctl_start();
    }

    /// Stops (fast) and starts again inside the namespace.
    pub fn restart(&self) {
        self.cluster.stop();
        self.pg_ctl_start();
    }
}
