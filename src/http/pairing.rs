//! Pairing requests and the break-up over HTTP; the rules are `crate::pairing` and
//! `crate::breakup`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{CoupleView, UserView, couple_view};
use super::{CurrentUser, Json, Paired, Path};
use crate::error::{Error, ErrorBody, Result};
use crate::state::AppState;
use crate::store::couples::RequestView;
use crate::view::rfc3339;
use crate::{breakup, pairing};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/requests", get(list).post(create))
        .route("/api/requests/{id}/accept", post(accept))
        .route("/api/requests/{id}", delete(remove))
        .route("/api/couple", delete(break_up))
        .route("/api/couple/restore", post(restore))
}

#[derive(Deserialize, ToSchema)]
pub struct NewRequest {
    /// Whom to ask (case-insensitive).
    pub username: String,
}

/// A pairing request.
#[derive(Serialize, ToSchema)]
pub struct RequestJson {
    pub id: Uuid,
    pub from: UserView,
    pub to: UserView,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

fn request_json(view: &RequestView) -> RequestJson {
    RequestJson {
        id: view.request.id,
        from: UserView::from(&view.from),
        to: UserView::from(&view.to),
        created_at: view.request.created_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct RequestBody {
    pub request: RequestJson,
}

#[derive(Serialize, ToSchema)]
pub struct RequestsBody {
    pub received: Vec<RequestJson>,
    pub sent: Vec<RequestJson>,
}

#[derive(Serialize, ToSchema)]
pub struct CoupleBody {
    pub couple: CoupleView,
}

#[derive(Serialize, ToSchema)]
pub struct BreakupBody {
    /// When the couple and everything it holds will be deleted, unless restored before.
    #[serde(serialize_with = "rfc3339")]
    pub delete_at: DateTime<Utc>,
}

/// Asks a user to pair.
#[utoipa::path(post, path = "/api/requests", tag = "pairing", request_body = NewRequest,
    responses(
        (status = 201, description = "Requested", body = RequestBody),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`already_paired` or `duplicate_request`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the wrong shape, or myself", body = ErrorBody),
    ))]
pub(super) async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Json(body): Json<NewRequest>,
) -> Result<impl IntoResponse> {
    let view = pairing::request(&state, me.user, &body.username).await?;
    Ok((
        StatusCode::CREATED,
        Json(RequestBody {
            request: request_json(&view),
        }),
    ))
}

/// The open requests I received and sent.
#[utoipa::path(get, path = "/api/requests", tag = "pairing",
    responses((status = 200, description = "Requests", body = RequestsBody), (status = 401, description = "No session", body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<impl IntoResponse> {
    let (received, sent) = pairing::requests(&state, me.user.id).await?;
    Ok(Json(RequestsBody {
        received: received.iter().map(request_json).collect(),
        sent: sent.iter().map(request_json).collect(),
    }))
}

/// Accepts a request sent to me: we are a couple.
#[utoipa::path(post, path = "/api/requests/{id}/accept", tag = "pairing",
    params(("id" = Uuid, Path, description = "The request")),
    responses(
        (status = 201, description = "Paired", body = CoupleBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "No such request sent to me (a malformed id names none)", body = ErrorBody),
        (status = 409, description = "`already_paired`", body = ErrorBody),
    ))]
pub(super) async fn accept(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    let mine = pairing::accept(&state, id, me.user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CoupleBody {
            couple: couple_view(&mine),
        }),
    ))
}

/// Declines a request sent to me, or withdraws one I sent.
#[utoipa::path(delete, path = "/api/requests/{id}", tag = "pairing",
    params(("id" = Uuid, Path, description = "The request")),
    responses(
        (status = 204, description = "Gone"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 404, description = "No such request of mine (a malformed id names none)", body = ErrorBody),
    ))]
pub(super) async fn remove(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    pairing::remove(&state, id, me.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Schedules the break-up; the couple stays, fully usable, until the grace period ends.
#[utoipa::path(delete, path = "/api/couple", tag = "pairing",
    responses(
        (status = 202, description = "Scheduled (again: the first date stays)", body = BreakupBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn break_up(
    State(state): State<AppState>,
    Paired(me): Paired,
) -> Result<impl IntoResponse> {
    let delete_at = breakup::schedule(&state, &me).await?;
    Ok((StatusCode::ACCEPTED, Json(BreakupBody { delete_at })))
}

/// Takes a scheduled break-up back, within the grace period.
#[utoipa::path(post, path = "/api/couple/restore", tag = "pairing",
    responses(
        (status = 200, description = "The couple, nothing scheduled", body = CoupleBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden`: my partner deleted their account", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn restore(
    State(state): State<AppState>,
    Paired(me): Paired,
) -> Result<impl IntoResponse> {
    breakup::restore(&state, &me).await?;
    let mine = pairing::my_couple(&state, me.user_id)
        .await?
        .ok_or(Error::NotPaired)?;
    Ok(Json(CoupleBody {
        couple: couple_view(&mine),
    }))
}
