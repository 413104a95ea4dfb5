//! Our words: counted per partner, Korean nouns without their particles, the left-out words
//! never ranking and shared live, a deleted chat's words taken out again.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    korean_nouns_count_without_their_particles_with_each_partners_count,
    excluded_words_never_rank_and_the_partner_sees_the_change_live,
    a_deleted_chat_no_longer_counts,
    a_long_history_is_counted_in_batches_to_the_same_numbers,
    only_a_counted_word_can_be_left_out,
    a_couple_leaves_out_at_most_the_configured_number_of_words,
    words_left_out_at_once_cannot_pass_the_limit,
);

async fn words(user: &User) -> Value {
    let (status, body) = user.get("/api/words").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["complete"], true, "{body}");
    body
}

/// `(count, mine, partner)` of a word, or `None` when it does not rank.
fn counts(body: &Value, word: &str) -> Option<(i64, i64, i64)> {
    body["words"].as_array()?.iter().find_map(|w| {
        (w["word"] == word).then(|| {
            (
                w["count"].as_i64().unwrap_or(-1),
                w["mine"].as_i64().unwrap_or(-1),
                w["partner"].as_i64().unwrap_or(-1),
            )
        })
    })
}

async fn korean_nouns_count_without_their_particles_with_each_partners_count(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    m.acked("산책을 하자").await;
    m.acked("산책이 최고야").await;
    j.acked("산책 좋아, Picnic too").await;
    j.acked("picnic PICNIC").await;

    let mine = words(&mina).await;
    assert_eq!(counts(&mine, "산책"), Some((3, 2, 1)), "{mine}");
    assert_eq!(counts(&mine, "picnic"), Some((3, 0, 3)));
    assert_eq!(counts(&mine, "산책을"), None);
    // Most used first; equal counts in word order.
    assert_eq!(mine["words"][0]["word"], "picnic");
    assert_eq!(mine["words"][1]["word"], "산책");
    let theirs = words(&joon).await;
    assert_eq!(counts(&theirs, "산책"), Some((3, 1, 2)));

    // Later chats are counted on the next look.
    m.acked("산책도").await;
    m.acked("산책에서").await;
    assert_eq!(counts(&words(&joon).await, "산책"), Some((5, 1, 4)));
    let (_, one) = mina.get("/api/words?limit=1").await;
    assert_eq!(one["words"].as_array().map(Vec::len), Some(1));
}

async fn excluded_words_never_rank_and_the_partner_sees_the_change_live(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    m.acked("ㅋㅋㅋ 산책을 가자 ㅋㅋㅋ").await;

    // As written, with its particle: left out as it is counted.
    let (status, body) = mina
        .put("/api/words/excluded/%EC%82%B0%EC%B1%85%EC%9D%84")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["excluded"], json!(["산책"]));
    let frame = j.until("excluded_words").await;
    assert_eq!(frame["words"], json!(["산책"]));
    let (_, body) = joon
        .put("/api/words/excluded/%E3%85%8B%E3%85%8B%E3%85%8B")
        .await;
    assert_eq!(body["excluded"], json!(["ㅋㅋㅋ", "산책"]));
    assert_eq!(
        j.until("excluded_words").await["words"],
        json!(["ㅋㅋㅋ", "산책"])
    );
    // Mina hears her own change first, then Joon's.
    assert_eq!(m.until("excluded_words").await["words"], json!(["산책"]));
    assert_eq!(
        m.until("excluded_words").await["words"],
        json!(["ㅋㅋㅋ", "산책"])
    );

    let now = words(&mina).await;
    assert_eq!(counts(&now, "산책"), None, "{now}");
    assert_eq!(counts(&now, "ㅋㅋㅋ"), None);
    assert_eq!(counts(&now, "가자"), Some((1, 1, 0)));
    assert_eq!(now["excluded"], json!(["ㅋㅋㅋ", "산책"]));

    // Taken back in, it ranks again, for both.
    let (status, body) = mina.delete("/api/words/excluded/%EC%82%B0%EC%B1%85").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(j.until("excluded_words").await["words"], json!(["ㅋㅋㅋ"]));
    assert_eq!(counts(&words(&joon).await, "산책"), Some((1, 0, 1)));
    let (status, body) = mina.delete("/api/words/excluded/%EC%82%B0%EC%B1%85").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Another couple has its own list.
    let (sora, hana) = (
        User::signup(&node, "sora").await,
        User::signup(&node, "hana").await,
    );
    pair(&sora, &hana).await;
    assert_eq!(words(&sora).await["excluded"], json!([]));
}

async fn a_deleted_chat_no_longer_counts(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let counted = m.acked("picnic blanket").await;
    m.acked("picnic basket").await;
    assert_eq!(counts(&words(&joon).await, "picnic"), Some((2, 0, 2)));
    assert_eq!(counts(&words(&joon).await, "blanket"), Some((1, 0, 1)));

    // Deleted after it was counted: taken out again.
    m.send(json!({ "type": "delete", "chat_id": counted["id"] }))
        .await;
    m.until("deleted").await;
    // Deleted before it was ever counted: never counted.
    let uncounted = m.acked("picnic umbrella").await;
    m.send(json!({ "type": "delete", "chat_id": uncounted["id"] }))
        .await;
    m.until("deleted").await;

    let now = words(&joon).await;
    assert_eq!(counts(&now, "picnic"), Some((1, 0, 1)), "{now}");
    assert_eq!(counts(&now, "blanket"), None);
    assert_eq!(counts(&now, "umbrella"), None);
}

async fn a_long_history_is_counted_in_batches_to_the_same_numbers(backend: Backend) {
    let node = spawn_node_with(backend, &["--words-batch", "3"]).await;
    let (mina, joon) = couple(&node).await;
    let (mut m, mut j) = (mina.socket().await, joon.socket().await);
    for i in 0..7 {
        m.acked(&format!("picnic number{i}")).await;
        j.acked("picnic").await;
    }
    let body = words(&mina).await;
    assert_eq!(counts(&body, "picnic"), Some((14, 7, 7)), "{body}");
    assert_eq!(counts(&body, "number3"), Some((1, 1, 0)));
    j.acked("picnic").await;
    assert_eq!(counts(&words(&mina).await, "picnic"), Some((15, 7, 8)));
}

async fn only_a_counted_word_can_be_left_out(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    for word in ["x", "12345", "two%20words", "the"] {
        let (status, body) = mina.put(&format!("/api/words/excluded/{word}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{word}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input");
    }
    let single = User::signup(&node, "single").await;
    let (status, body) = single.put("/api/words/excluded/picnic").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = single.get("/api/words").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = mina.get("/api/words?limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_couple_leaves_out_at_most_the_configured_number_of_words(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-excluded-words", "2"]).await;
    let (mina, joon) = couple(&node).await;
    for word in ["picnic", "kite"] {
        let (status, body) = mina.put(&format!("/api/words/excluded/{word}")).await;
        assert_eq!(status, StatusCode::OK, "{word}: {body}");
    }
    let (status, body) = joon.put("/api/words/excluded/umbrella").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    assert_eq!(
        words(&mina).await["excluded"],
        json!(["kite", "picnic"]),
        "nothing was kept"
    );
    // Taking one back makes room again.
    mina.delete("/api/words/excluded/kite").await;
    let (status, _) = joon.put("/api/words/excluded/umbrella").await;
    assert_eq!(status, StatusCode::OK);
}

async fn words_left_out_at_once_cannot_pass_the_limit(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-excluded-words", "3"]).await;
    let (mina, joon) = couple(&node).await;
    let words = [
        "picnic", "kite", "umbrella", "river", "train", "museum", "garden", "beach",
    ];
    let puts = words.iter().enumerate().map(|(i, word)| {
        let who = if i % 2 == 0 { &mina } else { &joon };
        async move { who.put(&format!("/api/words/excluded/{word}")).await.0 }
    });
    let statuses = futures_util::future::join_all(puts).await;
    let kept = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(kept, 3, "exactly the limit was left out: {statuses:?}");
    let (_, body) = mina.get("/api/words").await;
    assert_eq!(body["excluded"].as_array().map(Vec::len), Some(3), "{body}");
}

/// An edit decided while a look at our words is counting the couple waits for that count:
/// the count took in the chat's old text, so the edit takes it out again and puts the new
/// one in. Here a test connection counts "picnic" (as a look does, holding the couple's word
/// mark) while the edit to "umbrella" arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_the_words_are_being_counted_is_counted_as_edited() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let node = spawn_node(Backend::Postgres).await;
    let (mina, _joon) = couple(&node).await;
    let mut m = mina.socket().await;
    m.acked("kite").await;
    // A first look: the couple's mark exists and stands at the kite.
    assert_eq!(counts(&words(&mina).await, "kite"), Some((1, 1, 0)));
    let chat = m.acked("picnic").await;
    let couple_id = m.hello["couple_id"].as_str().unwrap_or_default().to_owned();
    let db = sea_orm::Database::connect(node.db.url.as_str())
        .await
        .expect("a connection of the test's own");
    let count = db.begin().await.expect("a transaction");
    count
        .execute_unprepared(&format!(
            "UPDATE word_marks SET counted_seq = 2 WHERE couple_id = '{couple_id}';
             INSERT INTO word_counts (couple_id, word, user_id, count)
                 VALUES ('{couple_id}', 'picnic', '{}', 1)",
            mina.id
        ))
        .await
        .expect("counting the chat");
    let edit = json!({ "type": "edit", "client_id": uuid::Uuid::new_v4(), "chat_id": chat["id"], "text": "umbrella" });
    m.send(edit).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    count.commit().await.expect("the count ends");
    let answer = m.until_any(&["ack", "error"]).await;
    assert_eq!(answer["type"], "ack", "{answer}");

    let now = words(&mina).await;
    assert_eq!(counts(&now, "umbrella"), Some((1, 1, 0)), "{now}");
    assert_eq!(counts(&now, "picnic"), None, "{now}");
}
