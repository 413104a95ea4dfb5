//! Anniversaries and D-day over HTTP; the rules are `crate::anniversary`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Json, Paired, Path};
use crate::anniversary;
use crate::error::{Error, ErrorBody, Result};
use crate::state::AppState;
use crate::view::{AnniversariesView, DateView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/anniversaries", get(calendar).patch(set_start))
        .route("/api/anniversaries/dates", post(add))
        .route("/api/anniversaries/dates/{id}", delete(remove))
}

/// Our calendar: day one, days together, milestones and our own dates with D-counts.
#[utoipa::path(get, path = "/api/anniversaries", tag = "anniversaries",
    responses(
        (status = 200, description = "Our calendar", body = AnniversariesView),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn calendar(
    State(state): State<AppState>,
    Paired(me): Paired,
) -> Result<impl IntoResponse> {
    Ok(Json(anniversary::view(&state, me.couple_id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct StartChange {
    /// Our day one (`YYYY-MM-DD`, not in the future).
    #[schema(value_type = Option<String>, format = Date)]
    pub started_on: Option<NaiveDate>,
    /// An IANA time zone, e.g. `Asia/Seoul`.
    pub time_zone: Option<String>,
}

/// Changes day one and/or the time zone; both of us get the `anniversaries` frame.
#[utoipa::path(patch, path = "/api/anniversaries", tag = "anniversaries", request_body = StartChange,
    responses(
        (status = 200, description = "Our calendar after the change", body = AnniversariesView),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: nothing to change, a date in the future or not `YYYY-MM-DD`, an unknown time zone", body = ErrorBody),
    ))]
pub(super) async fn set_start(
    State(state): State<AppState>,
    Paired(me): Paired,
    Json(change): Json<StartChange>,
) -> Result<impl IntoResponse> {
    if change.started_on.is_none() && change.time_zone.is_none() {
        return Err(Error::InvalidInput(
            "give started_on, time_zone or both".into(),
        ));
    }
    let view =
        anniversary::set_start(&state, &me, change.started_on, change.time_zone.as_deref()).await?;
    Ok(Json(view))
}

#[derive(Deserialize, ToSchema)]
pub struct NewDate {
    /// 1 to 100 characters.
    pub title: String,
    /// `YYYY-MM-DD`, between 1900 and 2200.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Every year (`true`) or once (default).
    #[serde(default)]
    pub yearly: bool,
}

/// Adds one of our own dates; both of us get the `anniversaries` frame.
#[utoipa::path(post, path = "/api/anniversaries/dates", tag = "anniversaries", request_body = NewDate,
    responses(
        (status = 201, description = "The date", body = DateView),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: a title empty or too long, a bad date, `DUET_MAX_COUPLE_DATES` (100) dates already", body = ErrorBody),
    ))]
pub(super) async fn add(
    State(state): State<AppState>,
    Paired(me): Paired,
    Json(new): Json<NewDate>,
) -> Result<impl IntoResponse> {
    let date = anniversary::add(&state, &me, &new.title, new.date, new.yearly).await?;
    Ok((StatusCode::CREATED, Json(date)))
}

/// Removes one of our own dates; both of us get the `anniversaries` frame.
#[utoipa::path(delete, path = "/api/anniversaries/dates/{id}", tag = "anniversaries",
    params(("id" = Uuid, Path, description = "The date's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 404, description = "`not_found`: not one of our dates", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn remove(
    State(state): State<AppState>,
    Paired(me): Paired,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    anniversary::remove(&state, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
