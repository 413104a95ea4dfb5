//! Our words over HTTP; the rules are `crate::words`.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Json, Paired, Path, Query, page_limit};
use crate::error::{ErrorBody, Result};
use crate::heavy::Kind;
use crate::state::AppState;
use crate::words;

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/words", get(ours))
        .route("/api/words/excluded/{word}", put(exclude).delete(include))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Top {
    /// How many, 1 to 100 (default 20).
    limit: Option<i64>,
}

/// One of our words.
#[derive(Serialize, ToSchema)]
pub struct WordJson {
    /// As counted: lowercase, a Korean noun without its particle.
    pub word: String,
    pub count: i64,
    /// How often I used it.
    pub mine: i64,
    /// How often my partner did.
    pub partner: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WordsBody {
    /// Most used first; left-out words never appear.
    pub words: Vec<WordJson>,
    /// The words we leave out, in word order.
    pub excluded: Vec<String>,
    /// `false` while a long history is still being counted (ask again for the rest).
    pub complete: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ExcludedBody {
    /// The words we leave out, in word order.
    pub excluded: Vec<String>,
}

/// Our most used words, each with both counts.
#[utoipa::path(get, path = "/api/words", tag = "words", params(Top),
    responses(
        (status = 200, description = "Our words", body = WordsBody),
        (status = 400, description = "`invalid_input`: `limit` not an integer", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` below 1", body = ErrorBody),
        (status = 429, description = "`rate_limited`: my previous look at our words or search is still running; `Retry-After: 1`", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: a read ran past `DUET_READ_TIMEOUT_MS`, or the database is away", body = ErrorBody),
    ))]
pub(super) async fn ours(
    State(state): State<AppState>,
    Paired(me): Paired,
    Query(top): Query<Top>,
) -> Result<impl IntoResponse> {
    let limit = page_limit(top.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let _turn = state.heavy.begin(me.user_id, Kind::Read)?;
    let ours = words::ours(&state, &me, limit).await?;
    Ok(Json(WordsBody {
        words: ours
            .words
            .into_iter()
            .map(|w| WordJson {
                word: w.word,
                count: w.count,
                mine: w.mine,
                partner: w.partner,
            })
            .collect(),
        excluded: ours.excluded,
        complete: ours.complete,
    }))
}

/// Leaves a word out of our words, for both of us (both hear `excluded_words`).
#[utoipa::path(put, path = "/api/words/excluded/{word}", tag = "words",
    params(("word" = String, Path, description = "The word (URL-encoded), as written or as counted")),
    responses(
        (status = 200, description = "The words we leave out", body = ExcludedBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: not one counted word, or `DUET_MAX_EXCLUDED_WORDS` (500) words left out already", body = ErrorBody),
    ))]
pub(super) async fn exclude(
    State(state): State<AppState>,
    Paired(me): Paired,
    Path(word): Path<String>,
) -> Result<impl IntoResponse> {
    let excluded = words::exclude(&state, &me, &word).await?;
    Ok(Json(ExcludedBody { excluded }))
}

/// Takes a word back into our words.
#[utoipa::path(delete, path = "/api/words/excluded/{word}", tag = "words",
    params(("word" = String, Path, description = "The word (URL-encoded)")),
    responses(
        (status = 200, description = "The words we leave out", body = ExcludedBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 404, description = "`not_found`: we do not leave this word out", body = ErrorBody),
        (status = 409, description = "`not_paired`: I am not in a couple", body = ErrorBody),
        (status = 422, description = "`invalid_input`: not one counted word", body = ErrorBody),
    ))]
pub(super) async fn include(
    State(state): State<AppState>,
    Paired(me): Paired,
    Path(word): Path<String>,
) -> Result<impl IntoResponse> {
    let excluded = words::include(&state, &me, &word).await?;
    Ok(Json(ExcludedBody { excluded }))
}
