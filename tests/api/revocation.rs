//! Revocation that does not ride on the bus: a logout, a password change, an account deletion
//! or a break-up that falls due is pushed to the sockets it ends, but that push can be lost
//! (a full publish queue, a node killed between commit and publish). The socket's periodic
//! catch-up reads the session and the couple again, so it closes within one ping interval
//! all the same. Here the database is changed behind the node's back, or by a node whose bus
//! the socket's node does not hear, so no push ever arrives.

use std::time::Duration;

use chrono::Utc;
use entity::{couples, sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_socket_whose_session_row_is_gone_closes_with_4001_within_a_tick,
    a_socket_whose_session_expired_in_the_database_closes_with_4001,
    a_password_change_whose_doorbell_was_lost_still_closes_the_other_sessions_socket,
    a_socket_of_a_deleted_account_closes_with_4001,
    a_socket_of_a_deleted_couple_closes_with_4002_and_never_reads_seq_0,
);

/// The ping interval the nodes here run with: the catch-up tick.
const TICK: &str = "--ping-secs=1";
/// How soon after the change a socket must be closed: one tick, plus room for a busy machine.
const BOUND: Duration = Duration::from_secs(3);

async fn database(node: &TestNode) -> DatabaseConnection {
    Database::connect(&node.db.url)
        .await
        .expect("the test database")
}

/// A healthy socket is not closed by the check: it stays through a few ticks and still
/// sends and receives.
async fn still_serves(mine: &mut Socket, theirs: &mut Socket, text: &str) {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    mine.acked(text).await;
    assert_eq!(theirs.until_text(text).await["text"], text);
}

async fn a_socket_whose_session_row_is_gone_closes_with_4001_within_a_tick(backend: Backend) {
    let node = spawn_node_with(backend, &[TICK]).await;
    let (mina, joon) = couple(&node).await;
    let phone = User::login_at(node.addr, "mina").await;
    let mut laptop_socket = mina.socket().await;
    let mut phone_socket = phone.socket().await;
    let mut theirs = joon.socket().await;
    let db = database(&node).await;

    // A logout of the laptop whose message was lost: its row is gone, nothing was published.
    let since = Instant::now();
    let laptop = format!("{:x}", Sha256::digest(mina.token.as_bytes()));
    let deleted = sessions::Entity::delete_many()
        .filter(sessions::Column::TokenHash.eq(laptop))
        .exec(&db)
        .await
        .expect("deleting the laptop's session");
    assert_eq!(deleted.rows_affected, 1);
    let (code, _) = laptop_socket.closed_by(since + BOUND).await;
    assert_eq!(code, 4001);
    assert_eq!(
        mina.get("/api/me").await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );

    // Her phone's session and her partner's stand: their sockets go on, tick after tick.
    still_serves(&mut phone_socket, &mut theirs, "still here").await;
    still_serves(&mut theirs, &mut phone_socket, "me too").await;
}

async fn a_socket_whose_session_expired_in_the_database_closes_with_4001(backend: Backend) {
    let node = spawn_node_with(backend, &[TICK]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let db = database(&node).await;

    // The socket knows the expiry it opened with (30 days); the row now says otherwise.
    let since = Instant::now();
    sessions::Entity::update_many()
        .col_expr(
            sessions::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(sessions::Column::UserId.eq(mina.id))
        .exec(&db)
        .await
        .expect("expiring her session");
    let (code, _) = mine.closed_by(since + BOUND).await;
    assert_eq!(code, 4001);
    theirs.acked("still here").await;
}

async fn a_password_change_whose_doorbell_was_lost_still_closes_the_other_sessions_socket(
    backend: Backend,
) {
    let node = spawn_node_with(backend, &[TICK]).await;
    // A second node on the same database, without a bus in common: nothing published on
    // the first ever reaches it, as if every message were lost.
    let deaf = duet::start(config(&node.db.url, node.db.data_dir(), &[TICK]))
        .await
        .expect("the second node starts");
    let (mina, joon) = couple(&node).await;
    let phone = User::login_at(deaf.addr(), "mina").await;
    let mut phone_socket = phone.socket().await;
    let mut partner = joon.on(deaf.addr()).socket().await;
    let mut laptop_socket = mina.socket().await;

    let since = Instant::now();
    let change = json!({ "old_password": PASSWORD, "new_password": "a new secret 1" });
    let (status, value) = mina.post("/api/password", change).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{value}");
    let (code, _) = phone_socket.closed_by(since + BOUND).await;
    assert_eq!(code, 4001);
    // The session that changed it goes on, and so does the partner on the deaf node (who
    // hears it at the next catch-up: no bus between the two).
    still_serves(&mut laptop_socket, &mut partner, "new password, same me").await;
    deaf.stop().await;
}

async fn a_socket_of_a_deleted_account_closes_with_4001(backend: Backend) {
    let node = spawn_node_with(backend, &[TICK]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let db = database(&node).await;

    // Marked deleted while her session row is still there (its deletion and the push lost).
    let since = Instant::now();
    users::Entity::update_many()
        .col_expr(users::Column::DeletedAt, Expr::value(Some(Utc::now())))
        .filter(users::Column::Id.eq(mina.id))
        .exec(&db)
        .await
        .expect("marking her account deleted");
    let (code, _) = mine.closed_by(since + BOUND).await;
    assert_eq!(code, 4001);
    theirs.acked("still here").await;
}

async fn a_socket_of_a_deleted_couple_closes_with_4002_and_never_reads_seq_0(backend: Backend) {
    let node = spawn_node_with(backend, &[TICK]).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    mine.acked("before the end").await;
    for socket in [&mut mine, &mut theirs] {
        socket.until_text("before the end").await;
    }
    let couple_id: Uuid = mine.hello["couple_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a couple id");
    let db = database(&node).await;

    // The break-up fell due on another node, which died before telling anyone.
    let since = Instant::now();
    couples::Entity::delete_by_id(couple_id)
        .exec(&db)
        .await
        .expect("deleting the couple");
    for socket in [&mut mine, &mut theirs] {
        let (code, texts) = socket.closed_by(since + BOUND).await;
        assert_eq!(code, 4002);
        // Nothing as if the conversation had started over at seq 0.
        assert!(
            texts
                .iter()
                .all(|t| t["last_seq"].is_null() && t["seq"].is_null()),
            "frames before the close: {texts:?}"
        );
    }
    // And no new socket reads it as an empty couple either.
    let refused = mina.try_socket("/ws", None).await.err().expect("refused");
    assert_eq!(refused.0, 409);
}
