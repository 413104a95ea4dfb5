//! On this day: the same calendar day in earlier years.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Json, Paired};
use crate::error::{ErrorBody, Result};
use crate::memory;
use crate::state::AppState;
use crate::view::ChatView;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/memories", get(memories))
}

#[derive(Serialize, ToSchema)]
pub struct MemoriesBody {
    /// Today, in the couple's time zone.
    #[schema(value_type = String, format = Date)]
    pub today: NaiveDate,
    /// Each earlier year with chats on this day, the most recent first (empty: nothing to
    /// remember today).
    pub days: Vec<MemoryView>,
}

/// This day in an earlier year.
#[derive(Serialize, ToSchema)]
pub struct MemoryView {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub years_ago: i32,
    /// That day's first chats (at most 20), oldest first, as the history shows them: photos
    /// are the ones with an image `file`; the first one's `seq` opens the conversation there.
    pub chats: Vec<ChatView>,
}

/// On this day: our chats and photos of this calendar day in earlier years.
#[utoipa::path(get, path = "/api/memories", tag = "chat",
    responses(
        (status = 200, description = "This day in earlier years", body = MemoriesBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn memories(
    State(state): State<AppState>,
    Paired(me): Paired,
) -> Result<impl IntoResponse> {
    let (today, found) = memory::on_this_day(&state, me.couple_id).await?;
    let days = found
        .into_iter()
        .map(|m| MemoryView {
            date: m.date,
            years_ago: m.years_ago,
            chats: m.chats,
        })
        .collect();
    Ok(Json(MemoriesBody { today, days }))
}
