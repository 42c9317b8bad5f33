//! The paths of the connection layer before it was split by layer, kept so that
//! `taskstore::db::*` keeps compiling: the items live in [`crate::conn`] (one connection),
//! [`crate::pool`] (pools, acquisition, statistics) and [`crate::database`] (the façade).

pub(crate) use crate::conn::on_backend;
pub use crate::conn::{ConnectError, DbConnection, MultiBackend};
pub use crate::database::{Database, Health};
pub use crate::pool::{Conn, LatencySummary, Stats};
