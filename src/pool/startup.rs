//! Start-up: waiting for the database before the pools are built, and checking the pool
//! against the server's `max_connections`.

use std::panic::Location;
use std::time::{Duration, Instant};

use diesel::prelude::*;

use super::Pool;
use crate::backoff::Backoff;
use crate::config::{BackendKind, Config, DatabaseUrl};
use crate::conn::Connector;
use crate::error::{Error, Result};

/// Waits up to `DATABASE_STARTUP_WAIT_MS` for `url` to accept a connection, logging each
/// attempt; a permanent error (authentication, unknown database, ...) fails at once.
///
/// Called before the pool is built: r2d2 would otherwise start its own connection attempts in
/// parallel with these, doubling the load (and the log lines) on a database that is still
/// starting.
pub(crate) fn wait_until_ready(url: &DatabaseUrl, config: &Config) -> Result<()> {
    let start = Instant::now();
    let deadline = start + config.pool().startup_wait;
    let connector = Connector::new(url, config.pool(), config.session());
    let mut delays = Backoff::new(
        config
            .pool()
            .retry_base_delay
            .max(Duration::from_millis(10)),
        Duration::from_secs(2),
    )
    .until(deadline);
    for attempt in 1u32.. {
        match connector.open() {
            Ok(_) => {
                if attempt > 1 {
                    tracing::info!(attempt, waited_ms = start.elapsed().as_millis() as u64, url = %url, "database is ready");
                }
                return Ok(());
            }
            Err(e) if !e.kind.is_transient() => {
                tracing::error!(attempt, kind = %e.kind, error = %e.message, url = %url, "database refused the connection");
                return Err(e.into());
            }
            Err(e) => {
                let Some(delay) = delays.next() else {
                    return Err(Error::Unavailable {
                        kind: e.kind,
                        message: format!(
                            "gave up after {attempt} attempts over {} ms (DATABASE_STARTUP_WAIT_MS); last error: {}",
                            start.elapsed().as_millis(),
                            e.message
                        ),
                        origin: e.origin,
                    });
                };
                tracing::info!(attempt, kind = %e.kind, error = %e.message, retry_in_ms = delay.as_millis() as u64, url = %url, "waiting for the database");
                std::thread::sleep(delay);
            }
        }
    }
    unreachable!("the start-up loop returns")
}

impl Pool {
    /// Warns when this pool alone could exhaust the server's connection slots.
    pub fn check_server_capacity(&self) {
        if self.backend() != BackendKind::Postgres {
            return;
        }
        let result = self.acquire(Location::caller()).and_then(|conn| {
            conn.run(|conn| {
                Ok(diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                    "current_setting('max_connections')",
                ))
                .get_result::<String>(conn)?)
            })
        });
        if let Ok(Some(max)) = result.map(|s| s.parse::<u32>().ok()) {
            let ours = self.settings.max_size;
            if ours + 3 > max {
                tracing::warn!(
                    pool_max_size = ours,
                    server_max_connections = max,
                    "DATABASE_POOL_MAX_SIZE does not fit the server's max_connections (minus reserved slots); \
                     lower it or raise max_connections"
                );
            } else {
                tracing::debug!(
                    pool_max_size = ours,
                    server_max_connections = max,
                    "pool fits the server"
                );
            }
        }
    }
}
