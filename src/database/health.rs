//! Does the database answer, how fast, and at which schema version: through the pool
//! ([`Database::health`], for a running application) or on one connection of its own
//! ([`probe`], for a one-shot check such as `taskstore health`, which must not build a pool).

use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::replicas;
pub use super::replicas::{RECHECK as REPLICA_RECHECK, ReplicaHealth, ReplicaState};
use super::{Database, DbConnection};
use crate::config::{BackendKind, Config};
use crate::error::{DbErrorKind, Error, PoolState, Result};
use crate::migrate::{self, MigrationStatus};

diesel::table! {
    /// Diesel's own bookkeeping table (read-only here).
    __diesel_schema_migrations (version) {
        version -> Text,
    }
}

/// The answer of [`Database::health`].
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Health {
    /// Backend of the primary.
    pub backend: BackendKind,
    /// One round trip (`SELECT 1`) on a pooled connection, excluding acquisition.
    pub latency: Duration,
    /// Time to check the connection out.
    pub acquire: Duration,
    /// The newest applied migration's version, if any.
    pub schema_version: Option<String>,
    /// The pool at the time of the check.
    pub pool: PoolState,
    /// Each read replica (`DATABASE_REPLICA_URLS`), in configuration order: checked now, one
    /// connection each within the acquisition deadline, with its replay lag.
    pub replicas: Vec<ReplicaHealth>,
}

/// The answer of [`probe`]: one connection, no pool.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Probe {
    /// Backend of `DATABASE_URL`.
    pub backend: BackendKind,
    /// Time to open and set up the connection.
    pub connect: Duration,
    /// One round trip (`SELECT 1`), excluding the connect.
    pub latency: Duration,
    /// The newest applied migration's version, if any (unknown ones included).
    pub schema_version: Option<String>,
    /// The database against the migrations embedded in this binary.
    pub migrations: MigrationStatus,
    /// Each read replica (`DATABASE_REPLICA_URLS`), in configuration order, on one read-only
    /// connection of its own, with its replay lag.
    pub replicas: Vec<ReplicaHealth>,
    /// Connections the probe opened: one, plus one per replica; all closed when it returns.
    pub connections_opened: u32,
}

impl Health {
    /// Checks out a connection, measures one round trip and reads the schema version. Fails
    /// with the same typed errors as [`Database::conn`] when the database is unreachable.
    #[tracing::instrument(name = "health", skip_all)]
    pub(super) fn check(db: &Database) -> Result<Health> {
        let start = Instant::now();
        // The check leaves no session state behind: no reset round trip on return.
        let mut conn = db.conn()?.trusted();
        let acquire = start.elapsed();
        let (latency, schema_version) = match round_trip(&mut conn) {
            Ok(answer) => answer,
            Err(err) => {
                conn.note_error(&err);
                return Err(err);
            }
        };
        drop(conn);
        let location = std::panic::Location::caller();
        let max_lag = db.inner.replicas.max_lag();
        let replicas = db
            .inner
            .replicas
            .list
            .iter()
            .map(|r| r.check_now(location, max_lag))
            .collect();
        Ok(Health {
            backend: db.backend(),
            latency,
            acquire,
            schema_version,
            pool: db.pool_state(),
            replicas,
        })
    }
}

/// Opens one read-only connection to `DATABASE_URL` (no pool, no start-up wait, no idle
/// connections; see [`crate::conn::open_read_only`]), measures one round trip and reads where
/// the schema stands, then closes it. Writes nothing: a SQLite file that does not exist is not
/// created, an empty one stays empty.
///
/// Errors: [`Error::Unavailable`] when the connection cannot be opened (of kind
/// [`ConnectFailure::UnknownDatabase`](crate::ConnectFailure::UnknownDatabase) for a SQLite
/// file that does not exist), an
/// [`Error::Database`] of kind [`DbErrorKind::Disconnected`] when it drops during the check.
///
/// ```
/// # fn main() -> Result<(), taskstore::Error> {
/// let config = taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")])?;
/// let probe = taskstore::health::probe(&config)?;
/// assert!(probe.schema_version.is_none() && !probe.migrations.is_current());
/// # Ok(()) }
/// ```
#[tracing::instrument(name = "health.probe", skip_all)]
pub fn probe(config: &Config) -> Result<Probe> {
    let start = Instant::now();
    let mut conn = crate::conn::open_read_only(config, config.database_url())?;
    let connect = start.elapsed();
    let (latency, schema_version) = round_trip(&mut conn)?;
    let migrations = migrate::status(&mut conn)?;
    let backend = conn.backend();
    drop(conn);
    let replicas: Vec<ReplicaHealth> = config
        .replica_urls()
        .iter()
        .map(|url| probe_replica(config, url))
        .collect();
    Ok(Probe {
        backend,
        connect,
        latency,
        schema_version,
        migrations,
        connections_opened: 1 + replicas.len() as u32,
        replicas,
    })
}

/// One replica for [`probe`]: a read-only connection of its own and its replay lag, judged
/// against `DATABASE_REPLICA_MAX_LAG_MS` as reads would judge it.
fn probe_replica(config: &Config, url: &crate::config::DatabaseUrl) -> ReplicaHealth {
    let looked = crate::conn::open_read_only(config, url)
        .and_then(|mut conn| replicas::replay_lag(&mut conn));
    let max_lag = config.replica_max_lag();
    match looked {
        Ok(lag) => ReplicaHealth {
            url: url.redacted().to_owned(),
            state: if max_lag.is_zero() || lag.is_some_and(|l| l <= max_lag) {
                ReplicaState::Up
            } else {
                ReplicaState::Lagging
            },
            lag,
            error: None,
        },
        Err(e) => ReplicaHealth {
            url: url.redacted().to_owned(),
            state: ReplicaState::Down,
            lag: None,
            error: Some(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        },
    }
}

/// One timed `SELECT 1`, then the schema version.
fn round_trip(conn: &mut DbConnection) -> Result<(Duration, Option<String>)> {
    let t = Instant::now();
    crate::conn::ping(conn).map_err(|message| Error::Database {
        kind: DbErrorKind::Disconnected,
        message,
    })?;
    let latency = t.elapsed();
    // Before the first migration the table does not exist: that is "no version", not an error.
    let schema_version = __diesel_schema_migrations::table
        .select(diesel::dsl::max(__diesel_schema_migrations::version))
        .get_result::<Option<String>>(conn)
        .unwrap_or(None);
    Ok((latency, schema_version))
}
