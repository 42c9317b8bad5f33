//! Per-request observability: a request id (the client's `X-Request-Id` when it sends a sane
//! one, else a fresh UUID v7) in a `request` span and echoed in the response; one structured
//! access-log event per request (`method`, `route`, `status`, `latency_ms`, `request_id`);
//! and the metrics `http_requests_total` (counter) and `http_request_duration_seconds`
//! (histogram), both labelled `method`, `route` (the matched route template, e.g.
//! `/v1/tasks/{id}`, so that ids do not explode the label set) and `status`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// A client-sent id is kept when it is 1 to 128 visible ASCII characters.
fn sane(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

pub async fn middleware(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(sane)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut res = next.run(req).instrument(span.clone()).await;
    let status = res.status().as_u16();
    let latency = started.elapsed();
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(latency.as_secs_f64());
    // The fields again on the event: the CLI's JSON log lines leave span context out.
    span.in_scope(|| {
        tracing::info!(
            target: "taskstore::access",
            request_id = %id,
            method = %method,
            route = %route,
            status,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    });
    res
}
