//! Opening and customising connections, and deciding when one must be discarded.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Connection, SimpleConnection};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rand::Rng;

use super::connection::DbConnection;
use super::stats::Counters;
use crate::config::{BackendKind, DatabaseUrl, PoolConfig, SessionConfig};
use crate::error::ConnectFailure;
use crate::redact::scrub;

/// A connection failure as the pool sees it: classified, and scrubbed of secrets.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// Why it failed.
    pub kind: ConnectFailure,
    /// The driver's message, scrubbed.
    pub message: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ConnectError {}

/// State shared by a pool, its manager and every checked-out connection.
pub(crate) struct Shared {
    pub counters: Counters,
    /// Bumped on every disconnect-class error; connections from an older generation are
    /// discarded at checkout instead of being handed out one by one to fail.
    pub generation: AtomicU64,
    pub waiters: AtomicU32,
    /// Connection attempts running right now (on r2d2's threads or a caller's).
    pub in_flight: AtomicU32,
    error_seq: AtomicU64,
    last_error: Mutex<Option<(u64, ConnectError)>>,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            counters: Counters::default(),
            generation: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            error_seq: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn record_failure(&self, err: &ConnectError) {
        let seq = self.error_seq.fetch_add(1, Relaxed) + 1;
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, err.clone()));
        self.counters.incr(
            &self.counters.connect_failures,
            "taskstore_pool_connect_failures_total",
        );
    }

    /// The current error sequence number: pass it to [`Shared::error_since`] later.
    pub fn error_mark(&self) -> u64 {
        self.error_seq.load(Relaxed)
    }

    /// The most recent connection error recorded after `mark`, if any.
    pub fn error_since(&self, mark: u64) -> Option<ConnectError> {
        match &*self.last_error.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((seq, err)) if *seq > mark => Some(err.clone()),
            _ => None,
        }
    }

    /// The most recent connection error, if the last attempt failed.
    pub fn last_error(&self) -> Option<ConnectError> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, e)| e.clone())
    }

    fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Marks every connection opened so far as stale.
    pub fn evict_all(&self) {
        self.generation.fetch_add(1, Relaxed);
    }
}

/// What the pool keeps per connection besides the connection itself.
#[derive(Debug)]
pub(crate) struct Meta {
    pub expires: Instant,
    pub last_used: Instant,
    pub generation: u64,
    pub broken: bool,
    /// The TCP socket under a PostgreSQL connection, for the watchdog.
    pub socket: Option<RawFd>,
}

/// A pooled connection with its bookkeeping.
pub struct Managed {
    /// Boxed: r2d2 moves its connections in and out of its idle list on every checkout and
    /// return, and a `PgConnection` (statement cache, buffers) is several hundred bytes.
    pub(crate) conn: Box<DbConnection>,
    pub(crate) meta: Meta,
}

/// The r2d2 manager: opens connections for one URL and judges them on return.
pub(crate) struct Manager {
    url: DatabaseUrl,
    backend: BackendKind,
    session: SessionConfig,
    max_lifetime: Duration,
    busy_timeout: Duration,
    pub shared: Arc<Shared>,
}

impl Manager {
    pub fn new(
        url: &DatabaseUrl,
        pool: &PoolConfig,
        session: &SessionConfig,
        shared: Arc<Shared>,
    ) -> Self {
        let url = url.with_libpq_params(&libpq_params(pool, session));
        Self {
            backend: url.backend(),
            url,
            session: session.clone(),
            max_lifetime: pool.max_lifetime,
            busy_timeout: if session.lock_timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                session.lock_timeout
            },
            shared,
        }
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
        result.map_err(|e| {
            // libpq ends its messages with a newline; the error's Display adds advice after it.
            let message = scrub(&one_line(&e.to_string()));
            ConnectError {
                kind: ConnectFailure::classify(&message),
                message,
            }
        })
    }

    /// Session set-up for a new connection. PostgreSQL's timeouts and `application_name` travel
    /// in the startup packet (see [`libpq_params`]), so they cost no round trip and are what
    /// `RESET ALL` returns to. SQLite gets its pragmas, one statement each.
    fn customize(&self, conn: &mut DbConnection) -> Result<Option<RawFd>, ConnectError> {
        let fail = |e: diesel::result::Error| {
            let message = scrub(&one_line(&e.to_string()));
            ConnectError {
                kind: ConnectFailure::classify(&message),
                message,
            }
        };
        match conn {
            DbConnection::Postgres(pg) => {
                if !self.session.prepared_statements {
                    pg.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                let ports = diesel::select((
                    diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
                        "inet_client_port()",
                    ),
                    diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Integer>>(
                        "inet_server_port()",
                    ),
                ))
                .get_result::<(Option<i32>, Option<i32>)>(pg)
                .map_err(fail)?;
                Ok(match ports {
                    (Some(local), Some(remote)) => super::watchdog::find_tcp_socket(
                        u16::try_from(local).unwrap_or(0),
                        u16::try_from(remote).unwrap_or(0),
                    ),
                    _ => None,
                })
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
                Ok(None)
            }
        }
    }

    /// Opens one connection outside the pool (start-up probe, migrations).
    pub fn open(&self) -> Result<Managed, ConnectError> {
        use r2d2::ManageConnection;
        self.connect()
    }

    /// What brings a connection that a caller used raw back to the state [`Manager::customize`]
    /// left it in; kept here so that the two stay in step.
    pub fn session_reset(&self, deadline: Duration) -> SessionReset {
        let sql = match self.backend {
            // One round trip. `RESET ALL` returns every setting to its session default, and the
            // timeouts and `application_name` are session defaults because they travel in the
            // startup packet; the time zone and encoding are what Diesel sets after connecting.
            // `ROLLBACK` outside a transaction is only a notice, which Diesel discards.
            BackendKind::Postgres => "ROLLBACK; RESET ALL; RESET ROLE; \
                 RESET SESSION AUTHORIZATION; SET TIME ZONE 'UTC'; \
                 SET CLIENT_ENCODING TO 'UTF8'; CLOSE ALL; UNLISTEN *; \
                 SELECT pg_advisory_unlock_all(); DISCARD TEMP"
                .to_owned(),
            BackendKind::Sqlite => {
                let millis = u64::try_from(self.busy_timeout.as_millis()).unwrap_or(u64::MAX);
                let mut sql = pragma_busy_timeout(millis);
                sql.push_str(
                    "; PRAGMA foreign_keys = ON; PRAGMA query_only = OFF; \
                     PRAGMA synchronous = NORMAL",
                );
                sql
            }
        };
        SessionReset {
            backend: self.backend,
            sql,
            deadline,
        }
    }
}

/// Undoes what a caller may have done to a connection handed out raw: an open transaction
/// (`BEGIN` through `sql_query`), session settings (`SET`, `PRAGMA`), and on PostgreSQL
/// cursors, `LISTEN`, advisory locks and temporary tables.
#[derive(Debug)]
pub(crate) struct SessionReset {
    backend: BackendKind,
    sql: String,
    /// Bound on the reset's round trip (enforced by the watchdog).
    pub deadline: Duration,
}

impl SessionReset {
    pub fn apply(&self, conn: &mut DbConnection) -> Result<(), String> {
        if self.backend == BackendKind::Sqlite {
            // SQLite refuses `ROLLBACK` outside a transaction and stops a batch at the first
            // error, so it goes alone; the refusal is the expected answer on a clean connection.
            if let Err(e) = conn.batch_execute("ROLLBACK") {
                let message = e.to_string();
                if !message.contains("no transaction is active") {
                    return Err(scrub(&message));
                }
            }
        }
        conn.batch_execute(&self.sql)
            .map_err(|e| scrub(&e.to_string()))
    }
}

/// Switching a new database file to WAL needs an exclusive lock, and SQLite answers "database
/// is locked" at once, without its busy handler, when several connections open the file at the
/// same moment (a pool filling up beside the start-up probe and the migration connection). The
/// mode is persistent, so the first connection that gets through settles it for all.
fn enable_wal(lite: &mut SqliteConnection, patience: Duration) -> diesel::QueryResult<()> {
    let start = Instant::now();
    loop {
        match lite.batch_execute("PRAGMA journal_mode = WAL") {
            Err(e)
                if e.to_string().contains("database is locked") && start.elapsed() < patience =>
            {
                std::thread::sleep(Duration::from_millis(rand::rng().random_range(2..20)));
            }
            other => return other,
        }
    }
}

/// `PRAGMA busy_timeout` takes no bind parameters; the value is a validated integer from the
/// configuration, never user input, so building the statement cannot inject anything.
fn pragma_busy_timeout(millis: u64) -> String {
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
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
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
        let opened = self.establish().and_then(|mut conn| {
            let socket = self.customize(&mut conn)?;
            Ok((conn, socket))
        });
        match opened {
            Ok((conn, socket)) => {
                self.shared.clear_error();
                self.shared.counters.incr(
                    &self.shared.counters.created,
                    "taskstore_pool_connections_created_total",
                );
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
                        socket,
                    },
                })
            }
            Err(err) => {
                self.shared.record_failure(&err);
                // Debug, not warn: r2d2 retries in the background and every caller that gives up
                // logs the failure itself (and start-up logs each of its attempts).
                tracing::debug!(kind = %err.kind, error = %err.message, "database connection attempt failed");
                Err(err)
            }
        }
    }

    fn is_valid(&self, conn: &mut Managed) -> Result<(), ConnectError> {
        ping(&mut conn.conn).map_err(|message| ConnectError {
            kind: ConnectFailure::classify(&message),
            message,
        })
    }

    fn has_broken(&self, conn: &mut Managed) -> bool {
        // Expiry is not checked here: checkout discards expired connections, and r2d2's
        // reaper closes idle ones past DATABASE_MAX_LIFETIME_S. One clock read less per call.
        let broken = conn.meta.broken
            || conn.meta.generation < self.shared.generation.load(Relaxed)
            || diesel::r2d2::R2D2Connection::is_broken(&mut *conn.conn);
        if broken {
            self.shared
                .counters
                .incr(&self.shared.counters.broken, "taskstore_pool_broken_total");
        }
        broken
    }
}

/// One cheap round trip.
pub(crate) fn ping(conn: &mut DbConnection) -> Result<(), String> {
    conn.batch_execute("SELECT 1")
        .map_err(|e| scrub(e.to_string().trim_end()))
}
