//! The couple's history as one zip; the archive's layout is `crate::export`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::CurrentUser;
use crate::error::{Error, ErrorBody, Result};
use crate::heavy::Kind;
use crate::state::AppState;
use crate::{export, pairing};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/export", get(download))
}

/// Everything we have: chats, answers, anniversaries and the files, as a zip streamed as it
/// is written. Also while a break-up is pending.
#[utoipa::path(get, path = "/api/export", tag = "export",
    responses(
        (status = 200, description = "A zip: manifest.json, chats.ndjson, answers.json, anniversaries.json, files/<id>/<name>", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "`not_found`: I am not in a couple", body = ErrorBody),
        (status = 429, description = "`rate_limited`: my previous export is still being sent; `Retry-After: 10`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub(super) async fn download(State(state): State<AppState>, me: CurrentUser) -> Result<Response> {
    // Not ours means not found: an unpaired user has no history to take.
    let member = pairing::member(&state, me.user.id, me.session_id)
        .await?
        .ok_or(Error::NotFound)?;
    let turn = state.heavy.begin(me.user.id, Kind::Export)?;
    let (name, body) = export::archive(&state, &member, turn).await?;
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| Error::Internal(e.into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
