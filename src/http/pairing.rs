//! Becoming a couple: a request sent to a username, accepted or declined by its receiver,
//! or withdrawn by its sender. Races (two accepts, two requests at once) are settled by the
//! database's unique constraints and translated here; accepts that share a person queue on
//! their two people's rows, taken in one order (`store::couples::accept_request`).

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
use crate::couple;
use crate::error::{Error, Result, ResultExt};
use crate::state::AppState;
use crate::store;
use crate::store::couples::RequestView;

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
    let to = store::users::by_username(&state.db, &body.username)
        .await?
        .ok_or(Error::NotFound)?;
    if to.id == me.user.id {
        return Err(Error::InvalidInput("you cannot pair with yourself".into()));
    }
    if store::couples::is_paired(&state.db, me.user.id).await?
        || store::couples::is_paired(&state.db, to.id).await?
    {
        return Err(Error::AlreadyPaired);
    }
    let request = store::couples::create_request(&state.db, me.user.id, to.id)
        .await
        .on_unique_violation(|| Error::DuplicateRequest)?;
    tracing::info!(user_id = %me.user.id, to_user_id = %to.id, "pairing requested");
    let view = RequestView {
        request,
        from: me.user,
        to,
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "request": request_json(&view) })),
    ))
}

async fn list(State(state): State<AppState>, me: CurrentUser) -> Result<impl IntoResponse> {
    let (received, sent) = store::couples::requests_of(&state.db, me.user.id).await?;
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
    let couple = store::couples::accept_request(&state.db, id, me.user.id)
        .await
        .on_unique_violation(|| Error::AlreadyPaired)?
        .ok_or(Error::NotFound)?;
    tracing::info!(user_id = %me.user.id, couple_id = %couple.id, "paired");
    let mine = store::couples::my_couple(&state.db, me.user.id)
        .await?
        .ok_or(Error::NotFound)?;
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
    if !store::couples::delete_request(&state.db, id, me.user.id).await? {
        return Err(Error::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Schedules the break-up; the couple stays, fully usable, until the grace period ends.
async fn break_up(State(state): State<AppState>, Paired(me): Paired) -> Result<impl IntoResponse> {
    let delete_at = couple::schedule(&state, &me).await?;
    let delete_at = delete_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delete_at": delete_at })),
    ))
}

async fn restore(State(state): State<AppState>, Paired(me): Paired) -> Result<impl IntoResponse> {
    couple::restore(&state, &me).await?;
    let mine = store::couples::my_couple(&state.db, me.user_id)
        .await?
        .ok_or(Error::NotPaired)?;
    Ok(Json(json!({ "couple": couple_view(&mine) })))
}
