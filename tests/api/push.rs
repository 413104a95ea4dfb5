//! Web Push: a partner's chat reaches a user's devices when no client of theirs is looking, once
//! per device, collapsed in bursts, through a push service this test runs itself. The service
//! checks every request as a browser vendor's would: the VAPID JWT (ES256, `aud` the
//! endpoint's origin, `exp` within 24 hours, a `sub`), signed by the key the node serves, and
//! a body that decrypts (RFC 8291) with the device's own private key.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as AxumPath, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;
use web_push_native::jwt_simple::prelude::*;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_chat_to_a_partner_with_no_open_client_is_pushed_once_to_each_device,
    a_partner_looking_at_the_conversation_gets_no_push,
    a_silent_chat_pushes_nothing,
    a_burst_of_thirty_chats_collapses_into_pushes_that_say_how_many,
    questions_answers_and_dates_reach_the_partner_too,
    a_nudge_reaches_a_partner_who_is_away_as_a_push,
    a_subscription_the_push_service_says_is_gone_is_removed,
    a_push_service_that_hangs_or_fails_delays_no_ack_and_no_other_push,
    ending_a_session_removes_its_device,
    devices_are_listed_changed_and_removed_by_their_owner_only,
    subscriptions_a_browser_would_not_make_are_refused,
);

/// Flags every node of these tests runs with (the push service is on this machine, so http),
/// then the test's own: a shorter collapse window than the default unless it gives one.
fn push_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec!["--push-allow-http"];
    if !extra.iter().any(|f| f.starts_with("--push-collapse-ms")) {
        flags.push("--push-collapse-ms=1000");
    }
    flags.extend_from_slice(extra);
    flags
}

/// How the test's push service answers one device.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Accept,
    Gone,
    Fail,
    /// Holds the request until `release` is called.
    Hang,
}

/// A device: a browser's push subscription, with the private key only the device has.
struct Device {
    name: String,
    private_key: String,
    p256dh: String,
    auth: String,
}

impl Device {
    fn new(name: &str) -> Device {
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        let public = secret.public_key().as_affine().to_encoded_point(false);
        Device {
            name: name.to_owned(),
            private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            p256dh: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        }
    }
}

/// A push the service accepted (or was asked to refuse), decrypted.
#[derive(Clone, Debug)]
struct Received {
    device: String,
    payload: Value,
    topic: String,
    urgency: String,
}

#[derive(Default)]
struct Inner {
    devices: HashMap<String, (String, String)>,
    answers: HashMap<String, Answer>,
    received: Vec<Received>,
    /// Requests of each device, whatever the answer.
    attempts: HashMap<String, usize>,
    /// Whatever a push service would reject: the test fails on any.
    problems: Vec<String>,
    vapid_key: String,
}

#[derive(Clone)]
struct PushService {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    release: Arc<Notify>,
}

impl PushService {
    /// Starts the service; `vapid_key` is the node's (GET /api/push/key), which every
    /// request must be signed with.
    async fn start(vapid_key: &str) -> PushService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = PushService {
            addr: listener.local_addr().unwrap(),
            inner: Arc::new(Mutex::new(Inner {
                vapid_key: vapid_key.to_owned(),
                ..Inner::default()
            })),
            arrived: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
        };
        let app = axum::Router::new()
            .route("/push/{device}", axum::routing::post(take))
            .with_state(service.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        service
    }

    fn endpoint(&self, device: &Device) -> String {
        format!("http://{}/push/{}", self.addr, device.name)
    }

    fn add(&self, device: &Device, answer: Answer) {
        let mut inner = self.inner.lock().unwrap();
        inner.devices.insert(
            device.name.clone(),
            (device.private_key.clone(), device.auth.clone()),
        );
        inner.answers.insert(device.name.clone(), answer);
    }

    fn received(&self, device: &str) -> Vec<Received> {
        let inner = self.inner.lock().unwrap();
        assert!(inner.problems.is_empty(), "{:?}", inner.problems);
        inner
            .received
            .iter()
            .filter(|r| r.device == device)
            .cloned()
            .collect()
    }

    fn attempts(&self, device: &str) -> usize {
        *self
            .inner
            .lock()
            .unwrap()
            .attempts
            .get(device)
            .unwrap_or(&0)
    }

    /// Waits until `done` holds of what the service holds (10 s at most).
    async fn until(&self, what: &str, done: impl Fn(&PushService) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            let arrived = self.arrived.notified();
            if tokio::time::timeout_at(deadline, arrived).await.is_err() && !done(self) {
                panic!("the push service never saw {what}");
            }
        }
    }

    /// Waits for `n` pushes to the device, then returns them.
    async fn pushes(&self, device: &str, n: usize) -> Vec<Received> {
        self.until(&format!("{n} pushes to {device}"), |s| {
            s.received(device).len() >= n
        })
        .await;
        self.received(device)
    }
}

/// The push service's endpoint: checks the request as a real one would, then answers.
async fn take(
    State(service): State<PushService>,
    AxumPath(device): AxumPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let checked = check(&service, &device, &headers, body.to_vec());
    let answer = {
        let mut inner = service.inner.lock().unwrap();
        *inner.attempts.entry(device.clone()).or_default() += 1;
        let answer = inner.answers.get(&device).copied().unwrap_or(Answer::Gone);
        match checked {
            Ok(received) if answer == Answer::Accept => inner.received.push(received),
            Ok(_) => {}
            Err(problem) => inner.problems.push(problem),
        }
        answer
    };
    service.arrived.notify_waiters();
    match answer {
        Answer::Accept => AxumStatus::CREATED,
        Answer::Gone => AxumStatus::GONE,
        Answer::Fail => AxumStatus::INTERNAL_SERVER_ERROR,
        Answer::Hang => {
            service.release.notified().await;
            AxumStatus::CREATED
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no {name} header"))
}

fn check(
    service: &PushService,
    device: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Received, String> {
    let (private_key, auth, vapid_key) = {
        let inner = service.inner.lock().unwrap();
        let (private_key, auth) = inner
            .devices
            .get(device)
            .cloned()
            .ok_or_else(|| format!("a push to an unknown device {device}"))?;
        (private_key, auth, inner.vapid_key.clone())
    };
    // RFC 8292: `vapid t=<JWT>, k=<the server's public key>`.
    let authorization = header(headers, "authorization")?;
    let rest = authorization
        .strip_prefix("vapid ")
        .ok_or("Authorization is not vapid")?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => token = Some(t.to_owned()),
            Some(("k", k)) => key = Some(k.to_owned()),
            _ => {}
        }
    }
    let (token, key) = (token.ok_or("no t=")?, key.ok_or("no k=")?);
    if key != vapid_key {
        return Err(format!("signed with {key}, the node serves {vapid_key}"));
    }
    let public =
        ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(&key).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let origin = format!("http://{}", service.addr);
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([origin.clone()])),
        ..Default::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(&token, Some(options))
        .map_err(|e| format!("the VAPID JWT (ES256, aud {origin}): {e}"))?;
    let expires = claims.expires_at.ok_or("no exp")?;
    let now = Clock::now_since_epoch();
    if expires > now + web_push_native::jwt_simple::prelude::Duration::from_hours(24) {
        return Err("exp is more than 24 hours away".into());
    }
    let subject = claims.subject.unwrap_or_default();
    if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
        return Err(format!("sub {subject:?} is not mailto: or https:"));
    }
    if header(headers, "content-encoding")? != "aes128gcm" {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    header(headers, "ttl")?
        .parse::<u64>()
        .map_err(|_| "TTL is not seconds")?;
    let urgency = header(headers, "urgency")?.to_owned();
    if !["very-low", "low", "normal", "high"].contains(&urgency.as_str()) {
        return Err(format!("Urgency {urgency}"));
    }
    let topic = header(headers, "topic")?.to_owned();
    if topic.len() > 32
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "Topic {topic:?} is not at most 32 base64url characters"
        ));
    }
    let plain = duet::open_push(body, &private_key, &auth)
        .map_err(|e| format!("the body does not decrypt with the device's key: {e}"))?;
    let payload = serde_json::from_slice(&plain).map_err(|e| e.to_string())?;
    Ok(Received {
        device: device.to_owned(),
        payload,
        topic,
        urgency,
    })
}

/// Subscribes a device of `user` to pushes from `service`.
async fn subscribe(user: &User, service: &PushService, device: &Device, preview: bool) -> Value {
    let (status, body) = user
        .post(
            "/api/push/devices",
            json!({
                "endpoint": service.endpoint(device),
                "expirationTime": null,
                "keys": { "p256dh": device.p256dh, "auth": device.auth },
                "device": device.name,
                "preview": preview,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn vapid_key(user: &User) -> String {
    let (status, body) = user.get("/api/push/key").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["public_key"].as_str().unwrap().to_owned()
}

/// A node with pushes to this machine, a couple, and the push service.
async fn setup(backend: Backend, extra: &[&str]) -> (TestNode, User, User, PushService) {
    let node = spawn_node_with(backend, &push_flags(extra)).await;
    let (mina, joon) = couple(&node).await;
    let service = PushService::start(&vapid_key(&mina).await).await;
    (node, mina, joon, service)
}

/// A socket that says its tab is hidden: not looking at the conversation.
async fn hidden_socket(user: &User) -> Socket {
    let mut socket = user.socket().await;
    socket
        .send(json!({ "type": "looking", "looking": false }))
        .await;
    socket
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn metrics(node: &TestNode) -> String {
    reqwest::get(node.metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Lets whatever would still come arrive, so a count checked after it is final.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn a_chat_to_a_partner_with_no_open_client_is_pushed_once_to_each_device(backend: Backend) {
    let (node, mina, joon, service) = setup(backend, &[]).await;
    let (phone, laptop) = (Device::new("phone"), Device::new("laptop"));
    service.add(&phone, Answer::Accept);
    service.add(&laptop, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;
    subscribe(&joon, &service, &laptop, true).await;

    let mut m = mina.socket().await;
    let ack = m.acked("are you asleep?").await;
    let seq = ack["seq"].as_i64().unwrap();
    let on_phone = service.pushes("phone", 1).await;
    let on_laptop = service.pushes("laptop", 1).await;
    settle().await;
    assert_eq!(service.received("phone").len(), 1);
    assert_eq!(service.received("laptop").len(), 1);

    let (phone_push, laptop_push) = (&on_phone[0], &on_laptop[0]);
    let (_, me) = joon.get("/api/me").await;
    for push in [phone_push, laptop_push] {
        assert_eq!(push.payload["kind"], "chat");
        assert_eq!(push.payload["seq"], seq);
        assert_eq!(push.payload["count"], 1);
        assert_eq!(push.payload["unread"], 1);
        assert_eq!(push.payload["from"], mina.username.as_str());
        assert_eq!(push.payload["couple_id"], me["couple"]["id"], "{me}");
        assert_eq!(push.urgency, "high");
        assert_eq!(push.topic, "chat");
    }
    // The text only where the device chose previews.
    assert!(
        phone_push.payload.get("text").is_none(),
        "{}",
        phone_push.payload
    );
    assert_eq!(laptop_push.payload["text"], "are you asleep?");
    // Mina's own devices hear nothing of her own chat.
    let text = metrics(&node).await;
    assert_eq!(metric(&text, "duet_push_sent_total"), 2.0, "{text}");
    assert!(text.contains("duet_push_seconds_count 2"), "{text}");
}

async fn a_partner_looking_at_the_conversation_gets_no_push(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &["--push-collapse-ms=0"]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;

    let mut j = joon.socket().await;
    let mut m = mina.socket().await;
    m.acked("look at this").await;
    assert_eq!(j.until("chat").await["text"], "look at this");
    // Joon switches to another tab. His socket handles frames in order, so once Mina sees
    // the typing he sent after it, his node knows; the next chat is pushed, and only it.
    j.send(json!({ "type": "looking", "looking": false })).await;
    j.send(json!({ "type": "typing" })).await;
    m.until("typing").await;
    let second = m.acked("and this?").await;
    service.pushes("phone", 1).await;
    // Back to the tab: nothing more is pushed.
    j.send(json!({ "type": "looking", "looking": true })).await;
    j.send(json!({ "type": "typing" })).await;
    m.until("typing").await;
    m.acked("seen?").await;
    j.until_text("seen?").await;
    settle().await;
    let pushes = service.received("phone");
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].payload["seq"], second["seq"]);
}

async fn a_silent_chat_pushes_nothing(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &["--push-collapse-ms=0"]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;

    let mut m = mina.socket().await;
    m.send(json!({ "type": "send", "client_id": Uuid::new_v4(), "text": "shh", "silent": true }))
        .await;
    let silent = m.expect("ack").await;
    let loud = m.acked("now loud").await;
    let pushes = service.pushes("phone", 1).await;
    settle().await;
    let pushes_after = service.received("phone");
    assert_eq!(pushes_after.len(), 1, "{pushes_after:?}");
    assert_eq!(pushes[0].payload["seq"], loud["seq"]);
    assert_ne!(pushes[0].payload["seq"], silent["seq"]);
}

async fn a_burst_of_thirty_chats_collapses_into_pushes_that_say_how_many(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &[]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, true).await;

    let mut m = mina.socket().await;
    let mut first = None;
    for i in 0..30 {
        let ack = m.acked(&format!("line {i}")).await;
        first.get_or_insert(ack["seq"].as_i64().unwrap());
    }
    let count = |s: &PushService| {
        s.received("phone")
            .iter()
            .map(|p| p.payload["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    service
        .until("all 30 chats counted", |s| count(s) >= 30)
        .await;
    settle().await;
    let pushes = service.received("phone");
    assert_eq!(count(&service), 30, "{pushes:?}");
    // The first goes at once; the rest wait out the collapse window together (a slow machine
    // may spread the 30 sends over two windows).
    assert!(pushes.len() <= 3, "30 chats made {} pushes", pushes.len());
    assert_eq!(pushes[0].payload["seq"], first.unwrap());
    let last = pushes.last().unwrap();
    assert_eq!(last.payload["text"], "line 29");
    // The number the notification shows: every chat Joon has not read.
    assert_eq!(last.payload["unread"], 30);
}

async fn questions_answers_and_dates_reach_the_partner_too(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &["--push-collapse-ms=0"]).await;
    let (his, hers) = (Device::new("his"), Device::new("hers"));
    service.add(&his, Answer::Accept);
    service.add(&hers, Answer::Accept);
    subscribe(&joon, &service, &his, true).await;
    subscribe(&mina, &service, &hers, true).await;
    // Mina writes from a hidden tab: the question reaches both of them.
    let mut m = hidden_socket(&mina).await;
    m.acked("여행 가자").await;
    let question = m.until("question").await;
    service
        .until("the question on both devices", |s| {
            s.received("his")
                .iter()
                .any(|p| p.payload["kind"] == "question")
                && s.received("hers")
                    .iter()
                    .any(|p| p.payload["kind"] == "question")
        })
        .await;
    let q = service
        .received("his")
        .into_iter()
        .find(|p| p.payload["kind"] == "question")
        .unwrap();
    assert_eq!(q.payload["text"], question["text"]);
    assert!(q.payload.get("from").is_none(), "{}", q.payload);

    // Mina answers: Joon hears of it.
    m.send(json!({ "type": "answer", "question_id": question["question_id"], "text": "제주" }))
        .await;
    service
        .until("the answer on his device", |s| {
            s.received("his")
                .iter()
                .any(|p| p.payload["kind"] == "answer")
        })
        .await;
    // Mina changes the calendar: Joon hears of it, with the low urgency of a calendar.
    let (status, body) = mina
        .post(
            "/api/anniversaries/dates",
            json!({ "title": "첫 여행", "date": "2027-05-01" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    service
        .until("the calendar change on his device", |s| {
            s.received("his")
                .iter()
                .any(|p| p.payload["kind"] == "dates")
        })
        .await;
    let dates = service
        .received("his")
        .into_iter()
        .find(|p| p.payload["kind"] == "dates")
        .unwrap();
    assert_eq!(dates.urgency, "low");
    assert_eq!(dates.payload["from"], mina.username.as_str());
    // Her own answer and change are not pushed to her.
    assert!(
        service
            .received("hers")
            .iter()
            .all(|p| p.payload["kind"] == "question"),
        "{:?}",
        service.received("hers")
    );
}

async fn a_nudge_reaches_a_partner_who_is_away_as_a_push(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &["--push-collapse-ms=0"]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;

    let mut m = mina.socket().await;
    m.send(json!({ "type": "nudge" })).await;
    let pushes = service.pushes("phone", 1).await;
    assert_eq!(pushes[0].payload["kind"], "nudge");
    assert_eq!(pushes[0].payload["from"], mina.username.as_str());
    assert!(
        pushes[0].payload.get("seq").is_none(),
        "{}",
        pushes[0].payload
    );
    assert_eq!(pushes[0].topic, "nudge");
}

async fn a_subscription_the_push_service_says_is_gone_is_removed(backend: Backend) {
    let (node, mina, joon, service) = setup(backend, &[]).await;
    let (old, current) = (Device::new("old"), Device::new("current"));
    service.add(&old, Answer::Gone);
    service.add(&current, Answer::Accept);
    subscribe(&joon, &service, &old, false).await;
    subscribe(&joon, &service, &current, false).await;

    let mut m = mina.socket().await;
    m.acked("still there?").await;
    service.pushes("current", 1).await;
    service
        .until("the gone device tried", |s| s.attempts("old") >= 1)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = joon.get("/api/push/devices").await;
        let names: Vec<&str> = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["device"].as_str())
            .collect();
        if names == ["current"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listed: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = metrics(&node).await;
    assert_eq!(metric(&text, "duet_push_pruned_total"), 1.0, "{text}");
    // Gone is gone: the next chat is not tried there again.
    m.acked("and now?").await;
    service.pushes("current", 2).await;
    assert_eq!(service.attempts("old"), 1);
}

async fn a_push_service_that_hangs_or_fails_delays_no_ack_and_no_other_push(backend: Backend) {
    let (node, mina, joon, service) = setup(
        backend,
        &[
            "--push-collapse-ms=0",
            "--push-retries=1",
            "--push-timeout-ms=60000",
        ],
    )
    .await;
    let (stuck, broken) = (Device::new("stuck"), Device::new("broken"));
    service.add(&stuck, Answer::Hang);
    service.add(&broken, Answer::Fail);
    subscribe(&joon, &service, &stuck, false).await;
    subscribe(&joon, &service, &broken, false).await;
    // Another couple on the same node, whose push service answers.
    let (sora, tae) = (
        User::signup(&node, "sora").await,
        User::signup(&node, "tae").await,
    );
    pair(&sora, &tae).await;
    let fine = Device::new("fine");
    service.add(&fine, Answer::Accept);
    subscribe(&tae, &service, &fine, false).await;

    let mut m = mina.socket().await;
    m.acked("first").await;
    service
        .until("the stuck device's first push", |s| {
            s.attempts("stuck") >= 1
        })
        .await;
    // While that push hangs, twenty more chats are each acked, and delivered to Joon...
    let mut j = hidden_socket(&joon).await;
    for i in 0..20 {
        m.acked(&format!("while it hangs {i}")).await;
    }
    for i in 0..20 {
        j.until_text(&format!("while it hangs {i}")).await;
    }
    // ... and the other couple's push goes out.
    let mut s = sora.socket().await;
    s.acked("hi tae").await;
    service.pushes("fine", 1).await;
    // The failing service was tried again once (the bound), then given up.
    service
        .until("a retry of the broken device", |s| {
            s.attempts("broken") >= 2
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics(&node).await;
        if metric(&text, "duet_push_failed_total") >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never given up: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing of the stuck one has finished: all of the above happened while it hung.
    assert!(service.received("stuck").is_empty());
    service.release.notify_waiters();
}

async fn ending_a_session_removes_its_device(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &["--push-collapse-ms=0"]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;
    let (status, _) = joon.post("/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mut m = mina.socket().await;
    m.acked("after you left").await;
    let again = User::login_at(joon.addr, &joon.username).await;
    let (_, list) = again.get("/api/push/devices").await;
    assert_eq!(list["devices"], json!([]), "{list}");

    // A device subscribed from another login goes when the password changes here (which
    // ends every other session); one subscribed from this login stays.
    let tablet = Device::new("tablet");
    service.add(&tablet, Answer::Accept);
    let other = User::login_at(joon.addr, &joon.username).await;
    subscribe(&other, &service, &tablet, false).await;
    let laptop = Device::new("laptop");
    service.add(&laptop, Answer::Accept);
    subscribe(&again, &service, &laptop, false).await;
    let (status, body) = again
        .post(
            "/api/password",
            json!({ "old_password": PASSWORD, "new_password": "another horse battery" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    m.acked("and after the password").await;
    service.pushes("laptop", 1).await;
    settle().await;
    assert!(service.received("phone").is_empty());
    assert!(service.received("tablet").is_empty());
    let (_, list) = again.get("/api/push/devices").await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["devices"][0]["device"], "laptop");
}

async fn devices_are_listed_changed_and_removed_by_their_owner_only(backend: Backend) {
    let (_node, mina, joon, service) = setup(backend, &[]).await;
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    let made = subscribe(&joon, &service, &phone, false).await;
    assert_eq!(made["current"], true);
    assert_eq!(made["preview"], false);
    let id = made["id"].as_str().unwrap().to_owned();

    // Subscribing the same endpoint again replaces it: still one device.
    subscribe(&joon, &service, &phone, false).await;
    let (_, list) = joon.get("/api/push/devices").await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");

    let (status, _) = mina
        .patch(
            &format!("/api/push/devices/{id}"),
            json!({ "preview": true }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = mina.delete(&format!("/api/push/devices/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, changed) = joon
        .patch(
            &format!("/api/push/devices/{id}"),
            json!({ "preview": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["preview"], true);
    let (status, _) = joon.delete(&format!("/api/push/devices/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = joon.get("/api/push/devices").await;
    assert_eq!(list["devices"], json!([]));
}

async fn subscriptions_a_browser_would_not_make_are_refused(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-push-devices=2"]).await;
    let (mina, _joon) = couple(&node).await;
    let device = Device::new("d");
    let refused = [
        // http is only for a push service on the operator's machine (not allowed here).
        json!({ "endpoint": "http://127.0.0.1:9/push", "keys": { "p256dh": device.p256dh, "auth": device.auth } }),
        json!({ "endpoint": "file:///etc/passwd", "keys": { "p256dh": device.p256dh, "auth": device.auth } }),
        json!({ "endpoint": "https://push.example/x", "keys": { "p256dh": "BAAA", "auth": device.auth } }),
        json!({ "endpoint": "https://push.example/x", "keys": { "p256dh": device.p256dh, "auth": "c2hvcnQ" } }),
    ];
    for body in refused {
        let (status, answer) = mina.post("/api/push/devices", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_input");
    }
    let (status, answer) = mina
        .post("/api/push/devices", json!({ "endpoint": 5 }))
        .await;
    assert!(status.is_client_error(), "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_input");
    // The limit of devices per user. A name with control characters (a NUL, which Postgres
    // refuses in text) is kept without them.
    for i in 0..2 {
        let (status, body) = mina
            .post(
                "/api/push/devices",
                json!({ "endpoint": format!("https://push.example/{i}"), "keys": { "p256dh": device.p256dh, "auth": device.auth }, "device": " my\u{0} phone\n" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["device"], "my phone");
    }
    let (status, body) = mina
        .post(
            "/api/push/devices",
            json!({ "endpoint": "https://push.example/3", "keys": { "p256dh": device.p256dh, "auth": device.auth } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, list) = mina.get("/api/push/devices").await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_nodes_each_event_is_pushed_once_and_looking_counts_on_any_node() {
    let cluster = Cluster::start(2, &push_flags(&["--push-collapse-ms=0"])).await;
    let mina = User::signup_at(
        cluster.addrs[0],
        &format!("mina{}", &Uuid::new_v4().simple().to_string()[..6]),
    )
    .await;
    let joon = User::signup_at(
        cluster.addrs[1],
        &format!("joon{}", &Uuid::new_v4().simple().to_string()[..6]),
    )
    .await;
    pair(&mina, &joon).await;
    let service = PushService::start(&vapid_key(&mina).await).await;
    // Both nodes sign with the one key of the cluster.
    assert_eq!(vapid_key(&joon).await, vapid_key(&mina).await);
    let phone = Device::new("phone");
    service.add(&phone, Answer::Accept);
    subscribe(&joon, &service, &phone, false).await;

    // Joon has a hidden tab on node B; Mina writes on node A. Each chat is pushed once.
    let mut j = hidden_socket(&joon).await;
    let mut m = mina.socket().await;
    // Node A learns through Redis that Joon's tab is hidden: from the first chat pushed on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while service.received("phone").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no push while his tab is hidden"
        );
        m.acked("probe").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle().await;
    let probes = service.received("phone").len();
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(m.acked(&format!("from A {i}")).await["seq"].clone());
    }
    j.until_text("from A 4").await;
    // One push per stream is under way at a time: chats that come meanwhile leave together.
    let counted = |s: &PushService| -> u64 {
        s.received("phone")[probes..]
            .iter()
            .map(|p| p.payload["count"].as_u64().unwrap())
            .sum()
    };
    service
        .until("the five chats counted", |s| counted(s) >= 5)
        .await;
    settle().await;
    assert_eq!(counted(&service), 5);
    let pushed: Vec<Value> = service.received("phone")[probes..]
        .iter()
        .map(|p| p.payload["seq"].clone())
        .collect();
    assert_eq!(pushed[0], seqs[0], "{pushed:?}");
    let distinct: HashSet<String> = pushed.iter().map(Value::to_string).collect();
    assert_eq!(
        distinct.len(),
        pushed.len(),
        "a chat pushed twice: {pushed:?}"
    );

    // Joon looks at the conversation on node B: node A, which commits Mina's chats, knows.
    j.send(json!({ "type": "looking", "looking": true })).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = service.received("phone").len();
        let ack = m.acked("are you there?").await;
        j.until_text("are you there?").await;
        settle().await;
        let now = service.received("phone");
        if now.len() == before {
            break;
        }
        // The looking frame was still on its way to Redis: only that chat was pushed.
        assert_eq!(now.last().unwrap().payload["seq"], ack["seq"]);
        assert!(
            tokio::time::Instant::now() < deadline,
            "pushed while looking"
        );
    }
}
