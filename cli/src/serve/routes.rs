//! The `/v1` routes. Every body is the JSON the CLI prints with `--json` for the same
//! operation: the library's `User`, `Task`, `Page` and `TaskStats` serialised by their own serde
//! derives, `{"deleted": id}` after a delete, `{"imported", "seconds", "rows_per_second"}` after
//! an import. The owner of a task is always the authenticated user, never the path or the body.

use std::io::Write;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use taskstore::Error;
use taskstore::models::{
    NewTask, NewUser, PageRequest, Task, TaskFilter, TaskId, TaskPatch, TaskSort, User, UserId,
    UserPatch,
};

use super::auth::{self, Authenticator};
use super::error::{ApiError, ErrorBody};
use super::openapi;
use super::state::AppState;
use crate::cli::Format;
use crate::commands::io;

/// The authenticated user (HTTP Basic): see [`super::auth`].
pub struct Me(pub User);

impl FromRequestParts<AppState> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (email, password) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Authenticator::parse_basic)
            .ok_or_else(ApiError::unauthorized)?;
        blocking(state.clone(), move |st| {
            let user = match st.db.users().get_by_email(&email) {
                Ok(u) => Some(u),
                // An address that is not one cannot belong to anyone: same as unknown.
                Err(Error::NotFound { .. } | Error::Validation { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            match user {
                Some(u) if st.auth.verify(Some(&u), &password) => Ok(Me(u)),
                other => {
                    if other.is_none() {
                        st.auth.verify(None, &password);
                    }
                    Err(ApiError::unauthorized())
                }
            }
        })
        .await
    }
}

/// The JSON body, or its rejection; over the size limit the message says what the limit is.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rej| {
        let mut e = ApiError::from(rej);
        if e.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            e.body.message = format!(
                "{}; a JSON body is at most {} bytes: shorten the text fields",
                e.body.message,
                crate::serve::state::Limits::default().body_bytes
            );
        }
        e
    })
}

fn task_id(path: Result<Path<String>, PathRejection>) -> Result<TaskId, ApiError> {
    let Path(raw) = path?;
    raw.parse::<TaskId>()
        .map_err(|_| Error::validation("id", "expected a task id (UUID) in the path").into())
}

/// Runs `f` with the state on a blocking thread through the gate: 503 when the gate is full,
/// `f`'s error otherwise (see [`super::state::BlockingGate::run`]). Every database call of a
/// route goes through here.
async fn blocking<T, E, F>(st: AppState, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&AppState) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    ApiError: From<E>,
{
    let gate = st.gate.clone();
    gate.run(move || Ok(f(&st)?)).await
}

/// The routes on one task (`/v1/tasks/{id}`, `/done`, `/reopen`): the id from the path, `op`
/// on the authenticated user's task, the task with its version as `ETag`.
async fn one_task<F>(
    st: AppState,
    me: User,
    path: Result<Path<String>, PathRejection>,
    op: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(&AppState, UserId, TaskId) -> Result<Task, Error> + Send + 'static,
{
    let id = task_id(path)?;
    let task = blocking(st, move |st| op(st, me.id, id)).await?;
    Ok(with_etag(task))
}

/// `POST /v1/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = SignUp, responses((status = 201, description = "the new user", body = openapi::User), (status = 409, description = "the email is taken", body = ErrorBody), (status = 400, description = "malformed body", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not application/json", body = ErrorBody), (status = 422, description = "a field is invalid", body = ErrorBody), (status = 503, description = "database unavailable", body = ErrorBody)))]
pub async fn sign_up(
    State(st): State<AppState>,
    body: Result<Json<SignUp>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let user = blocking(st, move |st| {
        let hash = auth::hash_password(&body.password)?;
        st.db.users().create(&NewUser {
            email: &body.email,
            password_hash: &hash,
            first_name: body.first_name.as_deref(),
            last_name: body.last_name.as_deref(),
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(get, path = "/v1/me", tag = "users", security(("basic" = [])), responses((status = 200, description = "the authenticated user", body = openapi::User), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn get_me(Me(me): Me) -> Json<User> {
    Json(me)
}

/// `PATCH /v1/me`: an absent key leaves the field alone; `null` or `""` clears a name.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MePatch {
    pub email: Option<String>,
    pub password: Option<String>,
    #[serde(deserialize_with = "present_or_null")]
    pub first_name: Option<Option<String>>,
    #[serde(deserialize_with = "present_or_null")]
    pub last_name: Option<Option<String>>,
}

fn present_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/v1/me", tag = "users", security(("basic" = [])), request_body = MePatch, responses((status = 200, description = "the updated user", body = openapi::User), (status = 409, description = "the email is taken", body = ErrorBody), (status = 400, description = "malformed body", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not application/json", body = ErrorBody), (status = 422, description = "a field is invalid", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn patch_me(
    State(st): State<AppState>,
    Me(me): Me,
    body: Result<Json<MePatch>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let body = json_body(body)?;
    let user = blocking(st, move |st| {
        let password_hash = body
            .password
            .as_deref()
            .map(auth::hash_password)
            .transpose()?;
        let patch = UserPatch {
            email: body.email,
            password_hash,
            first_name: body.first_name,
            last_name: body.last_name,
            is_active: None,
        };
        st.db.users().update(me.id, &patch)
    })
    .await?;
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/v1/me", tag = "users", security(("basic" = [])), responses((status = 200, description = "the user and all their tasks are deleted", body = openapi::Deleted), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn delete_me(
    State(st): State<AppState>,
    Me(me): Me,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = me.id;
    blocking(st, move |st| st.db.users().delete(id)).await?;
    Ok(Json(json!({ "deleted": id })))
}

/// `POST /v1/tasks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<i16>,
}

#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", security(("basic" = [])), request_body = CreateTask, responses((status = 201, description = "the new task", body = openapi::Task), (status = 400, description = "malformed body", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not application/json", body = ErrorBody), (status = 422, description = "a field is invalid", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn create_task(
    State(st): State<AppState>,
    Me(me): Me,
    body: Result<Json<CreateTask>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let task = blocking(st, move |st| {
        st.db.tasks().create(
            me.id,
            &NewTask {
                title: &body.title,
                description: body.description.as_deref(),
                priority: body.priority,
            },
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

/// `GET /v1/tasks` query parameters, the CLI's `task list` options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    pub completed: Option<bool>,
    pub priority_min: Option<i16>,
    pub priority_max: Option<i16>,
    pub search: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn timestamp(field: &'static str, s: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::validation(
                field,
                "expected an RFC 3339 timestamp such as 2026-11-27T10:00:00Z",
            )
        })
}

#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", security(("basic" = [])), params(ListQuery), responses((status = 200, description = "one page", body = openapi::TaskPage), (status = 422, description = "a parameter is invalid", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn list_tasks(
    State(st): State<AppState>,
    Me(me): Me,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=st.limits.page_max).contains(&limit) {
        return Err(Error::validation(
            "limit",
            format!("must be 1 to {} tasks per page", st.limits.page_max),
        )
        .into());
    }
    let filter = TaskFilter {
        completed: q.completed,
        priority_min: q.priority_min,
        priority_max: q.priority_max,
        search: q.search,
        created_after: q
            .created_after
            .as_deref()
            .map(|s| timestamp("created_after", s))
            .transpose()?,
        created_before: q
            .created_before
            .as_deref()
            .map(|s| timestamp("created_before", s))
            .transpose()?,
    };
    let sort: TaskSort = q.sort.as_deref().unwrap_or("-created").parse()?;
    let page = PageRequest {
        limit,
        cursor: q.cursor,
    };
    let page = blocking(st, move |st| {
        st.db.tasks().list(me.id, &filter, sort, &page)
    })
    .await?;
    Ok(Json(page).into_response())
}

fn with_etag(task: taskstore::Task) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", task.version)).ok();
    let mut res = Json(task).into_response();
    if let Some(etag) = etag {
        res.headers_mut().insert(header::ETAG, etag);
    }
    res
}

#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", security(("basic" = [])), params(("id" = String, Path, description = "the task id (UUID)")), responses((status = 200, description = "the task; ETag is its version", body = openapi::Task), (status = 404, description = "no such task of yours", body = ErrorBody), (status = 422, description = "the id is not a UUID", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn get_task(
    State(st): State<AppState>,
    Me(me): Me,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    one_task(st, me, path, |st, owner, id| st.db.tasks().get(owner, id)).await
}

/// The version in `If-Match`: `"3"` (the `ETag` of `GET`) or `3`; `*` (RFC 9110 §13.1.1: any
/// current representation) is unconditional, like no header. Refused with 400: a header that
/// is present but empty (a client whose ETag variable came out empty must not lose its
/// stale-version check without noticing), a list or a repeated header (one task has one
/// version), and a weak tag `W/"3"` (If-Match compares strongly, RFC 9110 §13.1.1: a weak tag
/// never matches, so the change could never apply).
fn if_match(headers: &HeaderMap) -> Result<Option<i32>, ApiError> {
    let mut values = headers.get_all(header::IF_MATCH).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = |why: &str| {
        ApiError::bad_request(
            "If-Match",
            format!(
                "{why}: If-Match must be one task version such as \"3\" (the ETag of GET \
                 /v1/tasks/{{id}}), or * for any version; leave the header out to change the task \
                 unconditionally"
            ),
        )
    };
    if values.next().is_some() {
        return Err(bad("If-Match was sent more than once"));
    }
    let s = v
        .to_str()
        .map_err(|_| bad("If-Match is not visible ASCII"))?
        .trim();
    if s == "*" {
        return Ok(None);
    }
    if s.starts_with("W/") {
        return Err(bad(
            "a weak entity tag never matches under If-Match's strong comparison (RFC 9110 §13.1.1)",
        ));
    }
    let unquoted = s
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s);
    unquoted
        .parse::<i32>()
        .map(Some)
        .map_err(|_| bad(&format!("{s:?} is not one task version")))
}

#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "tasks", security(("basic" = [])), params(("id" = String, Path, description = "the task id (UUID)"), ("If-Match" = Option<String>, Header, description = "change only if the task is at this version (its ETag, e.g. \"3\"); * or no header: unconditional; empty: 400")), request_body = openapi::TaskPatch, responses((status = 200, description = "the updated task", body = openapi::Task), (status = 404, description = "no such task of yours", body = ErrorBody), (status = 409, description = "If-Match names a stale version; nothing changed", body = ErrorBody), (status = 400, description = "malformed body", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "not application/json", body = ErrorBody), (status = 422, description = "a field is invalid", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn patch_task(
    State(st): State<AppState>,
    Me(me): Me,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<TaskPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = task_id(path)?;
    let expected = if_match(&headers)?;
    let patch = json_body(body)?;
    let task = blocking(st, move |st| {
        st.db.tasks().update(me.id, id, &patch, expected)
    })
    .await?;
    Ok(with_etag(task))
}

#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks", security(("basic" = [])), params(("id" = String, Path, description = "the task id (UUID)")), responses((status = 200, description = "deleted", body = openapi::Deleted), (status = 404, description = "no such task of yours", body = ErrorBody), (status = 422, description = "the id is not a UUID", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn delete_task(
    State(st): State<AppState>,
    Me(me): Me,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = task_id(path)?;
    blocking(st, move |st| st.db.tasks().delete(me.id, id)).await?;
    Ok(Json(json!({ "deleted": id })))
}

#[utoipa::path(post, path = "/v1/tasks/{id}/done", tag = "tasks", security(("basic" = [])), params(("id" = String, Path, description = "the task id (UUID)")), responses((status = 200, description = "the completed task", body = openapi::Task), (status = 404, description = "no such task of yours", body = ErrorBody), (status = 422, description = "the id is not a UUID", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn complete_task(
    State(st): State<AppState>,
    Me(me): Me,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    one_task(st, me, path, |st, owner, id| {
        st.db.tasks().complete(owner, id)
    })
    .await
}

#[utoipa::path(post, path = "/v1/tasks/{id}/reopen", tag = "tasks", security(("basic" = [])), params(("id" = String, Path, description = "the task id (UUID)")), responses((status = 200, description = "the reopened task", body = openapi::Task), (status = 404, description = "no such task of yours", body = ErrorBody), (status = 422, description = "the id is not a UUID", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn reopen_task(
    State(st): State<AppState>,
    Me(me): Me,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    one_task(st, me, path, |st, owner, id| {
        st.db.tasks().reopen(owner, id)
    })
    .await
}

#[utoipa::path(get, path = "/v1/stats", tag = "tasks", security(("basic" = [])), responses((status = 200, description = "the user's task counts", body = openapi::TaskStats), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn stats(
    State(st): State<AppState>,
    Me(me): Me,
) -> Result<Json<taskstore::TaskStats>, ApiError> {
    let stats = blocking(st, move |st| st.db.tasks().stats(me.id)).await?;
    Ok(Json(stats))
}

/// The media type without parameters, lower-case.
fn media_type(v: Option<&HeaderValue>) -> Option<String> {
    let s = v?.to_str().ok()?;
    Some(s.split(';').next()?.trim().to_ascii_lowercase())
}

fn format_of_media(media: &str) -> Option<Format> {
    match media {
        "text/csv" => Some(Format::Csv),
        "application/jsonl"
        | "application/x-ndjson"
        | "application/x-jsonlines"
        | "application/ndjson" => Some(Format::Jsonl),
        _ => None,
    }
}

#[utoipa::path(post, path = "/v1/tasks/import", tag = "tasks", security(("basic" = [])), request_body(content((String = "text/csv"), (String = "application/jsonl")), description = "CSV with a header line, or JSON Lines; all rows or none"), responses((status = 201, description = "every row imported", body = openapi::Imported), (status = 409, description = "an id already exists; nothing imported", body = ErrorBody), (status = 413, description = "body too large", body = ErrorBody), (status = 415, description = "neither text/csv nor application/jsonl", body = ErrorBody), (status = 422, description = "bad lines, each in details; nothing imported", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn import_tasks(
    State(st): State<AppState>,
    Me(me): Me,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let format = media_type(headers.get(header::CONTENT_TYPE))
        .as_deref()
        .and_then(format_of_media)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the import as Content-Type: text/csv (with a header line) or \
                 application/jsonl (one JSON object per line)",
            )
            .with_field("Content-Type")
        })?;
    let body = body.map_err(|rej| {
        let status = rej.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        let status = if status.is_server_error() {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::new(
            status,
            kind,
            format!(
                "{}; an import is at most {} bytes",
                rej.body_text(),
                st.limits.import_bytes
            ),
        )
        .with_field("body")
    })?;
    let max_rows = st.limits.import_rows;
    let out = blocking(st, move |st| {
        let started = Instant::now();
        let bytes = body.strip_prefix(io::read::BOM).unwrap_or(&body);
        let rows = io::check(bytes, format, "the request body")?;
        if rows.len() > max_rows {
            return Err(Error::validation(
                "body",
                format!(
                    "{} rows; an import is at most {max_rows} rows: split it",
                    rows.len()
                ),
            )
            .into());
        }
        let written = io::write_rows(&st.db, me.id, &rows, |_| {})?;
        let secs = started.elapsed().as_secs_f64();
        let rate = written as f64 / secs.max(1e-9);
        Ok::<_, ApiError>(json!({ "imported": written, "seconds": secs, "rows_per_second": rate }))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A writer that hands its bytes to the response body, chunk by chunk (blocking when the
/// client reads slowly: the channel holds a few chunks).
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[utoipa::path(get, path = "/v1/tasks/export", tag = "tasks", security(("basic" = [])), responses((status = 200, description = "every task, oldest first", content((String = "text/csv"), (String = "application/jsonl"))), (status = 406, description = "Accept names neither format", body = ErrorBody), (status = 401, description = "no or wrong credentials, or an inactive user", body = ErrorBody), (status = 503, description = "database unavailable or the server at its limit; see Retry-After", body = ErrorBody), (status = 504, description = "a statement ran out of time", body = ErrorBody)))]
pub async fn export_tasks(
    State(st): State<AppState>,
    Me(me): Me,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    // The first acceptable type in the header's order (q-values are not weighed).
    let format = accept
        .split(',')
        .filter_map(|t| {
            let t = t.split(';').next()?.trim().to_ascii_lowercase();
            match t.as_str() {
                "*/*" | "text/*" => Some(Format::Csv),
                other => format_of_media(other),
            }
        })
        .next()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not_acceptable",
                "export is text/csv or application/jsonl: ask for one in Accept",
            )
            .with_field("Accept")
        })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let err_tx = tx.clone();
    let gate = st.gate.clone();
    // Errors before the first byte become the status; later ones end the body early (the
    // client sees a truncated transfer, never a 200 with a partial file presented as whole).
    let first = {
        let st = st.clone();
        gate.run(move || {
            // Fail fast with a proper status when the database is unavailable.
            st.db.tasks().stats(me.id)?;
            Ok(())
        })
        .await
    };
    first?;
    let st2 = st.clone();
    tokio::spawn(async move {
        let res = st2
            .gate
            .clone()
            .run(move || {
                io::write_all(&st2.db, me.id, format, Box::new(ChannelWriter(tx)))
                    .map_err(ApiError::from)
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(kind = e.body.kind, message = %e.body.message, "export ended early");
            let _ = err_tx
                .send(Err(std::io::Error::other("export ended early")))
                .await;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/jsonl",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}
