//! Opening one connection and customising it: libpq parameters for PostgreSQL, pragmas for
//! SQLite, and the socket the watchdog needs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Connection, SimpleConnection};
use diesel::{PgConnection, SqliteConnection};
use retry::OperationResult;

use super::liveness::{self, Peer, Probe, Slot};
use super::socket::{self, Target};
use super::{DbConnection, SessionReset};
use crate::backoff::Backoff;
use crate::config::{BackendKind, Config, DatabaseUrl, PoolConfig, SessionConfig};
use crate::error::{ConnectFailure, Error, Result};
use crate::redact::scrub;

/// A connection failure as the connection layer sees it: classified, and scrubbed of secrets.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// Why it failed.
    pub kind: ConnectFailure,
    /// The driver's message, scrubbed.
    pub message: String,
}

impl ConnectError {
    fn from_message(raw: &str) -> Self {
        // libpq ends its messages with a newline; the error's Display adds advice after it.
        let message = scrub(&one_line(raw));
        Self {
            kind: ConnectFailure::classify(&message),
            message,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ConnectError {}

impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Self {
        Error::Unavailable {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// Opens one connection to `url` outside any pool, customised like a pooled one (session
/// timeouts and `application_name` on PostgreSQL; `busy_timeout`, WAL, `foreign_keys` and
/// `synchronous` on SQLite): for work that needs a session of its own (migrations hold a
/// session advisory lock on it) or only one round trip (a status check), without a pool.
///
/// One attempt, bounded by `DATABASE_CONNECT_TIMEOUT_MS` on PostgreSQL; no retries and no
/// start-up wait.
///
/// # Errors
///
/// [`Error::Unavailable`] with the classified reason (refused, authentication, unknown
/// database, ...) and the driver's message scrubbed of secrets.
///
/// ```
/// # fn main() -> Result<(), taskstore::Error> {
/// let config = taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")])?;
/// let conn = taskstore::conn::open(&config, config.database_url())?;
/// assert_eq!(conn.backend(), taskstore::BackendKind::Sqlite);
/// # Ok(()) }
/// ```
pub fn open(config: &Config, url: &DatabaseUrl) -> Result<DbConnection> {
    let connector = Connector::new(url, config.pool(), config.session());
    Ok(connector.open()?.conn)
}

/// A connection just opened, with its liveness slot (PostgreSQL).
pub(crate) struct Opened {
    pub conn: DbConnection,
    pub slot: Option<Arc<Slot>>,
}

/// Opens customised connections to one URL.
#[derive(Debug)]
pub(crate) struct Connector {
    url: DatabaseUrl,
    backend: BackendKind,
    session: SessionConfig,
    busy_timeout: Duration,
    /// Where the socket of a new connection leads (PostgreSQL).
    target: Option<Target>,
    /// The server this connector's connections share, for the watchdog.
    peer: Arc<Peer>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peer")
    }
}

/// One lock per target: connects to one target run one at a time, so that the socket a
/// connect created is the only new one leading there (the diff is unambiguous). A healthy
/// server completes a connect in milliseconds; a silent one makes every connect to it wait for
/// `connect_timeout` anyway.
fn establish_lock(target: &Target) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<Vec<(Target, Arc<Mutex<()>>)>> = Mutex::new(Vec::new());
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, lock)) = locks.iter().find(|(t, _)| t == target) {
        return Arc::clone(lock);
    }
    let lock = Arc::new(Mutex::new(()));
    locks.push((target.clone(), Arc::clone(&lock)));
    lock
}

impl Connector {
    pub fn new(url: &DatabaseUrl, pool: &PoolConfig, session: &SessionConfig) -> Self {
        let url = url.with_libpq_params(&libpq_params(pool, session));
        let backend = url.backend();
        let probe: Option<Probe> = (backend == BackendKind::Postgres).then(|| {
            let url = url.clone();
            let probe: Probe = Arc::new(move || match PgConnection::establish(url.expose()) {
                Ok(_) => true,
                // The server answered, although not with a session.
                Err(e) => matches!(
                    ConnectError::from_message(&e.to_string()).kind,
                    ConnectFailure::TooManyConnections
                        | ConnectFailure::Authentication
                        | ConnectFailure::UnknownDatabase
                ),
            });
            probe
        });
        Self {
            backend,
            target: (backend == BackendKind::Postgres)
                .then(|| Target::of_url(url.expose()))
                .flatten(),
            peer: Arc::new(Peer::new(session.statement_timeout, probe)),
            url,
            session: session.clone(),
            busy_timeout: if session.lock_timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                session.lock_timeout
            },
        }
    }

    /// Establishes and customises one connection.
    pub fn open(&self) -> Result<Opened, ConnectError> {
        let (mut conn, slot) = self.establish_bounded()?;
        self.customize(&mut conn)?;
        Ok(Opened { conn, slot })
    }

    /// Establishes a connection and, on PostgreSQL, finds its socket (the one new socket
    /// whose peer is the URL's target) and attaches a liveness slot to it, before any
    /// statement runs on it.
    fn establish_bounded(&self) -> Result<(DbConnection, Option<Arc<Slot>>), ConnectError> {
        let Some(target) = &self.target else {
            return Ok((self.establish()?, None));
        };
        let lock = establish_lock(target);
        let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        let mut conn = None;
        // A second try when a connect outside the layer (the application's own) overlapped.
        for _ in 0..2 {
            drop(conn.take());
            let before = socket::sockets();
            let c = self.establish()?;
            found = socket::claim_new_socket(&before, target);
            conn = Some(c);
            if found.is_some() {
                break;
            }
        }
        let mut conn = conn.expect("established at least once");
        if found.is_none() {
            tracing::warn!(
                "could not find the socket of a new connection; its statements are bounded \
                 only by the server's timeouts"
            );
        }
        let slot = match &mut conn {
            DbConnection::Postgres(pg) => Some(liveness::attach(pg, found, Arc::clone(&self.peer))),
            DbConnection::Sqlite(_) => None,
        };
        Ok((conn, slot))
    }

    /// What brings a connection that a caller used raw back to the state
    /// [`Connector::customize`] left it in; built here so that the two stay in step.
    pub fn session_reset(&self) -> SessionReset {
        SessionReset::new(self.backend, self.busy_timeout)
    }

    fn establish(&self) -> Result<DbConnection, ConnectError> {
        let result = match self.backend {
            BackendKind::Postgres => {
                PgConnection::establish(self.url.expose()).map(DbConnection::Postgres)
            }
            BackendKind::Sqlite => {
                SqliteConnection::establish(self.url.expose()).map(DbConnection::Sqlite)
            }
        };
        result.map_err(|e| ConnectError::from_message(&e.to_string()))
    }

    /// Session set-up for a new connection. PostgreSQL's timeouts and `application_name` travel
    /// in the startup packet (see [`libpq_params`]), so they cost no round trip and are what
    /// `RESET ALL` returns to. SQLite gets its pragmas, one statement each.
    fn customize(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        let fail = |e: diesel::result::Error| ConnectError::from_message(&e.to_string());
        match conn {
            DbConnection::Postgres(pg) => {
                if !self.session.prepared_statements {
                    pg.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                Ok(())
            }
            DbConnection::Sqlite(lite) => {
                let millis = u64::try_from(self.busy_timeout.as_millis()).unwrap_or(u64::MAX);
                lite.batch_execute(&pragma_busy_timeout(millis))
                    .map_err(fail)?;
                lite.batch_execute("PRAGMA foreign_keys = ON")
                    .map_err(fail)?;
                if !self.url.expose().contains("mode=memory") {
                    enable_wal(lite, self.busy_timeout).map_err(fail)?;
                }
                lite.batch_execute("PRAGMA synchronous = NORMAL")
                    .map_err(fail)?;
                Ok(())
            }
        }
    }
}

/// Switching a new database file to WAL needs an exclusive lock, and SQLite answers "database
/// is locked" at once, without its busy handler, when several connections open the file at the
/// same moment (a pool filling up beside the start-up probe and the migration connection). The
/// mode is persistent, so the first connection that gets through settles it for all; the others
/// try again on the crate's backoff (from 2 ms, at most 20 ms apart) for up to `patience`.
fn enable_wal(lite: &mut SqliteConnection, patience: Duration) -> diesel::QueryResult<()> {
    let delays = Backoff::new(Duration::from_millis(2), Duration::from_millis(20))
        .until(Instant::now() + patience);
    retry::retry(delays, || {
        match lite.batch_execute("PRAGMA journal_mode = WAL") {
            Err(e) if e.to_string().contains("database is locked") => OperationResult::Retry(e),
            Err(e) => OperationResult::Err(e),
            Ok(()) => OperationResult::Ok(()),
        }
    })
    .map_err(|e| e.error)
}

/// `PRAGMA busy_timeout` takes no bind parameters; the value is a validated integer from the
/// configuration, never user input, so building the statement cannot inject anything.
pub(super) fn pragma_busy_timeout(millis: u64) -> String {
    let mut sql = String::from("PRAGMA busy_timeout = ");
    sql.push_str(&millis.to_string());
    sql
}

/// libpq parameters added to every PostgreSQL URL (values the user put in the URL win).
fn libpq_params(pool: &PoolConfig, session: &SessionConfig) -> Vec<(&'static str, String)> {
    let secs = pool.connect_timeout.as_millis().div_ceil(1000).max(2);
    let ms = |d: Duration| d.as_millis().to_string();
    let mut options = String::new();
    for (name, value) in [
        ("statement_timeout", ms(session.statement_timeout)),
        ("lock_timeout", ms(session.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            ms(session.idle_in_transaction_timeout),
        ),
    ] {
        options.push_str("-c ");
        options.push_str(name);
        options.push('=');
        options.push_str(&value);
        options.push(' ');
    }
    vec![
        ("connect_timeout", secs.to_string()),
        ("application_name", session.application_name.clone()),
        ("options", options.trim_end().to_owned()),
        // Notice a dead peer on an idle connection within about 25 s.
        ("keepalives", "1".into()),
        ("keepalives_idle", "10".into()),
        ("keepalives_interval", "5".into()),
        ("keepalives_count", "3".into()),
    ]
}

/// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
/// error text reads better, and logs stay one event per line, with the lines joined.
pub(super) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
