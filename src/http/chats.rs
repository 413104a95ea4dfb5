//! Older history over HTTP, for scrolling up past what the socket replayed.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{Json, Paired, Query};
use crate::chat;
use crate::error::{Error, Result};
use crate::state::AppState;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chats", get(history))
}

#[derive(Deserialize)]
struct Page {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse> {
    let limit = match page.limit {
        None => DEFAULT_LIMIT,
        Some(n) if n >= 1 => u64::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
        Some(_) => return Err(Error::InvalidInput("limit must be at least 1".into())),
    };
    let chats = chat::history(&state, me.couple_id, page.before, limit).await?;
    Ok(Json(json!({ "chats": chats })))
}
