//! Pairing requests and the break-up over HTTP; the rules are `crate::pairing` and
//! `crate::breakup`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::auth::{UserView, couple_view};
use super::{CurrentUser, Json, Paired, Path};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::couples::RequestView;
use crate::{breakup, pairing};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/requests", get(list).post(create))
        .route("/api/requests/{id}/accept", post(accept))
        .route("/api/requests/{id}", delete(remove))
        .route("/api/couple", delete(break_up))
        .route("/api/couple/restore", post(restore))
}

#[derive(Deserialize)]
struct NewRequest {
    username: String,
}

fn request_json(view: &RequestView) -> serde_json::Value {
    json!({
        "id": view.request.id,
        "from": UserView::from(&view.from),
        "to": UserView::from(&view.to),
        "created_at": view.request.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Json(body): Json<NewRequest>,
) -> Result<impl IntoResponse> {
    let view = pairing::request(&state, me.user, &body.username).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "request": request_json(&view) })),
    ))
}

async fn list(State(state): State<AppState>, me: CurrentUser) -> Result<impl IntoResponse> {
    let (received, sent) = pairing::requests(&state, me.user.id).await?;
    Ok(Json(json!({
        "received": received.iter().map(request_json).collect::<Vec<_>>(),
        "sent": sent.iter().map(request_json).collect::<Vec<_>>(),
    })))
}

async fn accept(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    let mine = pairing::accept(&state, id, me.user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "couple": couple_view(&mine) })),
    ))
}

async fn remove(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    pairing::remove(&state, id, me.user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Schedules the break-up; the couple stays, fully usable, until the grace period ends.
async fn break_up(State(state): State<AppState>, Paired(me): Paired) -> Result<impl IntoResponse> {
    let delete_at = breakup::schedule(&state, &me).await?;
    let delete_at = delete_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delete_at": delete_at })),
    ))
}

async fn restore(State(state): State<AppState>, Paired(me): Paired) -> Result<impl IntoResponse> {
    breakup::restore(&state, &me).await?;
    let mine = pairing::my_couple(&state, me.user_id)
        .await?
        .ok_or(Error::NotPaired)?;
    Ok(Json(json!({ "couple": couple_view(&mine) })))
}
