//! The [`Database`] façade: the one handle an application builds at start-up and shares.
//!
//! Every public operation is here, each a few lines that hand the work to the layer that does
//! it: the pools ([`crate::pool`]), transactions ([`crate::tx`]), migrations
//! ([`crate::migrate`]), the repositories ([`crate::repo`], through [`Users`] and [`Tasks`])
//! and the health check.

mod handles;
pub mod health;
mod replicas;

use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

pub use handles::{Tasks, Users};
pub use health::{Health, Probe};

use crate::config::{BackendKind, Config};
use crate::conn::DbConnection;
use crate::error::{Error, PoolState, Result};
use crate::models::UserId;
use crate::pool::{self, Conn, Pool, Stats};
use crate::tx::{self, TransactionError, TxOptions};

/// The handle an application builds once at start-up and shares (it is cheap to clone).
///
/// ```no_run
/// # fn main() -> Result<(), taskstore::Error> {
/// let config = taskstore::Config::from_env()?;
/// let db = taskstore::Database::connect(&config)?;
/// let mut conn = db.conn()?;           // a connection, or a typed error within the deadline
/// # let _ = &mut conn;
/// println!("{:?}", db.stats().pool);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
    /// Reads go to the primary (see [`Database::on_primary`]).
    reads_on_primary: bool,
}

impl Database {
    /// Builds the pools, waits up to `DATABASE_STARTUP_WAIT_MS` for the database (logging each
    /// attempt), checks the pool against the server's `max_connections`, and applies pending
    /// migrations when `DATABASE_MIGRATE_ON_STARTUP` is true.
    ///
    /// Install a `metrics` recorder before calling this: the pools register their metrics
    /// here.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database does not answer within the start-up wait or
    /// refuses us (authentication, unknown database); [`Error::Migration`] when migrations
    /// cannot be applied.
    pub fn connect(config: &Config) -> Result<Self> {
        let db = Self {
            inner: Arc::new(Inner::open(config)?),
            reads_on_primary: false,
        };
        if config.migrate_on_startup() {
            crate::migrate::run_on_startup(config)?;
        }
        Ok(db)
    }

    /// The configuration this database was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The backend of the primary.
    pub fn backend(&self) -> BackendKind {
        self.inner.primary.backend()
    }

    /// Checks a connection out of the primary pool, within `DATABASE_ACQUIRE_TIMEOUT_MS`.
    ///
    /// The caller may do anything with it, including a raw `BEGIN` or `SET` through
    /// `sql_query`, so it is reset when it returns to the pool: any open transaction rolled
    /// back, session settings restored (on PostgreSQL `RESET ALL` and friends, one round trip
    /// on return; on SQLite the layer's pragmas, no network). A connection that cannot be reset
    /// is discarded. [`Database::run`], [`Database::with_transaction`] and the repositories run
    /// only the layer's own statements and skip that round trip, which is why they are the
    /// fast path: prefer them for ordinary work and keep `conn()` for code that needs the
    /// connection itself.
    ///
    /// # Errors
    ///
    /// [`Error::PoolTimeout`] when every connection stays checked out until the deadline (or
    /// `DATABASE_POOL_MAX_WAITERS` callers are already waiting); [`Error::Unavailable`] when
    /// the server does not answer in time or refuses us.
    #[track_caller]
    pub fn conn(&self) -> Result<Conn> {
        self.inner.primary.acquire_raw(Location::caller())
    }

    /// Checks a connection out of a read replica when replicas are configured
    /// (`DATABASE_REPLICA_URLS`), else out of the primary, within `DATABASE_ACQUIRE_TIMEOUT_MS`.
    ///
    /// Replicas are taken in turn (round robin). One that is down or further behind than
    /// `DATABASE_REPLICA_MAX_LAG_MS` is skipped, and when none can serve within half of the
    /// acquisition deadline the connection comes from the primary (the rules are in the
    /// README's Configuration section, "Read replicas"). A replica is read-only: a write on this connection fails with
    /// [`DbErrorKind::ReadOnlyTransaction`](crate::error::DbErrorKind::ReadOnlyTransaction)
    /// (SQLSTATE 25006). Replicas lag: to read your own writes use [`Database::on_primary`]
    /// (or a transaction, which always runs on the primary).
    ///
    /// # Errors
    ///
    /// As [`Database::conn`], for the primary.
    #[track_caller]
    pub fn read_conn(&self) -> Result<Conn> {
        let deadline = Instant::now() + self.config().pool().acquire_timeout;
        self.read_target(Location::caller(), deadline)
            .map(|(conn, _)| conn)
    }

    /// A handle on the same pools whose reads all go to the primary: read-your-writes for a
    /// caller that has just written (`db.on_primary().tasks().get(owner, id)`). Cheap (a clone
    /// of the handle); writes and transactions are on the primary with any handle.
    pub fn on_primary(&self) -> Database {
        Self {
            inner: Arc::clone(&self.inner),
            reads_on_primary: true,
        }
    }

    /// Whether this handle reads from the primary only (see [`Database::on_primary`]).
    pub fn reads_on_primary(&self) -> bool {
        self.reads_on_primary || self.inner.replicas.list.is_empty()
    }

    /// A read connection and the replica it came from (`None`: the primary).
    fn read_target(
        &self,
        location: &'static Location<'static>,
        deadline: Instant,
    ) -> Result<(Conn, Option<&replicas::Replica>)> {
        if !self.reads_on_primary
            && let Some((conn, replica)) = self.inner.replicas.acquire(location, deadline)
        {
            return Ok((conn, Some(replica)));
        }
        Ok((self.inner.primary.acquire_until(location, deadline)?, None))
    }

    /// Checks out a connection, runs `f` on it and returns its result. A disconnect-class error
    /// discards the connection and evicts its idle siblings.
    ///
    /// The connection is not reset on return (see [`Database::conn`]): `f` must not leave a
    /// transaction open or change session settings; use [`Database::with_transaction`] for
    /// transactions.
    #[track_caller]
    pub fn run<T>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T>) -> Result<T> {
        self.inner.primary.acquire(Location::caller())?.run(f)
    }

    /// [`Database::run`] for a read, on a replica when configured (see
    /// [`Database::read_conn`]), run once more on a fresh connection when it fails with a
    /// disconnect-class error: the connection died before the read ran (a restart,
    /// `pg_terminate_backend`, a replica stopping), and a read that returned nothing can be
    /// repeated safely. A replica that lost the connection is marked down and the second run
    /// goes to the primary. The second run's acquisition keeps the first one's deadline.
    #[track_caller]
    pub(crate) fn run_read_once_more<T>(
        &self,
        f: impl FnMut(&mut DbConnection) -> Result<T>,
    ) -> Result<T> {
        self.read_once_more(None, f)
    }

    /// [`Database::run_read_once_more`] for a task read of `owner`'s rows: inside a transaction
    /// scoped to `owner` when row-level security applies to the connection's session (see
    /// [`owner_scoped`]), as it is otherwise (no extra round trip).
    #[track_caller]
    pub(crate) fn run_read_as_owner<T>(
        &self,
        owner: UserId,
        f: impl FnMut(&mut DbConnection) -> Result<T>,
    ) -> Result<T> {
        self.read_once_more(Some(owner), f)
    }

    #[track_caller]
    fn read_once_more<T>(
        &self,
        owner: Option<UserId>,
        mut f: impl FnMut(&mut DbConnection) -> Result<T>,
    ) -> Result<T> {
        let location = Location::caller();
        let deadline = Instant::now() + self.config().pool().acquire_timeout;
        let run = |conn: Conn, f: &mut dyn FnMut(&mut DbConnection) -> Result<T>| match owner {
            None => conn.run(f),
            Some(owner) => owner_scoped(conn, owner, self.config(), f),
        };
        let (conn, replica) = self.read_target(location, deadline)?;
        match run(conn, &mut f) {
            Err(e) if e.is_disconnect() && Instant::now() < deadline => {
                tracing::debug!(error = %e, "a read lost its connection; running it once more on a fresh one");
                if let Some(replica) = replica {
                    replica.mark_down(&e);
                }
                run(
                    self.inner.primary.acquire_until(location, deadline)?,
                    &mut f,
                )
            }
            other => other,
        }
    }

    /// [`Database::run`] for a task write of `owner`'s rows: inside a transaction scoped to
    /// `owner` when row-level security applies to the connection's session (see
    /// [`owner_scoped`]), as it is otherwise (no extra round trip).
    #[track_caller]
    pub(crate) fn run_as_owner<T>(
        &self,
        owner: UserId,
        f: impl FnOnce(&mut DbConnection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.inner.primary.acquire(Location::caller())?;
        owner_scoped(conn, owner, self.config(), f)
    }

    /// Like [`Database::run`], on a read replica when configured (see
    /// [`Database::read_conn`]). A replica whose connection is lost during `f` is marked down,
    /// so that the next read goes elsewhere; `f` itself is not run again (it may have
    /// side effects outside the database): the repositories' reads are.
    #[track_caller]
    pub fn run_read<T>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + self.config().pool().acquire_timeout;
        let (conn, replica) = self.read_target(Location::caller(), deadline)?;
        let result = conn.run(f);
        if let (Err(e), Some(replica)) = (&result, replica)
            && e.is_disconnect()
        {
            replica.mark_down(e);
        }
        result
    }

    /// Runs `f` inside a transaction on the primary with the default [`TxOptions`]. See the
    /// [`tx`] module for the outcomes, re-runs and `CommitUnknown`.
    #[track_caller]
    pub fn with_transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E>,
        E: From<Error> + TransactionError,
    {
        self.with_transaction_opts(TxOptions::default(), f)
    }

    /// Runs `f` inside a transaction on the primary with `opts` (isolation level, read-only,
    /// re-runs).
    ///
    /// ```
    /// # fn main() -> Result<(), taskstore::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let url = format!("sqlite://{}", dir.path().join("doc.db").display());
    /// # let config = taskstore::Config::from_vars([("DATABASE_URL", url.as_str())])?;
    /// # let db = taskstore::Database::connect(&config)?;
    /// use taskstore::tx::TxOptions;
    /// let n = db.with_transaction_opts(TxOptions::new().serializable().read_only(), |conn| {
    ///     use diesel::prelude::*;
    ///     Ok::<_, taskstore::Error>(taskstore::schema::tasks::table.count().get_result::<i64>(conn)?)
    /// })?;
    /// # assert_eq!(n, 0);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn with_transaction_opts<T, E, F>(&self, opts: TxOptions, f: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E>,
        E: From<Error> + TransactionError,
    {
        tx::run(&self.inner.primary, self.config(), opts, f)
    }

    /// User operations, each on a connection checked out for the call.
    pub fn users(&self) -> Users<'_> {
        Users::new(self)
    }

    /// Task operations, each on a connection checked out for the call.
    pub fn tasks(&self) -> Tasks<'_> {
        Tasks::new(self)
    }

    /// Checks out a connection, measures one round trip and reads the schema version. Fails
    /// with the same typed errors as [`Database::conn`] when the database is unreachable.
    pub fn health(&self) -> Result<Health> {
        Health::check(self)
    }

    /// The primary pool's current state.
    pub fn pool_state(&self) -> PoolState {
        self.inner.primary.state()
    }

    /// A snapshot of the primary pool's state and counters.
    pub fn stats(&self) -> Stats {
        self.inner.primary.stats()
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", self.inner.primary.url())
            .field("replicas", &self.inner.replicas.list.len())
            .field("reads_on_primary", &self.reads_on_primary)
            .field("pool", &self.pool_state())
            .finish()
    }
}

/// What a [`Database`] shares between its clones.
struct Inner {
    config: Config,
    /// For `sqlite::memory:`: a connection held for the life of the `Database`, because an
    /// in-memory database disappears when its last connection closes.
    _anchor: Option<std::sync::Mutex<DbConnection>>,
    primary: Pool,
    replicas: replicas::Replicas,
}

impl Inner {
    /// The start-up sequence: describe the metrics, wait for the database, build the pools,
    /// check the primary against the server's capacity.
    fn open(config: &Config) -> Result<Self> {
        pool::describe_metrics();
        let anchor = if config.database_url().is_memory() {
            let conn = crate::conn::open(config, config.database_url())?;
            Some(std::sync::Mutex::new(conn))
        } else {
            None
        };
        pool::wait_until_ready(config.database_url(), config)?;
        let primary = Pool::build("primary", config.database_url(), config);
        let replicas = replicas::Replicas::build(config);
        // A pool of one (a one-shot command such as the CLI's) cannot be what exhausts the
        // server's slots; the check would only cost it a round trip.
        if config.pool().max_size > 1 {
            primary.check_server_capacity();
        }
        Ok(Self {
            config: config.clone(),
            _anchor: anchor,
            primary,
            replicas,
        })
    }
}

/// Runs a task call `f` for `owner` on `conn` (trusted, like `Conn::run`): as
/// it is when row-level security does not apply to the session (`Conn::row_security`),
/// otherwise inside a transaction scoped to `owner` (`taskstore.user_id` set in the BEGIN
/// batch, see [`TxOptions::owner`](crate::tx::TxOptions::owner)), so that a role under the
/// policy sees and writes the owner's rows (behind a transaction-mode pooler with the
/// session timeouts of `config` as transaction-local settings, as `with_transaction` sets
/// them).
fn owner_scoped<T>(
    conn: Conn,
    owner: UserId,
    config: &Config,
    f: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    let mut conn = conn.trusted();
    let result = match conn.row_security() {
        Ok(false) => {
            let result = f(&mut conn);
            // The policy refused a write that was not owner-scoped: row-level security was
            // turned on after this connection asked. Discarded, so that its answer goes with it.
            if let Err(Error::Database { message, .. }) = &result
                && message.contains("row-level security policy")
            {
                conn.discard();
            }
            result
        }
        Ok(true) => {
            let locals = crate::tx::pooler_locals(config);
            crate::tx::scoped(&mut conn, owner, locals.as_deref(), f)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        conn.note_error(e);
    }
    result
}
