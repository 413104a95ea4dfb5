//! Liveness and readiness for load balancers and orchestrators.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::Json;
use crate::error::{Error, ErrorBody, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// What the metrics listener serves (`DUET_METRICS_BIND`): `/metrics` and nothing else.
pub fn metrics_router(state: AppState) -> axum::Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: &'static str,
}

/// The process is up: nothing else is checked, so a slow database never gets a node killed.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Status)))]
pub(super) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(Status { status: "ok" }))
}

/// Prometheus metrics (text exposition format), on the metrics listener only.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Worth sending traffic to: not draining, the database answers a ping within
/// `DUET_DB_TIMEOUT_MS`, and the bus is connected (its subscriber is listening). Answers within
/// that bound whatever is down; the error message says which part failed.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Draining, or the database or bus does not answer", body = ErrorBody),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse> {
    if state.is_draining() {
        return Err(Error::Unavailable("this node is shutting down".into()));
    }
    let ping = tokio::time::timeout(state.config.db_timeout(), state.db.ping()).await;
    if !matches!(ping, Ok(Ok(()))) {
        return Err(Error::Unavailable("the database does not answer".into()));
    }
    if !state.bus.is_ready() {
        return Err(Error::Unavailable("the bus does not answer".into()));
    }
    Ok(Json(Status { status: "ready" }))
}
