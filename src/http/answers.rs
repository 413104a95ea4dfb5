//! The answers page: every question the couple was asked, with both answers side by side.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::{CurrentUser, Json};
use crate::chat::Member;
use crate::error::{Error, Result};
use crate::question;
use crate::state::AppState;
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/answers", get(answers))
}

async fn answers(State(state): State<AppState>, me: CurrentUser) -> Result<impl IntoResponse> {
    let membership = store::couples::membership(&state.db, me.user.id)
        .await?
        .ok_or(Error::NotPaired)?;
    let member = Member {
        user_id: me.user.id,
        couple_id: membership.couple.id,
        partner_id: membership.partner.id,
        session_id: me.session_id,
    };
    let answers = question::answers_page(&state, &member).await?;
    Ok(Json(json!({ "answers": answers })))
}
