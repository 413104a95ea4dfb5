//! One push to one device: encrypted, signed, POSTed to its push service, and what its answer
//! means (RFC 8030 section 5; 404 and 410 end the subscription, 429 and 5xx are tried again).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, Uri, header};
use web_push_native::WebPushBuilder;

use super::Shared;
use super::message::DeviceKeys;
use crate::store;
use crate::store::push::Subscription;

/// The longest a push service's `Retry-After` is waited for.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

pub enum Outcome {
    Sent,
    /// The push service says the subscription is gone: removed.
    Pruned,
    Failed,
}

/// Delivers `body` to the device, retrying what may work later; returns how it ended.
pub async fn deliver(
    shared: &Shared,
    device: &Subscription,
    body: &[u8],
    topic: &str,
    urgency: &'static str,
) -> Outcome {
    let Some(keys) = DeviceKeys::parse(&device.p256dh, &device.auth) else {
        // Checked when subscribed: a row that no longer parses cannot be pushed to.
        let _ = store::push::prune(&shared.db, device.id).await;
        return Outcome::Pruned;
    };
    let Ok(endpoint) = device.endpoint.parse::<Uri>() else {
        let _ = store::push::prune(&shared.db, device.id).await;
        return Outcome::Pruned;
    };
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=shared.config.push_retries {
        let wait = match post(shared, &endpoint, &keys, body, topic, urgency).await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return Outcome::Sent;
                }
                if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                    if let Err(e) = store::push::prune(&shared.db, device.id).await {
                        tracing::warn!(user_id = %device.user_id, error = %e, "removing a gone push subscription");
                    }
                    return Outcome::Pruned;
                }
                if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                    // 400, 401, 403, 413: retrying the same request cannot help.
                    tracing::warn!(user_id = %device.user_id, status = status.as_u16(), "push refused");
                    return Outcome::Failed;
                }
                retry_after(response.headers().get(header::RETRY_AFTER)).unwrap_or(backoff)
            }
            Err(e) => {
                // Without the URL: an endpoint is a capability to push to the device.
                let e = match e.downcast::<reqwest::Error>() {
                    Ok(e) => e.without_url().to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::debug!(user_id = %device.user_id, error = %e, "push service did not answer");
                backoff
            }
        };
        if attempt == shared.config.push_retries {
            break;
        }
        tokio::time::sleep(wait).await;
        backoff = backoff.saturating_mul(2);
    }
    tracing::warn!(user_id = %device.user_id, "push given up after retries");
    Outcome::Failed
}

async fn post(
    shared: &Shared,
    endpoint: &Uri,
    keys: &DeviceKeys,
    body: &[u8],
    topic: &str,
    urgency: &'static str,
) -> anyhow::Result<reqwest::Response> {
    // A fresh encryption per attempt: each has its own salt and key, as RFC 8291 asks.
    let request = WebPushBuilder::new(endpoint.clone(), keys.public, keys.auth)
        .with_valid_duration(Duration::from_secs(shared.config.push_ttl_secs))
        .build(body.to_vec())
        .map_err(|e| anyhow::anyhow!("encrypting: {e}"))?;
    let (parts, payload) = request.into_parts();
    let vapid = shared.vapid.header(&origin(endpoint))?;
    let response = shared
        .client
        .post(endpoint.to_string())
        .headers(parts.headers)
        .header(header::AUTHORIZATION, vapid)
        .header("Urgency", HeaderValue::from_static(urgency))
        .header("Topic", topic)
        .body(payload)
        .timeout(shared.config.push_timeout())
        .send()
        .await?;
    Ok(response)
}

/// `scheme://host[:port]`: the audience of the VAPID token (RFC 8292 section 2), the port
/// kept when the endpoint names one.
fn origin(endpoint: &Uri) -> String {
    let scheme = endpoint.scheme_str().unwrap_or("https");
    match endpoint.authority() {
        Some(authority) => {
            // An authority may carry user info; the origin does not.
            let host_port = authority
                .as_str()
                .rsplit('@')
                .next()
                .unwrap_or(authority.as_str());
            format!("{scheme}://{host_port}")
        }
        None => format!("{scheme}://"),
    }
}

/// `Retry-After` in seconds (push services use seconds, not dates), at most a minute.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(LONGEST_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_audience_is_the_endpoints_origin_with_its_port() {
        let uri: Uri = "https://fcm.googleapis.com/fcm/send/abc".parse().unwrap();
        assert_eq!(origin(&uri), "https://fcm.googleapis.com");
        let uri: Uri = "http://127.0.0.1:41234/push/1?x=y".parse().unwrap();
        assert_eq!(origin(&uri), "http://127.0.0.1:41234");
    }

    #[test]
    fn retry_after_is_seconds_and_bounded() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("5"))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("86400"))),
            Some(LONGEST_RETRY_AFTER)
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
    }
}
