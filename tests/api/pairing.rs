//! Becoming a couple: requests, accept, decline, cancel, and every refusal the contract names.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_request_accepted_makes_a_couple_both_can_see,
    every_pairing_refusal_has_its_code,
    the_receiver_declines_and_the_sender_cancels,
    accepting_clears_every_other_pending_request_of_both,
    crossing_requests_accepted_at_once_make_one_couple_and_no_error,
);

async fn a_request_accepted_makes_a_couple_both_can_see(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;

    let (status, sent) = mina
        .post("/api/requests", json!({ "username": "JOON" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["request"]["from"]["username"], "mina");
    assert_eq!(sent["request"]["to"]["username"], "joon");
    let id = sent["request"]["id"].as_str().expect("an id");

    let (_, lists) = joon.get("/api/requests").await;
    assert_eq!(lists["received"][0]["id"], id);
    assert_eq!(lists["sent"].as_array().map(Vec::len), Some(0));
    let (_, lists) = mina.get("/api/requests").await;
    assert_eq!(lists["sent"][0]["id"], id);

    let (status, accepted) = joon
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["couple"]["partner"]["username"], "mina");
    assert_eq!(accepted["couple"]["delete_at"], serde_json::Value::Null);

    let (_, me) = mina.get("/api/me").await;
    assert_eq!(me["couple"]["id"], accepted["couple"]["id"]);
    assert_eq!(me["couple"]["partner"]["id"], joon.id.to_string());
    let (_, lists) = joon.get("/api/requests").await;
    assert_eq!(lists["received"].as_array().map(Vec::len), Some(0));
}

async fn every_pairing_refusal_has_its_code(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;
    let sora = User::signup(&node, "sora").await;

    let refused = |status: StatusCode, body: serde_json::Value, want: StatusCode, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    };

    let (s, b) = mina
        .post("/api/requests", json!({ "username": "nobody" }))
        .await;
    refused(s, b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = mina
        .post("/api/requests", json!({ "username": "Mina" }))
        .await;
    refused(s, b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");
    let (s, b) = mina.post("/api/requests", json!({ "name": "joon" })).await;
    refused(s, b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input");

    let (s, sent) = mina
        .post("/api/requests", json!({ "username": "joon" }))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = sent["request"]["id"].as_str().expect("an id").to_owned();
    // One pending request between two people, whichever of them asks again.
    let (s, b) = mina
        .post("/api/requests", json!({ "username": "joon" }))
        .await;
    refused(s, b, StatusCode::CONFLICT, "duplicate_request");
    let (s, b) = joon
        .post("/api/requests", json!({ "username": "mina" }))
        .await;
    refused(s, b, StatusCode::CONFLICT, "duplicate_request");

    // Only the receiver accepts; to anyone else the request does not exist.
    let (s, b) = mina
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    refused(s, b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = sora
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    refused(s, b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = sora.delete(&format!("/api/requests/{id}")).await;
    refused(s, b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = joon
        .post("/api/requests/not-a-uuid/accept", json!({}))
        .await;
    refused(s, b, StatusCode::NOT_FOUND, "not_found");

    let (s, _) = joon
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Now both are taken, from either side.
    let (s, b) = sora
        .post("/api/requests", json!({ "username": "mina" }))
        .await;
    refused(s, b, StatusCode::CONFLICT, "already_paired");
    let (s, b) = joon
        .post("/api/requests", json!({ "username": "sora" }))
        .await;
    refused(s, b, StatusCode::CONFLICT, "already_paired");

    // Without a session nothing works.
    let (s, b, _) = request(
        reqwest::Method::GET,
        &format!("{}/api/requests", node.base()),
        None,
        None,
    )
    .await;
    refused(s, b, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (s, b) = sora.get("/api/chats").await;
    refused(s, b, StatusCode::CONFLICT, "not_paired");
}

async fn the_receiver_declines_and_the_sender_cancels(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;

    let (_, sent) = mina
        .post("/api/requests", json!({ "username": "joon" }))
        .await;
    let id = sent["request"]["id"].as_str().expect("an id").to_owned();
    let (s, _) = joon.delete(&format!("/api/requests/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "the receiver declines");
    let (_, lists) = mina.get("/api/requests").await;
    assert_eq!(lists["sent"].as_array().map(Vec::len), Some(0));
    let (s, _) = joon
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a declined request cannot be accepted"
    );

    let (_, sent) = mina
        .post("/api/requests", json!({ "username": "joon" }))
        .await;
    let id = sent["request"]["id"].as_str().expect("an id").to_owned();
    let (s, _) = mina.delete(&format!("/api/requests/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "the sender cancels");
    let (_, lists) = joon.get("/api/requests").await;
    assert_eq!(lists["received"].as_array().map(Vec::len), Some(0));
}

async fn accepting_clears_every_other_pending_request_of_both(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;
    let sora = User::signup(&node, "sora").await;
    let hana = User::signup(&node, "hana").await;

    sora.post("/api/requests", json!({ "username": "mina" }))
        .await;
    joon.post("/api/requests", json!({ "username": "hana" }))
        .await;
    let (_, sent) = mina
        .post("/api/requests", json!({ "username": "joon" }))
        .await;
    let id = sent["request"]["id"].as_str().expect("an id").to_owned();
    let (s, _) = joon
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    for user in [&mina, &joon, &sora, &hana] {
        let (_, lists) = user.get("/api/requests").await;
        assert_eq!(
            lists["received"].as_array().map(Vec::len),
            Some(0),
            "{}",
            user.username
        );
        assert_eq!(
            lists["sent"].as_array().map(Vec::len),
            Some(0),
            "{}",
            user.username
        );
    }
}

/// Rounds of the race below. The circle closes when all three accepts sit between their two
/// member inserts at once; without the fix it happened within the first two rounds here.
const CROSSING_ROUNDS: usize = 30;

async fn crossing_requests_accepted_at_once_make_one_couple_and_no_error(backend: Backend) {
    // Ninety sign-ups from one address: more than the login limit allows in a minute.
    let node = spawn_node_with(backend, &["--login-rate-per-addr=0"]).await;
    for round in 0..CROSSING_ROUNDS {
        let mut people = Vec::new();
        for name in ["a", "b", "c"] {
            people.push(User::signup(&node, &format!("r{round}{name}")).await);
        }
        // a -> b, b -> c, c -> a: each has sent one request and received one.
        let mut received = Vec::new();
        for (from, to) in [(0, 1), (1, 2), (2, 0)] {
            let (status, sent) = people[from]
                .post("/api/requests", json!({ "username": people[to].username }))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{sent}");
            let id = sent["request"]["id"].as_str().expect("an id").to_owned();
            received.push((to, id));
        }
        // Everyone accepts theirs at the same moment.
        let accept = |(to, id): &(usize, String)| {
            let path = format!("/api/requests/{id}/accept");
            let user = people[*to].clone();
            async move { user.post(&path, json!({})).await }
        };
        let (one, two, three) = tokio::join!(
            accept(&received[0]),
            accept(&received[1]),
            accept(&received[2])
        );
        let mut couples = 0;
        for (status, body) in [one, two, three] {
            match status {
                StatusCode::CREATED => couples += 1,
                // The winner paired one of this request's two people and cleared it.
                StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                    assert!(
                        ["not_found", "already_paired"]
                            .contains(&body["error"]["code"].as_str().unwrap_or_default()),
                        "round {round}: {body}"
                    );
                }
                _ => panic!("round {round}: an accept failed with {status}: {body}"),
            }
        }
        assert_eq!(
            couples, 1,
            "round {round}: every two of them share a person"
        );
    }
}
