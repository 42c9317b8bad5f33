//! # taskstore
//!
//! The synchronous persistence layer of a multi-user task application, on Diesel: PostgreSQL in
//! production, embedded SQLite by default, r2d2 pooling with hard deadlines, embedded
//! migrations, and secrets that never reach a log line.
//!
//! ```
//! # fn main() -> Result<(), taskstore::Error> {
//! let config = taskstore::Config::from_vars([("DATABASE_URL", "sqlite::memory:")])?;
//! let db = taskstore::Database::connect(&config)?;   // migrations applied
//! let stats = db.stats();
//! assert!(stats.pool.max_size >= 1);
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! Each module uses only the modules listed after it, so a change travels one way
//! (`tests/layers.rs` reads `src/` and fails on an arrow pointing up or sideways):
//!
//! | module | holds |
//! |---|---|
//! | [`diagnostics`] | query plans (`EXPLAIN ANALYZE` runs the query): for tests and benchmarks, not the request path |
//! | [`database`] | the [`Database`] façade: every public operation, each delegating below; the [`Users`](database::Users) / [`Tasks`](database::Tasks) handles; [`Health`](database::Health) |
//! | [`repo`] | the user and task operations, written once against `&mut DbConnection` for both backends |
//! | [`migrate`], [`tx`] | migrations on one connection under a lock; transactions on a pool (commit, rollback, savepoints, re-runs, `CommitUnknown`) |
//! | [`models`], [`schema`], [`sql_types`] | the domain types (users, tasks, typed ids, validation) and the Diesel schema, in that order |
//! | [`pool`] | r2d2 pools, acquisition with a hard deadline, the [`Conn`] guard, start-up, [`Stats`] and metrics |
//! | [`conn`] | one connection: [`DbConnection`], opening and customising it, the session reset, liveness |
//! | [`config`] | environment → validated [`Config`] |
//! | [`error`], [`redact`] | the one [`Error`] enum; secret scrubbing |
//!
//! Every loop that waits and tries again takes its delays from one backoff policy
//! (exponential, equal jitter, clipped to a deadline).
//!
//! # Observability
//!
//! `tracing` events throughout, and `debug`-level spans `acquire` (one checkout, with the
//! `pool`) and `transaction` (one `with_transaction`, with its `runs`). Metrics go through the
//! `metrics` facade, each with a `pool` label (`primary`, `replica1`, ...): see
//! [`pool`](pool#metrics) for the list, and install the recorder before [`Database::connect`].

// In layer order: a module uses only modules declared after it.

// The façade.
pub mod database;

// Query-plan diagnostics, beside the façade: never on the request path.
pub mod diagnostics;

// The repositories, then what they build on: migrations and transactions.
pub mod repo;

pub mod migrate;
pub mod tx;

// The domain types and the Diesel schema.
pub mod models;
pub mod schema;
pub mod sql_types;

// Pools of connections, then one connection.
pub mod pool;

pub mod conn;

// Configuration, then the foundations: the backoff policy, errors, secret scrubbing.
pub mod config;

mod backoff;
pub mod error;
pub mod redact;

pub use config::{BackendKind, Config, DatabaseUrl, Environment};
pub use conn::DbConnection;
pub use database::{Database, health};
pub use error::{ConnectFailure, DbErrorKind, Error, PoolState, Result};
pub use models::{
    NewTask, NewUser, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, User, UserId, UserPatch,
};
pub use pool::{Conn, Stats};
pub use tx::{IsolationLevel, TransactionError, TxOptions};

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
