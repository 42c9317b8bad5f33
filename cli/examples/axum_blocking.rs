//! The smallest program that links the taskstore library into a blocking handler of a web
//! framework (axum on tokio), for users who bring their own server instead of
//! `taskstore serve`.
//!
//! The one rule: a repository call blocks (it waits for a pooled connection under
//! `DATABASE_ACQUIRE_TIMEOUT_MS`, then for the database), so it runs on
//! `tokio::task::spawn_blocking`, never on an async worker; cap the blocking threads near the
//! pool size. A library error's `http_status()` is the status to answer.
//!
//! ```text
//! DATABASE_URL=sqlite://demo.db cargo run -p taskstore-cli --example axum_blocking
//! curl localhost:3000/tasks/count/<user-uuid>
//! ```
//! (Lives in the `taskstore-cli` package, whose dependencies already include axum and tokio,
//! so that the library itself never depends on them.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use taskstore::{Config, Database, UserId};

async fn open_tasks(
    State(db): State<Database>,
    Path(user): Path<String>,
) -> Result<String, (StatusCode, String)> {
    let answer = tokio::task::spawn_blocking(move || {
        let owner: UserId = user.parse()?;
        db.tasks().stats(owner)
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match answer {
        Ok(stats) => Ok(format!("{} open of {}\n", stats.open, stats.total)),
        Err(e) => Err((
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        )),
    }
}

fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let db = Database::connect(&config)?; // waits for the database, applies migrations
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.pool().max_size as usize)
        .build()?;
    runtime.block_on(async {
        let app = axum::Router::new()
            .route("/tasks/count/{user}", get(open_tasks))
            .with_state(db);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
