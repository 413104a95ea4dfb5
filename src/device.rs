//! A user's devices that get pushes: subscribing one (what its browser's `PushManager` gave),
//! listing, removing, and whether its notifications show the text. Each is tied to the
//! session that subscribed it and ends with it.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::push::{self, DeviceKeys};
use crate::services::Services;
use crate::store;
use crate::store::push::{NewSubscription, Subscription};

/// Longest endpoint URL kept; browsers' are a few hundred characters.
pub const MAX_ENDPOINT_CHARS: usize = 1024;
/// Longest name a device gives itself.
pub const MAX_DEVICE_CHARS: usize = 100;

/// Keeps what a client's `PushManager` gave (`new`, for the session that sent it), checked and
/// with its name made fit for a list.
pub async fn subscribe(services: &Services, new: NewSubscription) -> Result<Subscription> {
    check_endpoint(&new.endpoint, services.config.push_allow_http)?;
    if DeviceKeys::parse(&new.p256dh, &new.auth).is_none() {
        return Err(Error::InvalidInput(
            "keys.p256dh must be a P-256 public key and keys.auth 16 bytes, both base64url".into(),
        ));
    }
    // A name for a list: no control characters (Postgres refuses NUL in text).
    let device: String = new
        .device
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_DEVICE_CHARS)
        .collect();
    let user_id = new.user_id;
    let mine = store::push::of_user(&services.db, user_id).await?;
    let again = mine.iter().any(|d| d.endpoint == new.endpoint);
    let max = services.config.max_push_devices;
    if !again && mine.len() as u64 >= max {
        return Err(Error::InvalidInput(format!(
            "at most {max} devices get notifications; remove one first"
        )));
    }
    let new = NewSubscription {
        p256dh: new.p256dh.trim().to_owned(),
        auth: new.auth.trim().to_owned(),
        device,
        ..new
    };
    let kept = store::push::subscribe(&services.db, new).await?;
    tracing::info!(user_id = %user_id, device_id = %kept.id, "device subscribed to pushes");
    Ok(kept)
}

pub async fn list(services: &Services, user_id: Uuid) -> Result<Vec<Subscription>> {
    Ok(store::push::of_user(&services.db, user_id).await?)
}

pub async fn remove(services: &Services, user_id: Uuid, id: Uuid) -> Result<()> {
    if !store::push::remove(&services.db, user_id, id).await? {
        return Err(Error::NotFound);
    }
    tracing::info!(user_id = %user_id, device_id = %id, "device unsubscribed from pushes");
    Ok(())
}

pub async fn set_preview(
    services: &Services,
    user_id: Uuid,
    id: Uuid,
    preview: bool,
) -> Result<Subscription> {
    store::push::set_preview(&services.db, user_id, id, preview)
        .await?
        .ok_or(Error::NotFound)
}

/// A push service's URL: `https://` with a host (`http://` too when the operator allows it,
/// for a push service on the same machine). The server will POST to it, so nothing else.
fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidInput(format!("endpoint {why}")));
    if endpoint.chars().count() > MAX_ENDPOINT_CHARS {
        return bad("is too long");
    }
    let Ok(uri) = endpoint.parse::<axum::http::Uri>() else {
        return bad("must be a URL");
    };
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_http => {}
        _ => return bad("must be an https:// URL"),
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return bad("must name a host");
    };
    // The server POSTs to it: not to itself or its network, unless the operator runs the push
    // service there (DUET_PUSH_ALLOW_HTTP, as the tests do). A name that resolves to such an
    // address is not caught here; the firewall of a node that reaches out is the real fence.
    if !allow_http && !public_host(host) {
        return bad("must be a push service on the internet");
    }
    Ok(())
}

fn public_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return false;
    }
    // A name is checked where it is resolved, at every connect (`push::resolve`).
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => push::is_public(ip),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn only_push_service_urls_are_endpoints() {
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/x", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:9/push", false).is_err());
        assert!(check_endpoint("http://127.0.0.1:9/push", true).is_ok());
        assert!(check_endpoint("file:///etc/passwd", true).is_err());
        assert!(check_endpoint("not a url", true).is_err());
        assert!(check_endpoint(&format!("https://a.b/{}", "x".repeat(1100)), false).is_err());
        // Not the node itself or its network.
        for inside in [
            "https://127.0.0.1/x",
            "https://localhost:8080/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
        ] {
            assert!(check_endpoint(inside, false).is_err(), "{inside}");
        }
        assert!(check_endpoint("https://8.8.8.8/x", false).is_ok());
    }
}
