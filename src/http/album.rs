//! Our album: the couple's photos, newest first, in pages.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Json, Paired, Query, page_limit};
use crate::album;
use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::view::PhotoView;

pub const DEFAULT_LIMIT: u64 = 60;
pub const MAX_LIMIT: u64 = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/album", get(photos))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only photos sent in chats with a smaller seq (the next page: the last photo's seq).
    before: Option<i64>,
    /// How many, 1 to 200 (default 60).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AlbumBody {
    /// Newest first; photos of deleted chats are gone.
    pub photos: Vec<PhotoView>,
}

/// Every photo we sent, newest first, with its thumbnail.
#[utoipa::path(get, path = "/api/album", tag = "files", params(Page),
    responses(
        (status = 200, description = "A page of photos", body = AlbumBody),
        (status = 400, description = "`invalid_input`: a number that is not an integer", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` below 1", body = ErrorBody),
        (status = 503, description = "`unavailable`: the read ran past `DUET_READ_TIMEOUT_MS`, or the database is away", body = ErrorBody),
    ))]
pub(super) async fn photos(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse> {
    let limit = page_limit(page.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let photos = album::page(&state, me.couple_id, page.before, limit).await?;
    Ok(Json(AlbumBody { photos }))
}
