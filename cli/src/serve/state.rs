//! What every handler shares: the [`Database`], the authenticator, and the gate in front of the
//! blocking threads.
//!
//! # Sizing the blocking threads
//!
//! Every repository call runs on tokio's blocking pool (`spawn_blocking`), never on an async
//! worker. The blocking pool is capped at [`BlockingGate::size`] threads:
//! `DATABASE_POOL_MAX_SIZE` (each may hold a connection) plus the callers allowed to wait for
//! one — `DATABASE_POOL_MAX_WAITERS`, or `4 × DATABASE_POOL_MAX_SIZE` when that is 0
//! (unlimited). A semaphore with as many permits admits calls, so that no call queues inside
//! tokio, where no deadline would apply:
//!
//! - with `DATABASE_POOL_MAX_WAITERS` set, a request that finds every permit taken is answered
//!   503 (`overloaded`, with `Retry-After`) at once: the same promise as the pool's own limit
//!   on waiters, made before a thread is taken;
//! - with it unset (unlimited), the request waits for a permit up to
//!   `DATABASE_ACQUIRE_TIMEOUT_MS`, then gets the same 503.
//!
//! An admitted call then waits for a connection under the pool's own hard deadline
//! (`DATABASE_ACQUIRE_TIMEOUT_MS`). So a request waits at most one acquire deadline when
//! waiters are limited, and at most two (thread, then connection) when they are not.

use std::sync::Arc;
use std::time::Duration;

use taskstore::Database;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::auth::Authenticator;
use super::error::ApiError;

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub auth: Arc<Authenticator>,
    pub gate: BlockingGate,
    pub limits: Limits,
}

/// Request limits (documented in the README's "Serving HTTP").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest JSON body, in bytes.
    pub body_bytes: usize,
    /// Largest import body, in bytes.
    pub import_bytes: usize,
    /// Most rows in one import.
    pub import_rows: usize,
    /// Largest page (`limit`) of a list.
    pub page_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 64 * 1024,
            import_bytes: 16 * 1024 * 1024,
            import_rows: 100_000,
            page_max: 1000,
        }
    }
}

/// Admission to the blocking threads: see the module docs.
#[derive(Clone)]
pub struct BlockingGate {
    permits: Arc<Semaphore>,
    size: usize,
    /// How long to wait for a permit: zero when `DATABASE_POOL_MAX_WAITERS` limits waiters.
    wait: Duration,
}

impl BlockingGate {
    /// A gate sized for `pool_max` connections and `max_waiters` waiting callers (0 = the
    /// default of four per connection).
    pub fn for_pool(pool_max: u32, max_waiters: u32, acquire_timeout: Duration) -> Self {
        let (waiters, wait) = if max_waiters == 0 {
            (4 * pool_max, acquire_timeout)
        } else {
            (max_waiters, Duration::ZERO)
        };
        let size = (pool_max + waiters) as usize;
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            wait,
        }
    }

    /// The number of blocking threads (and permits).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on a blocking thread inside the current span, or answers 503 when no permit
    /// is free (at once, or after the wait: see the module docs).
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = if self.wait.is_zero() {
            self.permits.clone().try_acquire_owned().ok()
        } else {
            tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        let permit = permit.ok_or_else(ApiError::overloaded)?;
        let span = tracing::Span::current();
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(f)
        });
        match handle.in_current_span().await {
            Ok(r) => r,
            Err(e) => Err(ApiError::internal(&e)),
        }
    }
}
