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
//! Layout: [`config`] (environment → validated [`Config`]), [`db`] (pools, acquisition,
//! [`Database`]), [`tx`] (`with_transaction`: commit, rollback, savepoints, re-runs),
//! [`error`] (the one [`Error`] enum), [`migrate`], [`schema`], [`sql_types`], [`redact`]
//! (secret scrubbing), [`models`] (users, tasks, typed ids, validation), [`repo`] (the user
//! and task operations, written once for both backends) and [`diagnostics`] (query plans; not
//! for the request path).

mod backoff;
pub mod config;
pub mod db;
pub mod diagnostics;
pub mod error;
pub mod migrate;
pub mod models;
pub mod redact;
pub mod repo;
pub mod schema;
pub mod sql_types;
pub mod tx;

pub use config::{BackendKind, Config, DatabaseUrl, Environment};
pub use db::{Conn, Database, DbConnection, Stats};
pub use error::{ConnectFailure, DbErrorKind, Error, PoolState, Result};
pub use models::{
    NewTask, NewUser, Page, PageRequest, Task, TaskFilter, TaskId, TaskImport, TaskPatch, TaskSort,
    TaskStats, User, UserId, UserPatch,
};
pub use tx::{IsolationLevel, TransactionError, TxOptions};

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
