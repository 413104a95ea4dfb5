//! On this day: chats of the same calendar day in earlier years, found for the couple only.

use chrono::{Duration, Months, Utc};
use entity::chats;
use reqwest::StatusCode;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::both_backends;
use crate::support::*;

both_backends!(
    this_day_in_earlier_years_shows_its_chats_most_recent_year_first,
    a_couple_with_nothing_on_this_day_is_shown_nothing,
);

async fn memories(user: &User) -> Value {
    let (status, body) = user.get("/api/memories").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn texts(day: &Value) -> Vec<&str> {
    day["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect()
}

async fn this_day_in_earlier_years_shows_its_chats_most_recent_year_first(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut m = mina.socket().await;
    let now = Utc::now();
    let year_ago = now.checked_sub_months(Months::new(12)).unwrap();
    // Sent in this order, so seqs and times agree, as they do for chats sent for real.
    let dated = [
        (
            "재작년 오늘",
            now.checked_sub_months(Months::new(24)).unwrap(),
        ),
        ("작년 어제", year_ago - Duration::days(1)),
        ("작년 오늘", year_ago),
        ("작년 오늘 또", year_ago + Duration::minutes(1)),
        ("작년 내일", year_ago + Duration::days(1)),
        ("어제", now - Duration::days(1)),
    ];
    let db = Database::connect(&node.db.url).await.unwrap();
    for (text, at) in dated {
        let ack = m.acked(text).await;
        let id: uuid::Uuid = ack["id"].as_str().unwrap().parse().unwrap();
        chats::Entity::update_many()
            .col_expr(chats::Column::SentAt, Expr::value(at))
            .filter(chats::Column::Id.eq(id))
            .exec(&db)
            .await
            .unwrap();
    }
    m.acked("오늘").await;

    let body = memories(&joon).await;
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{body}");
    assert_eq!(days[0]["years_ago"], 1);
    assert_eq!(texts(&days[0]), ["작년 오늘", "작년 오늘 또"]);
    assert_eq!(days[1]["years_ago"], 2);
    assert_eq!(texts(&days[1]), ["재작년 오늘"]);
    assert_eq!(
        days[0]["date"].as_str().unwrap()[5..],
        body["today"].as_str().unwrap()[5..]
    );
    // The first chat's seq opens the conversation that day.
    assert_eq!(days[0]["chats"][0]["seq"], 3);
}

async fn a_couple_with_nothing_on_this_day_is_shown_nothing(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    assert_eq!(memories(&mina).await["days"], serde_json::json!([]));
    let mut m = mina.socket().await;
    m.acked("오늘만").await;
    assert_eq!(memories(&mina).await["days"], serde_json::json!([]));
    let loner = User::signup(&node, "sora").await;
    assert_eq!(loner.get("/api/memories").await.0, StatusCode::CONFLICT);
}
