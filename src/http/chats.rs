//! Older history over HTTP, for scrolling up past what the socket replayed.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Json, Paired, Query};
use crate::chat;
use crate::error::{Error, ErrorBody, Result};
use crate::state::AppState;
use crate::view::ChatView;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chats", get(history))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only chats with a smaller seq (omit for the newest).
    before: Option<i64>,
    /// How many, 1 to 200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatsBody {
    /// Newest first; deleted chats are left out.
    pub chats: Vec<ChatView>,
}

/// A page of older chats.
#[utoipa::path(get, path = "/api/chats", tag = "chat", params(Page),
    responses(
        (status = 200, description = "Chats", body = ChatsBody),
        (status = 400, description = "`invalid_input`: `before` or `limit` not an integer", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` below 1", body = ErrorBody),
    ))]
pub(super) async fn history(
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
    Ok(Json(ChatsBody { chats }))
}
