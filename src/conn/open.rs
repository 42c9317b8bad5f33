//! Opening one connection and customising it: libpq parameters for PostgreSQL, pragmas for
//! SQLite, and the socket the watchdog needs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, Connection, SimpleConnection};
use diesel::{PgConnection, SqliteConnection};
use retry::OperationResult;

use super::liveness::{self, Peer, Probe, Slot};
use super::socket::{self, Target};
use super::{DbConnection, SessionReset};
use crate::backoff::Backoff;
use crate::config::{BackendKind, Config, DatabaseUrl, PoolConfig, Reload, SessionConfig, Stamp};
use crate::error::{ConnectFailure, Error, Result, UrlOrigin};
use crate::redact::scrub;

/// A connection failure as the connection layer sees it: classified, and scrubbed of secrets.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// Why it failed.
    pub kind: ConnectFailure,
    /// The driver's message, scrubbed.
    pub message: String,
    /// The variables the URL and password came from, for the advice (`None`: unknown).
    pub origin: Option<UrlOrigin>,
}

impl ConnectError {
    fn from_message(raw: &str) -> Self {
        // libpq ends its messages with a newline; the error's Display adds advice after it.
        let message = scrub(&one_line(raw));
        Self {
            kind: ConnectFailure::classify(&message),
            message,
            origin: None,
        }
    }

    /// The same error, naming where `url` came from in its advice.
    fn of(mut self, url: &DatabaseUrl) -> Self {
        self.origin = Some(url.origin().clone());
        self
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
            origin: e.origin,
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

/// Opens one connection to `url` that cannot write, for checks that must leave the database as
/// they found it (`taskstore health`, `migrate status`). On SQLite the file is opened read-only
/// (`mode=ro`) and never created, and its journal mode is left alone (switching an empty file to
/// WAL writes its header); on PostgreSQL the session gets `default_transaction_read_only` in its
/// startup packet, never by a `SET` that a transaction-mode pooler would hand on to other
/// clients (such a pooler drops the startup setting, so there the check relies on reading only).
/// Otherwise like [`open`]: one attempt, no pool.
///
/// # Errors
///
/// As [`open`]; in addition [`Error::Unavailable`] of kind
/// [`ConnectFailure::UnknownDatabase`] when the SQLite file does not exist, as for a
/// PostgreSQL database that does not exist.
///
/// ```
/// # fn main() -> Result<(), taskstore::Error> {
/// let dir = std::env::temp_dir().join(format!("taskstore-doc-ro-{}", std::process::id()));
/// let url = format!("sqlite://{}", dir.join("absent.db").display());
/// let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
/// let err = taskstore::conn::open_read_only(&config, config.database_url()).unwrap_err();
/// assert!(matches!(
///     err,
///     taskstore::Error::Unavailable { kind: taskstore::ConnectFailure::UnknownDatabase, .. }
/// ));
/// assert!(!dir.join("absent.db").exists());
/// # Ok(()) }
/// ```
pub fn open_read_only(config: &Config, url: &DatabaseUrl) -> Result<DbConnection> {
    match url.backend() {
        BackendKind::Postgres => {
            // In the startup packet, not a `SET`: see `libpq_params`.
            let connector = Connector::new_read_only(url, config.pool(), config.session());
            Ok(connector.open()?.conn)
        }
        BackendKind::Sqlite if url.is_memory() => open(config, url),
        BackendKind::Sqlite => {
            let connector = Connector::new(url, config.pool(), config.session());
            let uri = read_only_uri(url.expose()).ok_or_else(|| Error::Unavailable {
                kind: ConnectFailure::UnknownDatabase,
                message: format!(
                    "the SQLite file of {} does not exist (a check never creates it; \
                     `taskstore migrate run` does)",
                    url.redacted()
                ),
                origin: Some(url.origin().clone()),
            })?;
            let mut lite = SqliteConnection::establish(&uri)
                .map_err(|e| ConnectError::from_message(&e.to_string()).of(url))?;
            let millis = u64::try_from(connector.busy_timeout.as_millis()).unwrap_or(u64::MAX);
            lite.batch_execute(&pragma_busy_timeout(millis))
                .map_err(|e| ConnectError::from_message(&e.to_string()))?;
            Ok(DbConnection::Sqlite(lite))
        }
    }
}

/// `file:` URI opening the SQLite database at `target` (a path, or a `file:` URI) read-only, or
/// `None` when its file does not exist. SQLite URI syntax: `?` and `#` in the path must be
/// percent-encoded, and a later `mode` would override ours, so other parameters are kept and
/// every `mode` is replaced.
fn read_only_uri(target: &str) -> Option<String> {
    use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
    const PATH: &AsciiSet = &CONTROLS.add(b'?').add(b'#').add(b'%');
    let (path, params) = match target.strip_prefix("file:") {
        Some(uri) => {
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            let path = percent_decode_str(path).decode_utf8().ok()?.into_owned();
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("mode="))
                .collect();
            (path, kept)
        }
        None => (target.to_owned(), Vec::new()),
    };
    if !std::path::Path::new(&path).is_file() {
        return None;
    }
    let mut uri = String::from("file:");
    uri.extend(utf8_percent_encode(&path, PATH));
    uri.push_str("?mode=ro");
    for p in params {
        uri.push('&');
        uri.push_str(p);
    }
    Some(uri)
}

/// A connection just opened, with its liveness slot (PostgreSQL).
pub(crate) struct Opened {
    pub conn: DbConnection,
    pub slot: Option<Arc<Slot>>,
}

/// Opens customised connections to one URL.
///
/// When the URL's password or whole string comes from a file (`DATABASE_PASSWORD_FILE`,
/// `DATABASE_URL_FILE`), the files are checked before every new connection (one `stat` each)
/// and read again when they changed, and once more after an authentication failure before it
/// is reported: a secret rotated in place is used by new connections without a restart, while
/// connections opened with the old one live out their normal lifetime (PostgreSQL keeps
/// sessions open across `ALTER ROLE ... PASSWORD`).
#[derive(Debug)]
pub(crate) struct Connector {
    /// The URLs new connections use now (rebuilt when a secret file changes).
    current: RwLock<Arc<Current>>,
    /// The libpq parameters added to the configured URL, plain and English (see
    /// [`libpq_params`]), to apply again to a rebuilt one.
    params: Vec<(&'static str, String)>,
    english_params: Vec<(&'static str, String)>,
    /// How to rebuild the URL from its secret files, when it has any.
    reload: Option<Arc<Reload>>,
    /// The variables the URL and password came from, named by connection errors.
    origin: UrlOrigin,
    /// Set once a connection found a non-English server and a role allowed to make its
    /// sessions English: every later connection asks for English in its startup packet.
    force_english: AtomicBool,
    backend: BackendKind,
    session: SessionConfig,
    busy_timeout: Duration,
    /// The server this connector's connections share, for the watchdog.
    peer: Arc<Peer>,
    /// Set once the first connection with prepared statements off (a transaction-mode pooler)
    /// has checked that the session timeouts reached the server.
    timeouts_checked: AtomicBool,
}

/// The URLs a connector opens connections with, and the secret files' stamp they were built
/// from.
#[derive(Debug)]
struct Current {
    stamp: Stamp,
    url: DatabaseUrl,
    /// `url` with `lc_messages=C` in the startup packet, for a server whose messages are not
    /// English when the role may set it (see [`super::language`]).
    english_url: DatabaseUrl,
    /// Where the socket of a new connection leads (PostgreSQL); a rotated URL file may name
    /// another host.
    target: Option<Target>,
}

/// Where the socket of a connection to `url` leads (PostgreSQL).
fn target_of(url: &DatabaseUrl) -> Option<Target> {
    url.first_target()
        .map(|(host, port)| Target::of(&host, port))
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Peer")
    }
}

/// How many times a connection is opened before it is kept without its socket found: each
/// try that another connect to the same target overlapped is closed and made again.
const SOCKET_TRIES: usize = 10;
/// The first delay before a further try; doubling, jittered ([`Backoff`]), up to
/// [`SOCKET_RETRY_CAP`]. Ten tries wait at most about a quarter of a second in all.
const SOCKET_RETRY_BASE: Duration = Duration::from_millis(2);
const SOCKET_RETRY_CAP: Duration = Duration::from_millis(40);

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
        Self::with_access(url, pool, session, Access::ReadWrite)
    }

    /// Like [`Connector::new`], for sessions that must not write: on PostgreSQL
    /// `default_transaction_read_only` travels in the startup packet (see [`libpq_params`]).
    pub(crate) fn new_read_only(
        url: &DatabaseUrl,
        pool: &PoolConfig,
        session: &SessionConfig,
    ) -> Self {
        Self::with_access(url, pool, session, Access::ReadOnly)
    }

    fn with_access(
        url: &DatabaseUrl,
        pool: &PoolConfig,
        session: &SessionConfig,
        access: Access,
    ) -> Self {
        let params = libpq_params(pool, session, false, access);
        let english_params = libpq_params(pool, session, true, access);
        let english_url = url.with_libpq_params(&english_params);
        let reload = url.reload().cloned();
        let origin = url.origin().clone();
        let url = url.with_libpq_params(&params);
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
            peer: Arc::new(Peer::new(session.statement_timeout, probe)),
            // An empty stamp: the first connection checks the files against what the
            // configuration read (they may have changed since).
            current: RwLock::new(Arc::new(Current {
                stamp: Stamp::new(),
                target: target_of(&url),
                url,
                english_url,
            })),
            params,
            english_params,
            reload,
            origin,
            force_english: AtomicBool::new(false),
            timeouts_checked: AtomicBool::new(false),
            session: session.clone(),
            busy_timeout: if session.lock_timeout.is_zero() {
                Duration::from_secs(5)
            } else {
                session.lock_timeout
            },
        }
    }

    fn current(&self) -> Arc<Current> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the secret files when they changed since the URL was built (or always, with
    /// `force`) and makes new connections use what they hold. True when the connection string
    /// changed. A file that cannot be read or holds something refused (empty, a second line:
    /// perhaps a rewrite caught half-way) keeps the previous secret, with a warning that names
    /// the variable and never the content.
    fn refresh(&self, force: bool) -> bool {
        let Some(reload) = &self.reload else {
            return false;
        };
        let stamp = reload.stamp();
        let current = self.current();
        if !force && stamp == current.stamp {
            return false;
        }
        let rebuilt = reload.rebuild();
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        match rebuilt {
            Ok(url) => {
                let plain = url.with_libpq_params(&self.params);
                if plain.expose() == slot.url.expose() {
                    *slot = Arc::new(Current {
                        stamp,
                        url: slot.url.clone(),
                        english_url: slot.english_url.clone(),
                        target: slot.target.clone(),
                    });
                    return false;
                }
                tracing::info!(
                    files = %reload.file_variables(),
                    "a secret file changed: new connections use the secret it holds now"
                );
                *slot = Arc::new(Current {
                    stamp,
                    english_url: url.with_libpq_params(&self.english_params),
                    target: target_of(&plain),
                    url: plain,
                });
                true
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "could not re-read a secret file; new connections keep the previous secret"
                );
                *slot = Arc::new(Current {
                    stamp,
                    url: slot.url.clone(),
                    english_url: slot.english_url.clone(),
                    target: slot.target.clone(),
                });
                false
            }
        }
    }

    /// Establishes and customises one connection. A secret file that changed is read first;
    /// an authentication failure reads the files once more and, when that changed the secret,
    /// tries once again before it is reported. Errors name the variables the URL and password
    /// came from.
    pub fn open(&self) -> Result<Opened, ConnectError> {
        self.refresh(false);
        let tried = self.current();
        let result = match self.open_current() {
            // Retried when the secret is not the one that failed, whichever connection read
            // it (several may fail at once; the first to re-read updates it for all).
            Err(e)
                if e.kind == ConnectFailure::Authentication
                    && self.reload.is_some()
                    && (self.refresh(true)
                        || self.current().url.expose() != tried.url.expose()) =>
            {
                tracing::info!(
                    "authentication failed with the previous secret; trying once more with the one just read"
                );
                self.open_current()
            }
            other => other,
        };
        result.map_err(|mut e| {
            e.origin = Some(self.origin.clone());
            e
        })
    }

    /// On PostgreSQL the first connection also checks the language of the server's messages:
    /// when it is not English and the role may set `lc_messages`, that connection is opened
    /// again (once per connector) with `lc_messages=C` in its startup packet, as every later one
    /// is; otherwise it warns.
    fn open_current(&self) -> Result<Opened, ConnectError> {
        let forced = self.force_english.load(Ordering::Relaxed);
        let (mut conn, slot) = self.establish_bounded(forced)?;
        self.customize(&mut conn)?;
        self.check_session_timeouts(&mut conn);
        if forced {
            return Ok(Opened { conn, slot });
        }
        if let DbConnection::Postgres(pg) = &mut conn
            && super::language::must_force_english(pg)
                .map_err(|e| ConnectError::from_message(&e.to_string()))?
        {
            self.force_english.store(true, Ordering::Relaxed);
            drop(conn);
            let (mut conn, slot) = self.establish_bounded(true)?;
            self.customize(&mut conn)?;
            return Ok(Opened { conn, slot });
        }
        Ok(Opened { conn, slot })
    }

    /// Behind a transaction-mode pooler (prepared statements off), checks once that the session
    /// timeouts sent in the startup packet reached the server. PgBouncer drops the `options`
    /// parameter (`ignore_startup_parameters = options`), so its server sessions keep the
    /// server's or the role's defaults: `with_transaction` then sets the timeouts per
    /// transaction, and a statement outside a transaction is bounded by the role's setting and
    /// the client-side watchdog. A warning says so and names the fix. One round trip, on the
    /// first connection only.
    fn check_session_timeouts(&self, conn: &mut DbConnection) {
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = diesel::sql_types::Text)]
            setting: String,
        }
        if self.session.prepared_statements || self.timeouts_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let DbConnection::Postgres(pg) = conn else {
            return;
        };
        use diesel::RunQueryDsl;
        let found: std::result::Result<Setting, _> =
            diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
                .get_result(pg);
        let wanted = self.session.statement_timeout.as_millis().to_string();
        match found {
            Ok(Setting { setting }) if setting == wanted => {}
            Ok(Setting { setting }) => tracing::warn!(
                server_ms = %setting,
                configured_ms = %wanted,
                "the session timeouts did not reach the server (a transaction-mode pooler drops \
                 the startup `options`): with_transaction sets them per transaction, but a \
                 statement outside a transaction runs under the server's statement_timeout and \
                 lock_timeout, bounded only by the client-side watchdog; set them on the role: \
                 ALTER ROLE <runtime role> SET statement_timeout = ..., lock_timeout = ..., \
                 idle_in_transaction_session_timeout = ... (see docs/roles.sql)"
            ),
            Err(e) => {
                tracing::debug!(error = %scrub(&e.to_string()), "could not read statement_timeout")
            }
        }
    }

    /// Establishes a connection and, on PostgreSQL, finds its socket (the one new socket
    /// whose peer is the URL's target) and attaches a liveness slot to it, before any
    /// statement runs on it.
    fn establish_bounded(
        &self,
        english: bool,
    ) -> Result<(DbConnection, Option<Arc<Slot>>), ConnectError> {
        let current = self.current();
        let Some(target) = &current.target else {
            return Ok((self.establish(&current, english)?, None));
        };
        let lock = establish_lock(target);
        let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        let mut conn = None;
        // The layer's own connects to one target are serialised by the lock above, so a
        // second new socket to the same target is the application's own connect (outside the
        // layer) overlapping this one. Each further try waits a jittered, growing delay first,
        // so that it falls between the application's connects rather than in step with them.
        let mut delays = Backoff::new(SOCKET_RETRY_BASE, SOCKET_RETRY_CAP);
        for attempt in 0..SOCKET_TRIES {
            if let Some(overlapped) = conn.take() {
                drop(overlapped);
                std::thread::sleep(delays.next().unwrap_or(SOCKET_RETRY_CAP));
            }
            let before = socket::sockets();
            let c = self.establish(&current, english)?;
            found = socket::claim_new_socket(&before, target);
            conn = Some(c);
            if found.is_some() {
                if attempt > 0 {
                    tracing::debug!(
                        tries = attempt + 1,
                        "found the socket of a new connection after connects outside the \
                         layer overlapped"
                    );
                }
                break;
            }
        }
        let mut conn = conn.expect("established at least once");
        if found.is_none() {
            tracing::warn!(
                tries = SOCKET_TRIES,
                "could not find the socket of a new connection (the application's own connects \
                 to the same server overlapped each try); its statements are bounded only by \
                 the server's timeouts, not by the client-side deadline"
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

    fn establish(&self, current: &Current, english: bool) -> Result<DbConnection, ConnectError> {
        let url = if english {
            &current.english_url
        } else {
            &current.url
        };
        let result = match self.backend {
            BackendKind::Postgres => {
                PgConnection::establish(url.expose()).map(DbConnection::Postgres)
            }
            BackendKind::Sqlite => {
                SqliteConnection::establish(current.url.expose()).map(DbConnection::Sqlite)
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
                if !self.current().url.expose().contains("mode=memory") {
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

/// Whether a connector's sessions may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    /// `default_transaction_read_only=on` in the startup packet.
    ReadOnly,
}

/// libpq parameters added to every PostgreSQL URL (values the user put in the URL win);
/// `english` adds `lc_messages=C`, which only a superuser or a role granted `SET` on it may
/// send (anyone else's connection is refused); [`Access::ReadOnly`] adds
/// `default_transaction_read_only=on`. Settings go in the startup packet, never as a `SET`:
/// behind a transaction-mode pooler a `SET` stays on the server session, which the pooler then
/// hands to other clients (a read-only one made their writes fail with SQLSTATE 25006), while
/// the pooler drops startup `options` (PgBouncer's `ignore_startup_parameters`) and so leaks
/// nothing.
fn libpq_params(
    pool: &PoolConfig,
    session: &SessionConfig,
    english: bool,
    access: Access,
) -> Vec<(&'static str, String)> {
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
    if english {
        // In the startup packet, so that the session's `RESET ALL` keeps it.
        options.push_str("-c lc_messages=C ");
    }
    if access == Access::ReadOnly {
        options.push_str("-c default_transaction_read_only=on");
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
