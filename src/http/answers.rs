//! The answers page: every question the couple was asked, with both answers side by side.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::{Json, Paired};
use crate::error::Result;
use crate::question;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/answers", get(answers))
}

async fn answers(State(state): State<AppState>, Paired(me): Paired) -> Result<impl IntoResponse> {
    let answers = question::answers_page(&state, &me).await?;
    Ok(Json(json!({ "answers": answers })))
}
