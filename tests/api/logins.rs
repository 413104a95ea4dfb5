//! Logins and sign-ups under pressure: the limits per client address and per username, what
//! counts as the client's address behind a proxy, and a storm of logins that must leave the
//! node's memory bounded and its door open.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;
use crate::support_process::StandaloneNode;

both_backends!(
    too_many_attempts_from_one_address_are_refused_for_a_while,
    guessing_one_password_from_many_addresses_is_slowed_down,
    behind_a_trusted_proxy_each_forwarded_client_counts_apart,
    when_every_hashing_slot_is_busy_a_login_is_told_to_retry,
);

const WRONG: &str = "not the password";

/// `POST /api/<what>` (`login` or `signup`) from the loopback address `from`, optionally
/// through a proxy that says it forwards for `forwarded_for`.
async fn attempt(
    base: &str,
    what: &str,
    from: IpAddr,
    forwarded_for: Option<&str>,
    username: &str,
    password: &str,
) -> (StatusCode, Value, HeaderMap) {
    let http = reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client");
    let mut req = http
        .post(format!("{base}/api/{what}"))
        .json(&json!({ "username": username, "password": password }));
    if let Some(client) = forwarded_for {
        req = req.header("x-forwarded-for", client);
    }
    let res = req.send().await.expect("the node answers");
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// A refusal that says when to come back: 429 `rate_limited` with `Retry-After` in seconds.
fn assert_told_to_retry(outcome: &(StatusCode, Value, HeaderMap), within_secs: u64) {
    let (status, body, headers) = outcome;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {headers:?}"));
    assert!((1..=within_secs).contains(&after), "Retry-After: {after}");
}

async fn too_many_attempts_from_one_address_are_refused_for_a_while(backend: Backend) {
    let node = spawn_node_with(backend, &["--login-rate-per-addr=3"]).await;
    let base = node.base();
    let here = loopback(1);
    let (status, body, _) = attempt(&base, "signup", here, None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for _ in 0..2 {
        let (status, _, _) = attempt(&base, "login", here, None, "mina", WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The address has had its three attempts a minute: even the right password waits now,
    // and so does a sign-up.
    let refused = attempt(&base, "login", here, None, "mina", PASSWORD).await;
    assert_told_to_retry(&refused, 60);
    let refused = attempt(&base, "signup", here, None, "joon", PASSWORD).await;
    assert_told_to_retry(&refused, 60);
    // Someone elsewhere is not held up.
    let (status, body, _) = attempt(&base, "login", loopback(2), None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn guessing_one_password_from_many_addresses_is_slowed_down(backend: Backend) {
    let node = spawn_node_with(backend, &["--login-rate-per-user=3"]).await;
    let base = node.base();
    let (status, _, _) = attempt(&base, "signup", loopback(1), None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED);
    for n in [2, 3] {
        let (status, _, _) = attempt(&base, "login", loopback(n), None, "MINA", WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A fourth try at the same username, however spelled and from wherever, waits.
    let refused = attempt(&base, "login", loopback(4), None, "Mina", WRONG).await;
    assert_told_to_retry(&refused, 60);
    // Other usernames from that address are not held up.
    let (status, body, _) = attempt(&base, "signup", loopback(4), None, "joon", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn behind_a_trusted_proxy_each_forwarded_client_counts_apart(backend: Backend) {
    // Behind our proxy (here: loopback) the address it forwards for is the client.
    let node = spawn_node_with(
        backend,
        &["--login-rate-per-addr=2", "--trusted-proxies=127.0.0.1"],
    )
    .await;
    let base = node.base();
    let proxy = loopback(1);
    for username in ["one", "two"] {
        let outcome = attempt(&base, "login", proxy, Some("203.0.113.7"), username, WRONG).await;
        assert_eq!(outcome.0, StatusCode::UNAUTHORIZED, "{}", outcome.1);
    }
    let refused = attempt(&base, "login", proxy, Some("203.0.113.7"), "three", WRONG).await;
    assert_told_to_retry(&refused, 60);
    // A client that writes its own header before ours cannot pass for someone else.
    let forged = "198.51.100.1, 203.0.113.7";
    let refused = attempt(&base, "login", proxy, Some(forged), "four", WRONG).await;
    assert_told_to_retry(&refused, 60);
    let (status, _, _) = attempt(&base, "login", proxy, Some("203.0.113.8"), "five", WRONG).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another client has its own share"
    );

    // From an address that is not a trusted proxy the header means nothing: the peer counts.
    let node = spawn_node_with(backend, &["--login-rate-per-addr=2"]).await;
    let base = node.base();
    for (n, client) in ["203.0.113.1", "203.0.113.2"].into_iter().enumerate() {
        let username = format!("user{n}");
        let outcome = attempt(&base, "login", proxy, Some(client), &username, WRONG).await;
        assert_eq!(outcome.0, StatusCode::UNAUTHORIZED, "{}", outcome.1);
    }
    let refused = attempt(&base, "login", proxy, Some("203.0.113.3"), "user3", WRONG).await;
    assert_told_to_retry(&refused, 60);
}

async fn when_every_hashing_slot_is_busy_a_login_is_told_to_retry(backend: Backend) {
    // One hash at a time and no waiting for it: logins arriving together cannot all be served.
    let node = spawn_node_with(backend, &["--hash-concurrency=1", "--hash-wait-ms=0"]).await;
    let base = node.base();
    let logins = (0..8u8).map(|n| {
        let base = base.clone();
        tokio::spawn(async move {
            let username = format!("stranger{n}");
            attempt(&base, "login", loopback(10 + n), None, &username, WRONG).await
        })
    });
    let mut refused = 0;
    for login in logins.collect::<Vec<_>>() {
        let outcome = login.await.expect("the login task");
        if outcome.0 == StatusCode::UNAUTHORIZED {
            assert_eq!(outcome.1["error"]["code"], "invalid_credentials");
        } else {
            assert_told_to_retry(&outcome, 5);
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "eight logins at once on one slot, none refused"
    );
    // Once the slot is free, logins go through again.
    let (status, body, _) = attempt(&base, "signup", loopback(1), None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Logins at once, each from its own address so no rate limit stands in for the bound on
/// hashing: what is measured is that bound.
const STORM: u8 = 200;
/// Resident memory a standalone node on SQLite may reach during and after the storm with two
/// hashes at a time: it starts at about 20 MiB and each running hash holds 19 MiB. Unbounded,
/// 200 logins took it to about 3.8 GiB.
const STORM_PEAK_MIB: u64 = 160;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_logins_leaves_memory_bounded_and_the_door_open() {
    let node = StandaloneNode::start(&[("DUET_HASH_CONCURRENCY", "2")]).await;
    let base = node.base();
    let (status, body, _) = attempt(&base, "signup", loopback(1), None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let calm = node.memory();

    let storm: Vec<_> = (0..STORM)
        .map(|n| {
            let base = base.clone();
            tokio::spawn(async move {
                let username = format!("stranger{n}");
                attempt(&base, "login", loopback(2 + n), None, &username, WRONG).await
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for login in storm {
        let outcome = login.await.expect("the login task");
        if outcome.0 == StatusCode::UNAUTHORIZED {
            answered += 1;
        } else {
            // Never a 5xx: a login that cannot be served now is told when to come back.
            assert_told_to_retry(&outcome, 5);
            refused += 1;
        }
    }
    let peak = node.memory();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.memory();
    eprintln!(
        "storm of {STORM}: {answered} answered, {refused} told to retry; RSS {} MiB before, \
         peak {} MiB, {} MiB after",
        calm.rss_mib(),
        peak.peak_mib(),
        after.rss_mib()
    );
    assert!(answered > 0, "the node served none of the storm");
    assert!(
        peak.peak_mib() < STORM_PEAK_MIB,
        "RSS peaked at {} MiB (bound {STORM_PEAK_MIB} MiB)",
        peak.peak_mib()
    );
    assert!(
        after.rss_mib() < STORM_PEAK_MIB,
        "RSS stayed at {} MiB after the storm",
        after.rss_mib()
    );

    // Mina, who was not part of it, logs in as usual.
    let (status, body, _) = attempt(&base, "login", loopback(1), None, "mina", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
