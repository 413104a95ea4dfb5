//! The answers page: every question the couple was asked, with both answers side by side.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Json, Paired};
use crate::error::{ErrorBody, Result};
use crate::question::{self, AnswerRow};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/answers", get(answers))
}

#[derive(Serialize, ToSchema)]
pub struct AnswersBody {
    pub answers: Vec<AnswerRow>,
}

/// Every question the couple was asked, newest first, with both answers.
#[utoipa::path(get, path = "/api/answers", tag = "questions",
    responses(
        (status = 200, description = "The answers page", body = AnswersBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
    ))]
pub(super) async fn answers(
    State(state): State<AppState>,
    Paired(me): Paired,
) -> Result<impl IntoResponse> {
    let answers = question::answers_page(&state, &me).await?;
    Ok(Json(AnswersBody { answers }))
}
