//! Uploads and downloads. An upload is one multipart part named `file`, streamed to the blob
//! store; a download is for the two members of the file's couple only.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{CurrentUser, Json, Paired, Path, Query};
use crate::error::{Error, ErrorBody, Result};
use crate::file;
use crate::pairing;
use crate::state::AppState;
use crate::view::FileView;

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
        .route("/api/files/{id}/thumbnail", get(thumbnail))
}

#[derive(Serialize, ToSchema)]
pub struct FileBody {
    pub file: FileView,
}

/// The upload form: one part named `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Upload {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

/// What an upload is.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadKind {
    /// A voice note: the bytes must be a recording (WebM, Ogg, MP4, MP3, WAV or FLAC audio)
    /// no longer than `DUET_MAX_VOICE_SECS`; its `duration_ms` is measured.
    voice: Option<bool>,
}

/// Uploads a file for a chat to carry (send its `id` as a chat's `file_id`). Unsent uploads
/// are swept after a while.
#[utoipa::path(post, path = "/api/files", tag = "files", params(UploadKind),
    request_body(content = Upload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = FileBody),
        (status = 400, description = "`invalid_input`: not multipart, or a malformed one", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple, or our break-up is due", body = ErrorBody),
        (status = 413, description = "`too_large`: over the size limit or the couple's quota, or a photo over `DUET_MAX_IMAGE_PIXELS`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: no part named `file`, an empty file, or a voice note that is not a recording or is too long", body = ErrorBody),
    ))]
pub(super) async fn upload(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(kind): Query<UploadKind>,
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
            let voice = kind.voice.unwrap_or(false);
            let view = file::upload(&state, &me, field, voice).await?;
            return Ok((StatusCode::CREATED, Json(FileBody { file: view })));
        }
    }
}

/// Anyone who is not a member of the file's couple, paired or not, gets the same 404.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files",
    params(("id" = Uuid, Path, description = "The file")),
    responses(
        (status = 200, description = "The bytes, with the type they were stored with (images inline, others as attachments)",
            content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The `Range` asked for", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified since (`If-None-Match`, `If-Modified-Since`)"),
        (status = 416, description = "A `Range` outside the file"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a file of my couple (a malformed id names none)", body = ErrorBody),
    ))]
pub(super) async fn download(
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

/// A photo's thumbnail (our album's grid): a JPEG at most 400 px on its longest side, turned
/// upright, without any of the original's metadata.
#[utoipa::path(get, path = "/api/files/{id}/thumbnail", tag = "files",
    params(("id" = Uuid, Path, description = "The photo")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg", body = Vec<u8>),
        (status = 304, description = "Not modified since (`If-None-Match`, `If-Modified-Since`)"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "Not a photo of my couple, or one without a thumbnail", body = ErrorBody),
    ))]
pub(super) async fn thumbnail(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response> {
    let me = pairing::member(&state, me.user.id, me.session_id)
        .await?
        .ok_or(Error::NotFound)?;
    file::thumbnail(&state, me.couple_id, id, &headers).await
}
