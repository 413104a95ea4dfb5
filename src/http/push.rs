//! Web Push over HTTP: the VAPID key to subscribe with, and my devices that get pushes; the
//! rules are `crate::device`, the pushing `crate::push`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CurrentUser, Json, Path};
use crate::device;
use crate::error::{ErrorBody, Result};
use crate::state::AppState;
use crate::store::push::{NewSubscription, Subscription};
use crate::view::rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/push/key", get(key))
        .route("/api/push/devices", get(list).post(subscribe))
        .route("/api/push/devices/{id}", patch(set_preview).delete(remove))
}

#[derive(Serialize, ToSchema)]
pub struct PushKey {
    /// The VAPID public key (an uncompressed P-256 point, base64url): the
    /// `applicationServerKey` of `PushManager.subscribe`. One for the whole cluster.
    pub public_key: String,
}

/// The key a browser subscribes to pushes with.
#[utoipa::path(get, path = "/api/push/key", tag = "push",
    responses((status = 200, description = "The VAPID public key", body = PushKey)))]
pub(super) async fn key(State(state): State<AppState>) -> impl IntoResponse {
    Json(PushKey {
        public_key: state.push.public_key().to_owned(),
    })
}

/// One of my devices that get pushes.
#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    /// What the device called itself when it subscribed.
    pub device: String,
    /// Its notifications show the chat's text; off: only who wrote.
    pub preview: bool,
    /// Subscribed with the session making this request: this device.
    pub current: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl DeviceView {
    fn new(row: Subscription, session_id: Uuid) -> Self {
        DeviceView {
            id: row.id,
            device: row.device,
            preview: row.preview,
            current: row.session_id == session_id,
            created_at: row.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Devices {
    /// Oldest first.
    pub devices: Vec<DeviceView>,
}

/// My devices that get pushes.
#[utoipa::path(get, path = "/api/push/devices", tag = "push",
    responses(
        (status = 200, description = "My devices", body = Devices),
        (status = 401, description = "No session", body = ErrorBody),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<impl IntoResponse> {
    let devices = device::list(&state, me.user.id)
        .await?
        .into_iter()
        .map(|row| DeviceView::new(row, me.session_id))
        .collect();
    Ok(Json(Devices { devices }))
}

#[derive(Deserialize, ToSchema)]
pub struct SubscriptionKeys {
    /// The device's P-256 public key, base64url.
    pub p256dh: String,
    /// The device's 16-byte authentication secret, base64url.
    pub auth: String,
}

/// A `PushSubscription` as its `toJSON()` gives it, and how this device wants its pushes.
#[derive(Deserialize, ToSchema)]
pub struct NewSubscriptionBody {
    /// The push service's URL for this device (`https://`).
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    /// A name for the settings' list (at most 100 characters kept).
    #[serde(default)]
    pub device: String,
    /// Show the chat's text in notifications (default: only who wrote).
    #[serde(default)]
    pub preview: bool,
}

/// Subscribes this device to pushes, tied to this session (it ends with it). Subscribing an
/// endpoint again replaces what it was.
#[utoipa::path(post, path = "/api/push/devices", tag = "push", request_body = NewSubscriptionBody,
    responses(
        (status = 201, description = "The device", body = DeviceView),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the endpoint is not an `https://` URL, keys a browser would not give, `DUET_MAX_PUSH_DEVICES` (10) devices already", body = ErrorBody),
    ))]
pub(super) async fn subscribe(
    State(state): State<AppState>,
    me: CurrentUser,
    Json(body): Json<NewSubscriptionBody>,
) -> Result<impl IntoResponse> {
    let new = NewSubscription {
        user_id: me.user.id,
        session_id: me.session_id,
        endpoint: body.endpoint,
        p256dh: body.keys.p256dh,
        auth: body.keys.auth,
        device: body.device,
        preview: body.preview,
    };
    let row = device::subscribe(&state, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceView::new(row, me.session_id)),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PreviewChange {
    pub preview: bool,
}

/// Turns a device's previews on or off.
#[utoipa::path(patch, path = "/api/push/devices/{id}", tag = "push", request_body = PreviewChange,
    params(("id" = Uuid, Path, description = "The device's id")),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 404, description = "`not_found`: not one of my devices", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `preview` missing or not a boolean", body = ErrorBody),
    ))]
pub(super) async fn set_preview(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
    Json(change): Json<PreviewChange>,
) -> Result<impl IntoResponse> {
    let row = device::set_preview(&state, me.user.id, id, change.preview).await?;
    Ok(Json(DeviceView::new(row, me.session_id)))
}

/// Stops pushes to one of my devices.
#[utoipa::path(delete, path = "/api/push/devices/{id}", tag = "push",
    params(("id" = Uuid, Path, description = "The device's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`", body = ErrorBody),
        (status = 404, description = "`not_found`: not one of my devices", body = ErrorBody),
    ))]
pub(super) async fn remove(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse> {
    device::remove(&state, me.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
