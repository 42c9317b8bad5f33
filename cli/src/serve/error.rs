//! One error type for every HTTP answer that is not a success: a status, and the JSON body
//! `{"kind", "message", "field", "details"?}`.
//!
//! Library errors take their status from [`taskstore::Error::http_status`] (the README's table)
//! and their kind from [`taskstore::Error::kind_name`]; a 503 carries `Retry-After`. A 500's
//! message is replaced by a fixed text naming the request id: the detail goes to the log only,
//! so that no server message, SQL fragment or secret reaches a client; a 503 or 504 from the
//! library likewise says only what to do (its detail names the database's host, socket path
//! and name, which are the operator's business). Every message is
//! scrubbed ([`taskstore::redact::scrub`]) in any case.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::exit::InputError;

/// Seconds a client is told to wait before trying again after a 503.
pub const RETRY_AFTER_S: u32 = 1;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A short stable name: the library's [`taskstore::Error::kind_name`], or `unauthorized`,
    /// `bad_request`, `payload_too_large`, `unsupported_media_type`, `not_acceptable`,
    /// `overloaded`, `internal`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// What was wrong and what to do.
    pub message: String,
    /// The field (or parameter, or header) at fault, when there is one.
    pub field: Option<String>,
    /// Every problem of an import, as `line N: field: reason`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                kind,
                message: taskstore::redact::scrub(&message.into()),
                field: None,
                details: Vec::new(),
            },
        }
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    /// 401 with a `WWW-Authenticate` challenge; the same answer for every failure.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication required: send HTTP Basic credentials (email and password) of an \
             active user",
        )
    }

    /// 400 for a request the server cannot read.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message).with_field(field)
    }

    /// 503 when the blocking pool's admission queue is full: the same promise as the pool's
    /// own `DATABASE_POOL_MAX_WAITERS`.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at its limit of concurrent database calls; try again shortly",
        )
    }

    /// 500 whose detail is logged, never sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %taskstore::redact::scrub(&detail.to_string()), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details under this request's X-Request-Id",
        )
    }
}

impl From<taskstore::Error> for ApiError {
    fn from(err: taskstore::Error) -> Self {
        let status =
            StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let mut e = Self::internal(&err);
            e.body.kind = err.kind_name();
            return e;
        }
        if status.is_server_error() {
            // 503 / 504: the library's message is for the operator (it names the database,
            // its host or socket path and what the server said); the client learns only what
            // to do, and the detail goes to the log under the request id.
            tracing::warn!(
                error = %taskstore::redact::scrub(&err.to_string()),
                status = status.as_u16(),
                "database error answered without its detail"
            );
            let message = if status == StatusCode::GATEWAY_TIMEOUT {
                "the database did not answer in time; try again, or ask for less (a smaller \
                 limit or a narrower filter); the server log has the cause under this \
                 request's X-Request-Id"
            } else {
                "the database is unavailable right now; try again after Retry-After seconds; \
                 the server log has the cause under this request's X-Request-Id"
            };
            return Self::new(status, err.kind_name(), message);
        }
        let mut e = Self::new(status, err.kind_name(), err.to_string());
        if let taskstore::Error::Validation { field, .. } = &err {
            e.body.field = Some(field.clone());
        }
        e
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        let (status, kind) = if err.conflict {
            (StatusCode::CONFLICT, "conflict")
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, "validation")
        };
        let mut e = Self::new(status, kind, err.message);
        e.body.details = err
            .details
            .iter()
            .map(|d| taskstore::redact::scrub(d))
            .collect();
        e.body.field = Some("body".into());
        e
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<taskstore::Error>() {
            Ok(e) => e.into(),
            Err(err) => match err.downcast::<InputError>() {
                Ok(e) => e.into(),
                Err(err) => Self::internal(&format_args!("{err:#}")),
            },
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rej: JsonRejection) -> Self {
        let status = rej.status();
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "validation",
            _ => "bad_request",
        };
        let status = if status.is_server_error() {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self::new(status, kind, rej.body_text()).with_field("body")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rej: QueryRejection) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            rej.body_text(),
        )
        .with_field("query")
    }
}

impl From<PathRejection> for ApiError {
    fn from(rej: PathRejection) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            rej.body_text(),
        )
        .with_field("id")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body)).into_response();
        let headers = res.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"taskstore\", charset=\"UTF-8\""),
            );
        }
        res
    }
}
