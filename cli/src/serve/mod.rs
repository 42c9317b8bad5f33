//! `taskstore serve`: the layer behind a JSON HTTP API (axum on tokio).
//!
//! Repository calls run on tokio's blocking threads, bounded and admitted as [`state`]
//! explains; the async workers only parse, route and write. Authentication is HTTP Basic
//! against the stored Argon2id hash ([`auth`]); errors are [`error::ApiError`]s whose status is
//! the library's [`taskstore::Error::http_status`]. [`observe`] adds the request id, the access
//! log and the HTTP metrics.
//!
//! Shutdown (SIGTERM or Ctrl-C): stop accepting, let in-flight requests finish for up to
//! `--shutdown-grace-ms` (default 10 000), then drop the pool (closing its connections)
//! and exit 0.

mod auth;
mod error;
mod observe;
mod openapi;
mod routes;
mod state;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use taskstore::Database;

pub use auth::hash_password;
use error::ApiError;
use state::{AppState, BlockingGate, Limits};

use crate::commands::Ctx;

/// How long `/readyz` waits for the database before answering 503.
pub const READY_DEADLINE: Duration = Duration::from_secs(2);

/// Latency buckets of `http_request_duration_seconds`, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Builds the router over `state` (also what the OpenAPI test and the examples describe).
fn router(state: AppState, metrics: PrometheusHandle) -> Router {
    let limits = state.limits;
    let v1 = Router::new()
        .route("/users", post(routes::sign_up))
        .route(
            "/me",
            get(routes::get_me)
                .patch(routes::patch_me)
                .delete(routes::delete_me),
        )
        .route("/tasks", post(routes::create_task).get(routes::list_tasks))
        .route(
            "/tasks/import",
            post(routes::import_tasks).layer(DefaultBodyLimit::max(limits.import_bytes)),
        )
        .route("/tasks/export", get(routes::export_tasks))
        .route(
            "/tasks/{id}",
            get(routes::get_task)
                .patch(routes::patch_task)
                .delete(routes::delete_task),
        )
        .route("/tasks/{id}/done", post(routes::complete_task))
        .route("/tasks/{id}/reopen", post(routes::reopen_task))
        .route("/stats", get(routes::stats));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi::document(),
                )
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    m.run_upkeep();
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(axum::middleware::from_fn(observe::middleware))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; the API is under /v1 (see /openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /openapi.json)",
    )
}

/// Liveness: the process answers. No database.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process answers", body = openapi::Live)))]
async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: the database answers and its schema is what this binary expects, within
/// [`READY_DEADLINE`]. 200 `{"status": "ok", ...}`; 503 otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "the database answers and the schema is current"), (status = 503, description = "not ready", body = error::ErrorBody)))]
async fn readyz(State(st): State<AppState>) -> Response {
    let db = st.db.clone();
    let check = st.gate.run(move || {
        let health = db.health()?;
        let status = db.run(taskstore::migrate::status)?;
        Ok((health, status.is_current()))
    });
    match tokio::time::timeout(READY_DEADLINE, check).await {
        Ok(Ok((health, true))) => axum::Json(json!({
            "status": "ok",
            "schema_version": health.schema_version,
            "latency_ms": health.latency.as_secs_f64() * 1000.0,
            "pool": health.pool,
        }))
        .into_response(),
        Ok(Ok((health, false))) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "schema_not_current",
            format!(
                "the database answers but its schema ({}) is not what this binary expects; run \
                 `taskstore migrate run`",
                health.schema_version.as_deref().unwrap_or("empty")
            ),
        )
        .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "the database did not answer within {} ms",
                READY_DEADLINE.as_millis()
            ),
        )
        .into_response(),
    }
}

/// Installs the Prometheus recorder (before the pool registers its metrics).
fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .install_recorder()
        .context("installing the Prometheus metrics recorder")
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Checks `--addr` on the command line (a usage error, exit 2): `HOST:PORT` with a port of
/// 0 to 65535; the host is resolved when binding.
pub fn listen_addr(s: &str) -> Result<String, String> {
    let help = "expected HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 \
                (port 0 picks a free one)";
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
        Some((_, port)) if port.parse::<u16>().is_err() => Err(format!(
            "{help}; the port {port:?} is not a number from 0 to 65535"
        )),
        _ => Err(help.to_owned()),
    }
}

/// Binds `addr` before the database is touched, naming the cause and the way out when the
/// address cannot be used (exit 1).
fn bind(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process is listening on that port: stop it or pass another --addr \
                 (port 0 picks a free one)"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "that address is not one of this machine's: use 127.0.0.1 (this machine only) \
                 or 0.0.0.0 (every interface)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: use a port from 1024 up behind a proxy"
            }
            _ => "check the HOST:PORT given to --addr",
        };
        anyhow::anyhow!("cannot listen on {addr}: {e}; {hint}")
    })?;
    listener
        .set_nonblocking(true)
        .context("setting the listening socket non-blocking")?;
    Ok(listener)
}

/// Runs the server until SIGTERM / Ctrl-C.
pub fn run(ctx: &Ctx, addr: &str, grace: Duration) -> anyhow::Result<ExitCode> {
    let listener = bind(addr)?;
    let metrics = install_metrics()?;
    let config = ctx.server_config()?;
    let db = Database::connect(&config)?;
    let pool = config.pool();
    let gate = BlockingGate::for_pool(pool.max_size, pool.max_waiters, pool.acquire_timeout);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(gate.size())
        .thread_name("taskstore-serve")
        .build()
        .context("starting the async runtime")?;
    let state = AppState {
        db: db.clone(),
        auth: Arc::new(auth::Authenticator::new()),
        gate: gate.clone(),
        limits: Limits::default(),
    };
    let app = router(state, metrics);
    let outcome = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(
            addr = %local,
            blocking_threads = gate.size(),
            pool_max_size = pool.max_size,
            "serving HTTP"
        );
        // Say where we listen on stdout too, for scripts that pass port 0.
        println!("listening on http://{local}");
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .into_future();
        let mut server = tokio::spawn(server);
        tokio::select! {
            res = &mut server => return res.context("server task")?.context("serving"),
            () = shutdown_signal() => {}
        }
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down: no new connections"
        );
        let _ = stop_tx.send(true);
        match tokio::time::timeout(grace, &mut server).await {
            Ok(res) => res.context("server task")?.context("serving")?,
            Err(_) => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "in-flight requests did not finish within the grace period; closing them"
                );
                server.abort();
            }
        }
        anyhow::Ok(())
    });
    // Blocking calls still running are bounded by the pool's deadlines; do not wait past them.
    runtime.shutdown_timeout(pool.acquire_timeout);
    drop(db);
    tracing::info!("pool dropped; stopped");
    outcome?;
    Ok(ExitCode::SUCCESS)
}
