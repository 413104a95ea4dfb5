//! Uploads and downloads. An upload is one multipart part named `file`, streamed to the blob
//! store; a download is for the two members of the file's couple only.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use uuid::Uuid;

use super::{CurrentUser, Json, Paired, Path};
use crate::error::{Error, Result};
use crate::file;
use crate::pairing;
use crate::state::AppState;

/// Room for the multipart framing around the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

pub fn router(max_upload_bytes: u64) -> Router<AppState> {
    let body_limit =
        usize::try_from(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD)).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/api/files",
            post(upload).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/files/{id}", get(download))
}

async fn upload(
    State(state): State<AppState>,
    Paired(me): Paired,
    multipart: std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<impl IntoResponse> {
    let mut multipart =
        multipart.map_err(|e| Error::BadRequest(format!("expected multipart/form-data: {e}")))?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| Error::BadRequest(format!("malformed multipart body: {e}")))?
            .ok_or_else(|| Error::InvalidInput("the upload needs a part named \"file\"".into()))?;
        if field.name() == Some("file") {
            let view = file::upload(&state, &me, field).await?;
            return Ok((StatusCode::CREATED, Json(json!({ "file": view }))));
        }
    }
}

/// Anyone who is not a member of the file's couple, paired or not, gets the same 404.
async fn download(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let me = pairing::member(&state, me.user.id, me.session_id)
        .await?
        .ok_or(Error::NotFound)?;
    file::download(&state, me.couple_id, id, &headers).await
}
