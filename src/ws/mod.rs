//! The WebSocket endpoint. Everything that can refuse a socket is checked before the upgrade,
//! so a refused client gets an ordinary HTTP error in the contract's shape: 401 without a
//! session, 403 for a foreign Origin (middleware), 409 when not in a couple, 429 past the
//! per-user socket limit or the per-user rate of openings (with `Retry-After`), 503 when the
//! node is full or draining.

mod session;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::Response;
use axum::routing::get;
use futures_util::FutureExt;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{CurrentUser, Query};
use crate::pairing;
use crate::state::AppState;

pub use session::Session;

#[derive(Deserialize)]
pub struct Resume {
    /// The last `seq` the client saw; the replay then holds every event after it.
    after: Option<i64>,
}

/// The socket endpoint, merged into the HTTP router at start.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

pub async fn upgrade(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(resume): Query<Resume>,
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    if state.is_draining() {
        return Err(Error::Unavailable("this node is shutting down".into()));
    }
    let ws = ws.map_err(|e| Error::BadRequest(e.body_text()))?;
    if resume.after.is_some_and(|after| after < 0) {
        return Err(Error::BadRequest("after must not be negative".into()));
    }
    let member = pairing::member(&state, user.user.id, user.session_id)
        .await?
        .ok_or(Error::NotPaired)?;
    let seat = state
        .seats
        .take(user.user.id, state.config.max_sockets_per_user)
        .ok_or(Error::RateLimited)?;
    let permit = state
        .sockets
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Unavailable("this node has no room for more sockets".into()))?;
    // Last of the checks: only a socket that will open counts against the user's rate.
    state.seats.open(user.user.id).map_err(|retry_after| {
        tracing::debug!(user_id = %user.user.id, "socket openings limited");
        Error::TryLater {
            message: "too many new sockets, wait before reconnecting",
            retry_after,
        }
    })?;
    // Boxed: axum's task keeps room for the callback (and so the session) for the socket's
    // whole life, beside the session's own future.
    let session = Box::new(Session::new(
        state.clone(),
        member,
        user.expires_at,
        resume.after,
    ));
    let limit = state.config.max_frame_bytes;
    Ok(ws
        // tungstenite's default read buffer is 128 KiB per socket, allocated eagerly; a chat
        // frame is a few hundred bytes. A bigger frame grows the buffer, and the socket keeps it.
        .read_buffer_size(state.config.socket_read_buffer)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            // Not boxed apart: the session's future goes into axum's task once, beside a
            // closure that only holds what the socket gives back when it ends. (An `async`
            // block awaiting it would keep a second copy.)
            let run = (*session).run(socket).map(move |()| drop((permit, seat)));
            state.tasks.track_future(run)
        }))
}
