//! Liveness and readiness for load balancers and orchestrators.

use std::sync::Arc;
use std::time::Duration;

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
use crate::store::Formation;

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

/// Worth sending traffic to: not draining, the database answered its last background ping
/// (every 500 ms, within `DUET_DB_TIMEOUT_MS`), and the bus is connected (its subscriber is
/// listening). Answers at once whatever is down: an orchestrator's probe gives up after a
/// second, sooner than a ping to a database that is gone. The error message says which part
/// failed.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Draining, or the database or bus does not answer", body = ErrorBody),
    ))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse> {
    if state.is_draining() {
        return Err(Error::Unavailable("this node is shutting down".into()));
    }
    if !state.database_answers() {
        return Err(Error::Unavailable("the database does not answer".into()));
    }
    if !state.bus.is_ready() {
        return Err(Error::Unavailable("the bus does not answer".into()));
    }
    Ok(Json(Status { status: "ready" }))
}

/// How often the database is pinged for `/readyz`.
const DATABASE_CHECK: Duration = Duration::from_millis(500);

/// Pings the database every `DATABASE_CHECK` (each ping bounded by `DUET_DB_TIMEOUT_MS`) and
/// keeps the answer where `/readyz` reads it.
pub fn spawn_database_check(state: AppState, formation: Option<Arc<Formation>>) {
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(DATABASE_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.shutdown.cancelled() => return,
            }
            let ping = tokio::select! {
                ping = tokio::time::timeout(state.config.db_timeout(), state.db.ping()) => ping,
                () = state.shutdown.cancelled() => return,
            };
            // A standby answers pings too: with a formation, only a primary found counts.
            let answers =
                matches!(ping, Ok(Ok(()))) && formation.as_ref().is_none_or(|f| f.has_primary());
            if answers != state.database_answers() {
                if answers {
                    tracing::info!("the database answers again");
                } else {
                    tracing::warn!("the database does not answer; /readyz says 503");
                }
            }
            state.set_database_answers(answers);
        }
    });
}
