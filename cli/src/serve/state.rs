//! What every handler shares: the [`Database`], the authenticator, and the gate in front of the
//! blocking threads.
//!
//! # Sizing the blocking threads
//!
//! Every repository call runs on tokio's blocking pool (`spawn_blocking`), never on an async
//! worker. The blocking pool is capped at [`BlockingGate::size`] threads:
//! `DATABASE_POOL_MAX_SIZE` (each may hold a connection) plus the callers allowed to wait for
//! one — `DATABASE_POOL_MAX_WAITERS`, or `4 × DATABASE_POOL_MAX_SIZE` when that is 0
//! (unlimited). A semaphore with as many permits admits calls: a request that finds every
//! permit taken is answered 503 (`overloaded`, with `Retry-After`) at once instead of queueing
//! inside tokio, where no deadline would apply. An admitted call waits for a connection under
//! the pool's own hard deadline (`DATABASE_ACQUIRE_TIMEOUT_MS`), so no request waits longer.

use std::sync::Arc;

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
}

impl BlockingGate {
    /// A gate sized for `pool_max` connections and `max_waiters` waiting callers (0 = the
    /// default of four per connection).
    pub fn for_pool(pool_max: u32, max_waiters: u32) -> Self {
        let waiters = if max_waiters == 0 {
            4 * pool_max
        } else {
            max_waiters
        };
        let size = (pool_max + waiters) as usize;
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// The number of blocking threads (and permits).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on a blocking thread inside the current span, or answers 503 when every
    /// permit is taken.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded())?;
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
