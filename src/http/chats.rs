//! History over HTTP: older pages past what the socket replayed, newer pages after a jump,
//! a window around a chat or a day, and search.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Json, Paired, Path, Query, page_limit};
use crate::chat;
use crate::error::{Error, ErrorBody, Result};
use crate::heavy::Kind;
use crate::state::AppState;
use crate::view::{ChatView, VersionView};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chats", get(history))
        .route("/api/chats/search", get(search))
        .route("/api/chats/{id}/versions", get(versions))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only chats with a smaller seq (omit for the newest).
    before: Option<i64>,
    /// Instead: the chats right after this seq (the page towards the present).
    after: Option<i64>,
    /// Instead: the chat at this seq with half a page older and half newer.
    around: Option<i64>,
    /// Instead: like `around`, at the first chat sent on this day (`YYYY-MM-DD`, in the
    /// couple's time zone) or later.
    #[param(value_type = Option<String>, format = Date)]
    date: Option<NaiveDate>,
    /// How many, 1 to 200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatsBody {
    /// Newest first; deleted chats are left out.
    pub chats: Vec<ChatView>,
    /// With `around` or `date`: the seq the window is around (`null`: no chat that day or
    /// later; `chats` is then the newest page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Option<i64>>,
}

fn limit(asked: Option<i64>) -> Result<u64> {
    page_limit(asked, DEFAULT_LIMIT, MAX_LIMIT)
}

/// A page of chats: older ones, newer ones after a jump, or a window around a chat or a day.
#[utoipa::path(get, path = "/api/chats", tag = "chat", params(Page),
    responses(
        (status = 200, description = "Chats", body = ChatsBody),
        (status = 400, description = "`invalid_input`: a number that is not an integer, a date that is not `YYYY-MM-DD`", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` below 1, or more than one of `before`, `after`, `around`, `date`", body = ErrorBody),
    ))]
pub(super) async fn history(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse> {
    let limit = limit(page.limit)?;
    let given = [
        page.before.is_some(),
        page.after.is_some(),
        page.around.is_some(),
        page.date.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(Error::InvalidInput(
            "give at most one of before, after, around and date".into(),
        ));
    }
    let couple_id = me.couple_id;
    let body = if let Some(seq) = page.after {
        ChatsBody {
            chats: chat::find::after(&state, couple_id, seq, limit).await?,
            anchor: None,
        }
    } else if let Some(seq) = page.around {
        ChatsBody {
            chats: chat::find::around(&state, couple_id, seq, limit).await?,
            anchor: Some(Some(seq)),
        }
    } else if let Some(day) = page.date {
        match chat::find::first_on(&state, couple_id, day).await? {
            Some(seq) => ChatsBody {
                chats: chat::find::around(&state, couple_id, seq, limit).await?,
                anchor: Some(Some(seq)),
            },
            None => ChatsBody {
                chats: chat::history(&state, couple_id, None, limit).await?,
                anchor: Some(None),
            },
        }
    } else {
        ChatsBody {
            chats: chat::history(&state, couple_id, page.before, limit).await?,
            anchor: None,
        }
    };
    Ok(Json(body))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// What to find: 1 to 100 characters, matched inside words and case-insensitively
    /// ("여행" finds "여행을").
    q: String,
    /// Only chats with a smaller seq (the next page: the last one's seq).
    before: Option<i64>,
    /// How many, 1 to 200 (default 50).
    limit: Option<i64>,
}

/// Chats that contain the words searched for, newest first.
#[utoipa::path(get, path = "/api/chats/search", tag = "chat", params(Search),
    responses(
        (status = 200, description = "Chats that match, newest first", body = ChatsBody),
        (status = 400, description = "`invalid_input`: `q` missing, a number that is not an integer", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `q` empty or over 100 characters, `limit` below 1", body = ErrorBody),
        (status = 429, description = "`rate_limited`: my previous search or look at our words is still running; `Retry-After: 1`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the search ran past `DUET_READ_TIMEOUT_MS`, or the database is away", body = ErrorBody),
    ))]
pub(super) async fn search(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(search): Query<Search>,
) -> Result<impl IntoResponse> {
    let limit = limit(search.limit)?;
    let _turn = state.heavy.begin(me.user_id, Kind::Read)?;
    let chats = chat::find::search(&state, me.couple_id, &search.q, search.before, limit).await?;
    Ok(Json(ChatsBody {
        chats,
        anchor: None,
    }))
}

/// A chat's texts, as sent and after each edit.
#[derive(Serialize, ToSchema)]
pub struct VersionsBody {
    /// Oldest first: the text it was sent with, then each edit's; the last is its text now.
    pub versions: Vec<VersionView>,
}

/// The earlier versions of an edited chat of ours (either partner's).
#[utoipa::path(get, path = "/api/chats/{id}/versions", tag = "chat",
    params(("id" = Uuid, Path, description = "The chat")),
    responses(
        (status = 200, description = "Its texts, oldest first", body = VersionsBody),
        (status = 400, description = "`invalid_input`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat of ours, or deleted", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn versions(
    State(state): State<AppState>,
    Paired(me): Paired,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    let versions = chat::versions(&state, me.couple_id, id).await?;
    Ok(Json(VersionsBody { versions }))
}
