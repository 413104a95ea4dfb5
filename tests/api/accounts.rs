//! Sign up, log in, log out, and what a session can and cannot do.

use chrono::Utc;
use entity::sessions;
use reqwest::{Method, StatusCode};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait,
    QueryFilter, Set,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_login_verified_before_a_password_change_gets_no_session,
    signing_up_logs_in_and_logging_out_ends_the_session,
    usernames_are_unique_whatever_their_case,
    bad_usernames_and_passwords_are_refused_with_invalid_input,
    unknown_user_and_wrong_password_look_the_same,
    logging_out_closes_every_socket_of_that_session,
    a_foreign_origin_cannot_change_anything,
    malformed_bodies_get_the_contracts_error_shape,
    expired_sessions_are_purged_and_live_ones_kept,
    changing_the_password_needs_the_old_one_and_ends_every_other_session,
    a_username_is_free_until_somebody_takes_it_in_any_case,
    deleting_my_account_needs_my_password_and_unpaired_it_goes_at_once,
    deleting_my_account_in_a_couple_schedules_the_breakup_and_i_go_with_the_couple,
    a_look_alike_username_is_the_same_name,
    a_pairing_request_to_a_look_alike_reaches_the_real_user,
    username_checks_are_rate_limited_per_address,
    existing_accounts_get_the_new_username_keys,
);

async fn signing_up_logs_in_and_logging_out_ends_the_session(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "Mina").await;
    assert_eq!(mina.username, "Mina");

    let (status, me) = mina.get("/api/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["username"], "Mina");
    assert_eq!(me["couple"], serde_json::Value::Null);

    let (status, _) = mina.post("/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = mina.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");

    // Logging in again (case-insensitively) gives a fresh, working session.
    let again = User::login_at(node.addr, "mina").await;
    assert_ne!(again.token, mina.token);
    let (status, me) = again.get("/api/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["id"], mina.id.to_string());

    // The same token works as a bearer token for non-browser clients.
    let res = reqwest::Client::new()
        .get(format!("{}/api/me", node.base()))
        .bearer_auth(&again.token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::OK);
    // The scheme's name is case-insensitive; any other scheme is no session.
    for (scheme, expected) in [
        ("BEARER", StatusCode::OK),
        ("Basic", StatusCode::UNAUTHORIZED),
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}/api/me", node.base()))
            .header("authorization", format!("{scheme} {}", again.token))
            .send()
            .await
            .expect("an answer");
        assert_eq!(res.status(), expected, "{scheme}");
    }
}

async fn usernames_are_unique_whatever_their_case(backend: Backend) {
    let node = spawn_node(backend).await;
    User::signup(&node, "Mina").await;
    let body = json!({ "username": "mINA", "password": PASSWORD });
    let (status, value, _) = request(
        Method::POST,
        &format!("{}/api/signup", node.base()),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(value["error"]["code"], "username_taken");
}

async fn bad_usernames_and_passwords_are_refused_with_invalid_input(backend: Backend) {
    let node = spawn_node(backend).await;
    let long = "x".repeat(33);
    let cases = [
        ("ab", PASSWORD),
        (long.as_str(), PASSWORD),
        ("has space", PASSWORD),
        ("semi;colon", PASSWORD),
        ("fine_name", "short"),
    ];
    for (username, password) in cases {
        let body = json!({ "username": username, "password": password });
        let (status, value, _) = request(
            Method::POST,
            &format!("{}/api/signup", node.base()),
            None,
            Some(body),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{username}/{password}: {value}"
        );
        assert_eq!(value["error"]["code"], "invalid_input");
    }
    // Unicode letters are letters: a Korean username is fine.
    User::signup(&node, "민아_01.x-y").await;
}

async fn unknown_user_and_wrong_password_look_the_same(backend: Backend) {
    let node = spawn_node(backend).await;
    User::signup(&node, "mina").await;
    let login = |username: &'static str, password: &'static str| {
        let url = format!("{}/api/login", node.base());
        async move {
            request(
                Method::POST,
                &url,
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await
        }
    };
    let (wrong_status, wrong, _) = login("mina", "not the password").await;
    let (unknown_status, unknown, _) = login("nobody", "not the password").await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
}

async fn logging_out_closes_every_socket_of_that_session(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut tab1 = mina.socket().await;
    let mut tab2 = mina.socket().await;
    let mut phone = User::login_at(node.addr, "mina").await.socket().await;
    let mut partner = joon.socket().await;

    let (status, _) = mina.post("/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for tab in [&mut tab1, &mut tab2] {
        let frame = tab.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 4001);
    }
    // Another session of the same user (her phone) and the partner are untouched.
    phone.say("still here").await;
    assert_eq!(phone.until("ack").await["type"], "ack");
    assert_eq!(partner.until("chat").await["text"], "still here");
    // And the ended session cannot open a new socket.
    let refused = mina.try_socket("/ws", None).await.err().expect("refused");
    assert_eq!(refused.0, 401);
}

async fn a_foreign_origin_cannot_change_anything(backend: Backend) {
    let node = spawn_node(backend).await;
    let url = format!("{}/api/signup", node.base());
    let body = json!({ "username": "mina", "password": PASSWORD });
    let res = reqwest::Client::new()
        .post(&url)
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let value: serde_json::Value = res.json().await.expect("json");
    assert_eq!(value["error"]["code"], "forbidden_origin");

    let res = reqwest::Client::new()
        .post(&url)
        .header("origin", "http://duet.test")
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "an allowed origin signs up"
    );
}

async fn malformed_bodies_get_the_contracts_error_shape(backend: Backend) {
    let node = spawn_node(backend).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/signup", node.base()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let value: serde_json::Value = res.json().await.expect("json");
    assert_eq!(value["error"]["code"], "invalid_input");
    assert!(value["error"]["message"].is_string());

    let (status, value, _) = request(
        Method::GET,
        &format!("{}/api/nothing-here", node.base()),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(value["error"]["code"], "not_found");
    // Any method: a path nobody serves is not "method not allowed" with an empty body.
    for method in [Method::POST, Method::DELETE] {
        let url = format!("{}/api/nothing-here", node.base());
        let (status, value, _) = request(method.clone(), &url, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(value["error"]["code"], "not_found", "{method}");
    }

    let (status, value, _) =
        request(Method::GET, &format!("{}/healthz", node.base()), None, None).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let (status, value, _) =
        request(Method::GET, &format!("{}/readyz", node.base()), None, None).await;
    assert_eq!(status, StatusCode::OK, "{value}");
}

async fn expired_sessions_are_purged_and_live_ones_kept(backend: Backend) {
    let node = spawn_node_with(backend, &["--sweep-secs=1"]).await;
    let laptop = User::signup(&node, "mina").await;
    let phone = User::login_at(node.addr, "mina").await;
    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    // A session's row, found the way the server finds it: by the SHA-256 of its token.
    let session = |user: &User| {
        let token_hash = format!("{:x}", Sha256::digest(user.token.as_bytes()));
        sessions::Entity::find().filter(sessions::Column::TokenHash.eq(token_hash))
    };
    let rows = |user: &User| session(user).count(&db);

    // The laptop's login ran out an hour ago.
    let mut expired: sessions::ActiveModel = session(&laptop)
        .one(&db)
        .await
        .expect("reading a session")
        .expect("the laptop's session")
        .into();
    expired.expires_at = Set(Utc::now() - chrono::Duration::hours(1));
    expired.update(&db).await.expect("expiring a session");
    assert_eq!(laptop.get("/api/me").await.0, StatusCode::UNAUTHORIZED);

    let mut purged = false;
    for _ in 0..40 {
        if rows(&laptop).await.expect("counting") == 0 {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(purged, "the expired session's row is still there");
    assert_eq!(rows(&phone).await.expect("counting"), 1);
    assert_eq!(phone.get("/api/me").await.0, StatusCode::OK);
}

async fn changing_the_password_needs_the_old_one_and_ends_every_other_session(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let phone = User::login_at(node.addr, "mina").await;
    let mut phone_socket = phone.socket().await;
    let mut laptop_socket = mina.socket().await;
    let mut partner = joon.socket().await;

    // The wrong current password changes nothing and ends nothing.
    let wrong = json!({ "old_password": "not the password", "new_password": "a new secret 1" });
    let (status, value) = mina.post("/api/password", wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
    assert_eq!(value["error"]["code"], "forbidden");
    assert_eq!(phone.get("/api/me").await.0, StatusCode::OK);
    // Nor does a new password that is too short.
    let short = json!({ "old_password": PASSWORD, "new_password": "short" });
    let (status, value) = mina.post("/api/password", short).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
    assert_eq!(phone.get("/api/me").await.0, StatusCode::OK);

    let change = json!({ "old_password": PASSWORD, "new_password": "a new secret 1" });
    let (status, value) = mina.post("/api/password", change).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{value}");
    // The phone's session is over, its socket closed; the laptop that changed it stays.
    let frame = phone_socket.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4001);
    assert_eq!(phone.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(mina.get("/api/me").await.0, StatusCode::OK);
    laptop_socket.say("new password, same me").await;
    assert_eq!(laptop_socket.until("ack").await["type"], "ack");
    assert_eq!(partner.until("chat").await["text"], "new password, same me");

    // Only the new password logs in.
    let login = |password: &'static str| {
        let url = format!("{}/api/login", node.base());
        async move {
            let body = json!({ "username": "mina", "password": password });
            request(Method::POST, &url, None, Some(body)).await.0
        }
    };
    assert_eq!(login(PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login("a new secret 1").await, StatusCode::OK);
}

async fn a_username_is_free_until_somebody_takes_it_in_any_case(backend: Backend) {
    let node = spawn_node(backend).await;
    let check = |name: &'static str| {
        let url = format!("{}/api/usernames/{name}", node.base());
        async move { request(Method::GET, &url, None, None).await }
    };
    let (status, value, _) = check("Mina").await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value, json!({ "username": "Mina", "available": true }));

    User::signup(&node, "mina").await;
    for name in ["mina", "Mina", "MINA"] {
        let (status, value, _) = check(name).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        assert_eq!(value["available"], false, "{name}");
    }
    // A name that could never sign up is not "free".
    let (status, value, _) = check("a").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
    assert_eq!(value["error"]["code"], "invalid_input");
}

async fn delete_me(user: &User, password: &str) -> (StatusCode, serde_json::Value) {
    let url = format!("{}/api/me", user.base);
    let body = json!({ "password": password });
    let (status, value, _) = request(Method::DELETE, &url, Some(&user.token), Some(body)).await;
    (status, value)
}

async fn can_log_in(node: &TestNode, username: &str) -> StatusCode {
    let url = format!("{}/api/login", node.base());
    let body = json!({ "username": username, "password": PASSWORD });
    request(Method::POST, &url, None, Some(body)).await.0
}

async fn is_free(node: &TestNode, username: &str) -> bool {
    let url = format!("{}/api/usernames/{username}", node.base());
    let (status, value, _) = request(Method::GET, &url, None, None).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    value["available"].as_bool().expect("available")
}

async fn deleting_my_account_needs_my_password_and_unpaired_it_goes_at_once(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;
    let (status, _) = joon
        .post("/api/requests", json!({ "username": "mina" }))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, value) = delete_me(&mina, "not the password").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
    assert_eq!(value["error"]["code"], "forbidden");
    assert_eq!(mina.get("/api/me").await.0, StatusCode::OK);

    let (status, value) = delete_me(&mina, PASSWORD).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{value}");
    assert_eq!(mina.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(can_log_in(&node, "mina").await, StatusCode::UNAUTHORIZED);
    // Gone with everything it had: the request to her too, and her name is free again.
    let (_, requests) = joon.get("/api/requests").await;
    assert_eq!(requests["sent"], json!([]));
    assert!(is_free(&node, "mina").await);
    User::signup(&node, "mina").await;
}

async fn deleting_my_account_in_a_couple_schedules_the_breakup_and_i_go_with_the_couple(
    backend: Backend,
) {
    let node = spawn_node_with(backend, &["--sweep-secs=1"]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    let (status, value) = delete_me(&mina, PASSWORD).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{value}");
    // My partner sees the break-up scheduled, live; my socket and sessions end at once.
    let scheduled = theirs.until("couple").await;
    assert!(scheduled["delete_at"].is_string(), "{scheduled}");
    let closed = mine.closed().await.expect("a close frame");
    assert_eq!(u16::from(closed.code), 4001);
    assert_eq!(mina.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(can_log_in(&node, "mina").await, StatusCode::UNAUTHORIZED);
    // Until the couple goes, my name stays taken, and nobody can take the break-up back.
    assert!(!is_free(&node, "mina").await);
    let (status, value) = joon.post("/api/couple/restore", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
    let (_, me) = joon.get("/api/me").await;
    assert_eq!(me["couple"]["delete_at"], scheduled["delete_at"]);

    // The grace period ends (moved to the past here): the couple goes, and my account with it.
    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    db.execute_unprepared("UPDATE couples SET delete_at = since")
        .await
        .expect("making the break-up due");
    let closed = theirs.closed().await.expect("a close frame");
    assert_eq!(u16::from(closed.code), 4002);
    let (_, me) = joon.get("/api/me").await;
    assert_eq!(me["couple"], serde_json::Value::Null);
    assert!(is_free(&node, "mina").await);
    let left = entity::users::Entity::find_by_id(mina.id)
        .count(&db)
        .await
        .expect("counting");
    assert_eq!(left, 0, "her row went with the couple");
}

/// Fullwidth letters, ligatures and other compatibility forms read as the plain name: they
/// are the same name (NFKC, then case), so nobody can sign up as a partner's look-alike.
async fn a_look_alike_username_is_the_same_name(backend: Backend) {
    let node = spawn_node(backend).await;
    User::signup(&node, "bob").await;
    User::signup(&node, "ﬁona").await;
    for look_alike in ["Ｂｏｂ", "ＢＯＢ", "fiona", "FIONA"] {
        let body = json!({ "username": look_alike, "password": PASSWORD });
        let (status, value, _) = request(
            Method::POST,
            &format!("{}/api/signup", node.base()),
            None,
            Some(body),
        )
        .await;
        assert_eq!(
            (status, value["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("username_taken")),
            "{look_alike}: {value}"
        );
        assert!(!is_free(&node, look_alike).await, "{look_alike}");
    }
    // The plain name logs in whichever form is typed.
    assert_eq!(can_log_in(&node, "Ｂｏｂ").await, StatusCode::OK);
    // A character whose normal form is not a username's (spaces, here) is refused.
    let body = json!({ "username": "ab\u{FDFA}", "password": PASSWORD });
    let (status, value, _) = request(
        Method::POST,
        &format!("{}/api/signup", node.base()),
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
}

/// Asking to pair with "Ｊｏｏｎ" asks the one joon there is, every time.
async fn a_pairing_request_to_a_look_alike_reaches_the_real_user(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let joon = User::signup(&node, "joon").await;
    let (status, body) = mina
        .post("/api/requests", json!({ "username": "Ｊｏｏｎ" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["request"]["to"]["id"], joon.id.to_string(), "{body}");
    let (status, body) = mina
        .post("/api/requests", json!({ "username": "ｊｏｏｎ" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate_request")),
        "{body}"
    );
}

/// The availability check tells whether an account exists: one address gets its share per
/// minute, then 429 with `Retry-After`.
async fn username_checks_are_rate_limited_per_address(backend: Backend) {
    let node = spawn_node_with(backend, &["--username-checks-per-addr=5"]).await;
    for i in 0..5 {
        assert!(is_free(&node, &format!("nobody{i}")).await);
    }
    let url = format!("{}/api/usernames/nobody5", node.base());
    let (status, value, headers) = request(Method::GET, &url, None, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{value}");
    assert_eq!(value["error"]["code"], "rate_limited");
    assert!(headers.contains_key("retry-after"));
}

/// Accounts from before the normal form get its keys when the node migrates; two old
/// look-alikes (which could sign up before) keep their old keys and both still log in.
async fn existing_accounts_get_the_new_username_keys(backend: Backend) {
    use migration::{Migrator, MigratorTrait};
    let db = TestDb::new(backend).await;
    let conn = duet::store::connect(&config(&db.url, db.data_dir(), &[]))
        .await
        .expect("connecting");
    // Every step before the keys changed.
    Migrator::up(&conn, Some(8)).await.expect("the old schema");
    let hash = password_auth::generate_hash(PASSWORD);
    for name in ["Ｍｉｎａ", "ﬁx", "Ｚｅｄ", "zed"] {
        entity::users::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            username: Set(name.to_owned()),
            username_key: Set(name.to_lowercase()),
            password_hash: Set(hash.clone()),
            created_at: Set(chrono::Utc::now()),
            deleted_at: Set(None),
        }
        .insert(&conn)
        .await
        .expect("an account of before");
    }
    let node = duet::start(config(&db.url, db.data_dir(), &[]))
        .await
        .expect("the node starts and migrates");
    let key = |name: &'static str| {
        let conn = conn.clone();
        async move {
            entity::users::Entity::find()
                .filter(entity::users::Column::Username.eq(name))
                .one(&conn)
                .await
                .expect("reading")
                .expect("the account")
                .username_key
        }
    };
    assert_eq!(key("Ｍｉｎａ").await, "mina");
    assert_eq!(key("ﬁx").await, "fix");
    assert_eq!(
        key("Ｚｅｄ").await,
        "ｚｅｄ",
        "a collision keeps its old key"
    );
    assert_eq!(key("zed").await, "zed");
    let login = |username: &'static str| {
        let url = format!("http://{}/api/login", node.addr());
        async move {
            let body = json!({ "username": username, "password": PASSWORD });
            let (status, value, _) = request(Method::POST, &url, None, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{username}: {value}");
            value["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    for (typed, account) in [
        ("mina", "Ｍｉｎａ"),
        ("ＭＩＮＡ", "Ｍｉｎａ"),
        ("fix", "ﬁx"),
        ("zed", "zed"),
        ("Ｚｅｄ", "Ｚｅｄ"),
    ] {
        assert_eq!(login(typed).await, account, "{typed}");
    }
    node.stop().await;
}

/// A login checks the password (an Argon2 hash, a while), then makes its session. Should the
/// password change in between, the session is not made: the account as verified is gone.
async fn a_login_verified_before_a_password_change_gets_no_session(backend: Backend) {
    let node = spawn_node(backend).await;
    let mina = User::signup(&node, "mina").await;
    let db = sea_orm::Database::connect(&node.db.url)
        .await
        .expect("the test database");
    // What a login read and verified, just before the change.
    let verified = duet::store::users::by_username(&db, "mina")
        .await
        .expect("reading the account")
        .expect("mina's account");
    let change = json!({ "old_password": PASSWORD, "new_password": "a new secret 1" });
    let (status, value) = mina.post("/api/password", change).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{value}");

    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let made = duet::store::users::create_session(&db, &verified, "a token's hash".into(), expires)
        .await
        .expect("the session query");
    assert_eq!(made, None, "a session for a password no longer current");
    let current = duet::store::users::by_username(&db, "mina")
        .await
        .expect("reading the account")
        .expect("mina's account");
    let made = duet::store::users::create_session(&db, &current, "another hash".into(), expires)
        .await
        .expect("the session query");
    assert!(made.is_some(), "the current password still logs in");
}
