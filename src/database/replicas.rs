//! Read replicas (`DATABASE_REPLICA_URLS`): which one serves a read, and when none does.
//!
//! - **Routing**: round robin. Each read starts at the next replica in turn and takes the first
//!   one that is neither marked down nor lagging; when none can serve, the read goes to the
//!   primary. Writes never come here: only [`Database::read_conn`](super::Database::read_conn),
//!   [`Database::run_read`](super::Database::run_read) and the repositories' reads (get, list,
//!   count, stats) do.
//! - **Deadline**: the replicas together get at most half of `DATABASE_ACQUIRE_TIMEOUT_MS`;
//!   the primary then has what is left of the whole deadline. A read never waits longer than
//!   one acquisition.
//! - **Down**: a replica whose acquisition fails, or whose connection is lost during a read, is
//!   skipped for [`RECHECK`] (1 s), then tried again by the next read.
//! - **Lag**: checked on a checked-out connection at most once per [`RECHECK`] per replica (one
//!   thread checks, the others use the last verdict), never per query. The lag is
//!   `now() - pg_last_xact_replay_timestamp()` on the replica, except that a replica that has
//!   replayed all the WAL it received (`pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()`)
//!   counts as caught up: on an idle primary the replay timestamp grows old although nothing is
//!   missing. A server that is not in recovery (a promoted replica) has no lag. A lag that
//!   cannot be known (the replica received nothing yet and replayed no transaction) counts as
//!   too far behind. A replica further behind than `DATABASE_REPLICA_MAX_LAG_MS` is skipped
//!   for [`RECHECK`]; zero turns the check off.
//!
//! Limit: a replica that lost its connection to the primary but replayed all it had received
//! counts as caught up until the next check sees `now() - pg_last_xact_replay_timestamp()` (its
//! receive position then stops moving while the replay position equals it). The primary's
//! own view (`pg_stat_replication`) is not consulted: it would cost a round trip on the primary.

use std::panic::Location;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::config::Config;
use crate::conn::DbConnection;
use crate::error::{Error, Result};
use crate::pool::{Conn, Pool};

/// How long a replica found down or lagging is skipped, and how often its lag is checked.
pub const RECHECK: Duration = Duration::from_secs(1);

/// A replica's state as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReplicaState {
    /// Serving reads.
    Up,
    /// Further behind than `DATABASE_REPLICA_MAX_LAG_MS` (or its lag cannot be known): skipped.
    Lagging,
    /// No connection could be checked out, or one was lost: skipped.
    Down,
}

impl std::fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Lagging => "lagging",
            Self::Down => "down",
        })
    }
}

/// One replica in [`Health`](super::Health) and [`Probe`](super::Probe).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaHealth {
    /// The replica's URL, redacted (no password).
    pub url: String,
    /// Up, lagging or down.
    pub state: ReplicaState,
    /// Replay lag behind the primary (how it is measured: the README, "Read replicas"); `None` when down
    /// or unknown.
    #[serde(rename = "lag_ms", serialize_with = "millis")]
    pub lag: Option<Duration>,
    /// Why it is down, scrubbed, one line.
    pub error: Option<String>,
}

fn millis<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
        None => s.serialize_none(),
    }
}

#[derive(QueryableByName)]
struct LagRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    lag_ms: Option<f64>,
}

/// The replica's replay lag in one round trip: `Ok(None)` when it cannot be known. A fixed
/// statement without input (Diesel has no `pg_lsn` type for the DSL).
pub(crate) fn replay_lag(conn: &mut DbConnection) -> Result<Option<Duration>> {
    let row: LagRow = diesel::sql_query(
        "SELECT CASE \
           WHEN NOT pg_is_in_recovery() THEN 0::float8 \
           WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
           ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 \
         END AS lag_ms",
    )
    .get_result(conn)?;
    Ok(row
        .lag_ms
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3)))
}

/// What is known about one replica.
#[derive(Debug)]
struct Seen {
    state: ReplicaState,
    /// Skipped until then.
    skip_until: Option<Instant>,
    lag: Option<Duration>,
    lag_checked_at: Option<Instant>,
    /// A thread is checking the lag now.
    checking: bool,
    error: Option<String>,
}

/// A replica's pool and what is known about it.
pub(super) struct Replica {
    pub(super) pool: Pool,
    seen: Mutex<Seen>,
}

impl Replica {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn skipped(&self, now: Instant) -> bool {
        self.seen().skip_until.is_some_and(|t| now < t)
    }

    /// Marks the replica down for [`RECHECK`].
    pub(super) fn mark_down(&self, err: &Error) {
        let mut seen = self.seen();
        if seen.state != ReplicaState::Down {
            tracing::warn!(replica = %self.pool.url().redacted(), pool = self.pool.name(), error = %err,
                "read replica down; reading from the primary (tried again every {} ms)", RECHECK.as_millis());
        }
        seen.state = ReplicaState::Down;
        seen.skip_until = Some(Instant::now() + RECHECK);
        seen.lag = None;
        seen.lag_checked_at = None;
        seen.error = Some(
            err.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
    }

    /// Records a lag reading: up, or lagging and skipped for [`RECHECK`].
    fn record_lag(&self, lag: Option<Duration>, max: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.seen();
        let ok = lag.is_some_and(|l| l <= max);
        let state = if ok {
            ReplicaState::Up
        } else {
            ReplicaState::Lagging
        };
        if state != seen.state {
            tracing::info!(replica = %self.pool.url().redacted(), state = %state,
                lag_ms = lag.map(|l| l.as_millis() as u64), max_lag_ms = max.as_millis() as u64,
                "read replica state changed");
        }
        seen.state = state;
        seen.lag = lag;
        seen.lag_checked_at = Some(now);
        seen.checking = false;
        seen.error = None;
        seen.skip_until = (!ok).then_some(now + RECHECK);
        ok
    }

    /// Whether this checkout must check the lag first (and claims the check when it must).
    fn claims_lag_check(&self, max: Duration) -> bool {
        if max.is_zero() {
            return false;
        }
        let mut seen = self.seen();
        let due = seen.lag_checked_at.is_none_or(|t| t.elapsed() >= RECHECK);
        if due && !seen.checking {
            seen.checking = true;
            true
        } else {
            false
        }
    }

    fn release_lag_check(&self) {
        self.seen().checking = false;
    }

    /// A connection checked out of this replica, if it may serve a read now.
    fn admit(&self, mut conn: Conn, max_lag: Duration) -> Option<Conn> {
        if !self.claims_lag_check(max_lag) {
            let mut seen = self.seen();
            if seen.state == ReplicaState::Down {
                seen.state = ReplicaState::Up;
                seen.error = None;
            }
            // Lagging and not yet due: the skip window has passed, so the verdict is re-read
            // at the next due check; serve meanwhile only if the last verdict was good.
            return (seen.state == ReplicaState::Up).then_some(conn);
        }
        match replay_lag(&mut conn) {
            Ok(lag) => self.record_lag(lag, max_lag).then_some(conn),
            Err(e) => {
                conn.note_error(&e);
                self.release_lag_check();
                self.mark_down(&e);
                None
            }
        }
    }

    /// A fresh look for [`Health`](super::Health): checks a connection out (within the
    /// acquisition deadline) and reads the lag, updating what the router knows.
    pub(super) fn check_now(
        &self,
        location: &'static Location<'static>,
        max_lag: Duration,
    ) -> ReplicaHealth {
        let url = self.pool.url().redacted().to_owned();
        let looked = self.pool.acquire(location).and_then(|conn| {
            let mut conn = conn.trusted();
            replay_lag(&mut conn).inspect_err(|e| conn.note_error(e))
        });
        match looked {
            Ok(lag) => {
                if !max_lag.is_zero() {
                    self.record_lag(lag, max_lag);
                }
                let lagging = !max_lag.is_zero() && lag.is_none_or(|l| l > max_lag);
                ReplicaHealth {
                    url,
                    state: if lagging {
                        ReplicaState::Lagging
                    } else {
                        ReplicaState::Up
                    },
                    lag,
                    error: None,
                }
            }
            Err(e) => {
                self.mark_down(&e);
                ReplicaHealth {
                    url,
                    state: ReplicaState::Down,
                    lag: None,
                    error: self.seen().error.clone(),
                }
            }
        }
    }
}

/// The replicas of a [`Database`](super::Database) and the round-robin position.
pub(super) struct Replicas {
    pub(super) list: Vec<Replica>,
    next: AtomicUsize,
    max_lag: Duration,
    /// The replicas' share of an acquisition: half of `DATABASE_ACQUIRE_TIMEOUT_MS`.
    budget: Duration,
}

impl Replicas {
    pub(super) fn build(config: &Config) -> Self {
        let list = config
            .replica_urls()
            .iter()
            .enumerate()
            .map(|(i, url)| Replica {
                pool: Pool::build(&format!("replica{}", i + 1), url, config),
                seen: Mutex::new(Seen {
                    state: ReplicaState::Up,
                    skip_until: None,
                    lag: None,
                    lag_checked_at: None,
                    checking: false,
                    error: None,
                }),
            })
            .collect();
        Self {
            list,
            next: AtomicUsize::new(0),
            max_lag: config.replica_max_lag(),
            budget: config.pool().acquire_timeout / 2,
        }
    }

    pub(super) fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// A connection from the next replica that can serve (round robin), with the replica it
    /// came from; `None` when none can within the replicas' share of `deadline`.
    pub(super) fn acquire(
        &self,
        location: &'static Location<'static>,
        deadline: Instant,
    ) -> Option<(Conn, &Replica)> {
        let n = self.list.len();
        if n == 0 {
            return None;
        }
        let start = Instant::now();
        let until = deadline.min(start + self.budget);
        let first = self.next.fetch_add(1, Relaxed);
        for k in 0..n {
            let replica = &self.list[(first + k) % n];
            let now = Instant::now();
            if now >= until {
                break;
            }
            if replica.skipped(now) {
                continue;
            }
            match replica.pool.acquire_until(location, until) {
                Ok(conn) => {
                    if let Some(conn) = replica.admit(conn, self.max_lag) {
                        return Some((conn, replica));
                    }
                }
                Err(e) => replica.mark_down(&e),
            }
        }
        None
    }
}
