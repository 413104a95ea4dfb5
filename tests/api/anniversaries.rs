//! Anniversaries and D-day: day one defaults to the pairing day, either partner changes it
//! and both see it live; milestones and our own dates with D-counts, next first; calendar
//! dates in the couple's time zone.

use chrono::{Days, NaiveDate};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    day_one_is_the_pairing_day_until_either_partner_changes_it_live,
    our_own_dates_are_listed_with_d_counts_next_first,
    only_we_can_remove_our_dates,
    impossible_dates_and_zones_are_refused,
    a_couple_keeps_at_most_the_configured_number_of_dates,
    dates_added_at_once_cannot_pass_the_limit,
);

fn date(value: &Value) -> NaiveDate {
    value.as_str().and_then(|s| s.parse().ok()).expect("a date")
}

async fn day_one_is_the_pairing_day_until_either_partner_changes_it_live(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (status, calendar) = mina.get("/api/anniversaries").await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    assert_eq!(calendar["time_zone"], "UTC");
    assert_eq!(calendar["started_on"], calendar["today"]);
    assert_eq!(calendar["days_together"], 1);
    assert_eq!(calendar["upcoming"][0]["title"], "100 days");
    assert_eq!(calendar["upcoming"][0]["label"], "D-99");

    let mut j = joon.socket().await;
    let (status, calendar) = mina
        .patch("/api/anniversaries", json!({ "time_zone": "Asia/Seoul" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    assert_eq!(j.until("anniversaries").await["time_zone"], "Asia/Seoul");
    // The 100th day is today when day one was 99 days ago.
    let today = date(&calendar["today"]);
    let day_one = today.checked_sub_days(Days::new(99)).unwrap();
    let (status, calendar) = mina
        .patch("/api/anniversaries", json!({ "started_on": day_one }))
        .await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    assert_eq!(calendar["days_together"], 100);
    let live = j.until("anniversaries").await;
    assert_eq!(live["started_on"], day_one.to_string());
    assert_eq!(live["days_together"], 100);
    assert_eq!(live["upcoming"][0]["title"], "100 days");
    assert_eq!(live["upcoming"][0]["label"], "D-day");
    assert_eq!(live["upcoming"][0]["days_from_today"], 0);

    // Joon changes it back; Mina's read shows his change.
    let (status, _) = joon
        .patch("/api/anniversaries", json!({ "started_on": today }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, calendar) = mina.get("/api/anniversaries").await;
    assert_eq!(calendar["days_together"], 1);
    assert_eq!(calendar["time_zone"], "Asia/Seoul");
}

async fn our_own_dates_are_listed_with_d_counts_next_first(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (_, calendar) = mina.get("/api/anniversaries").await;
    let today = date(&calendar["today"]);
    let soon = today.checked_add_days(Days::new(10)).unwrap();
    let past = today.checked_sub_days(Days::new(3)).unwrap();
    let last_year = today.checked_sub_days(Days::new(360)).unwrap();

    let mut j = joon.socket().await;
    let (status, added) = mina
        .post(
            "/api/anniversaries/dates",
            json!({ "title": "concert", "date": soon, "yearly": false }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["title"], "concert");
    let live = j.until("anniversaries").await;
    assert_eq!(live["dates"][0]["id"], added["id"]);
    mina.post(
        "/api/anniversaries/dates",
        json!({ "title": "moved in", "date": past }),
    )
    .await;
    j.until("anniversaries").await;
    mina.post(
        "/api/anniversaries/dates",
        json!({ "title": "first kiss", "date": last_year, "yearly": true }),
    )
    .await;
    let live = j.until("anniversaries").await;

    let upcoming = live["upcoming"].as_array().unwrap();
    let labels: Vec<(&str, &str)> = upcoming
        .iter()
        .map(|u| (u["title"].as_str().unwrap(), u["label"].as_str().unwrap()))
        .collect();
    // A yearly date from 360 days ago comes round again in 5 (or 6, over a leap day).
    let kiss = upcoming
        .iter()
        .find(|u| u["title"] == "first kiss")
        .unwrap();
    let kiss_in = kiss["days_from_today"].as_i64().unwrap();
    assert!((5..=6).contains(&kiss_in), "{kiss}");
    assert_eq!(labels[0], ("first kiss", &*format!("D-{kiss_in}")));
    assert_eq!(labels[1], ("concert", "D-10"));
    assert!(labels.contains(&("moved in", "D+3")), "{labels:?}");
    // Upcoming first (soonest first), then the past.
    let d: Vec<i64> = upcoming
        .iter()
        .map(|u| u["days_from_today"].as_i64().unwrap())
        .collect();
    let split = d.iter().position(|d| *d < 0).unwrap_or(d.len());
    assert!(d[..split].windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    assert!(d[split..].iter().all(|d| *d < 0), "{d:?}");
    assert!(d[split..].windows(2).all(|w| w[0] >= w[1]), "{d:?}");
}

async fn only_we_can_remove_our_dates(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let (sora, hana) = (
        User::signup(&node, "sora").await,
        User::signup(&node, "hana").await,
    );
    pair(&sora, &hana).await;
    let (_, added) = mina
        .post(
            "/api/anniversaries/dates",
            json!({ "title": "ours", "date": "2024-05-05" }),
        )
        .await;
    let path = format!("/api/anniversaries/dates/{}", added["id"].as_str().unwrap());

    let (status, body) = sora.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = joon.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = joon.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, calendar) = mina.get("/api/anniversaries").await;
    assert_eq!(calendar["dates"], json!([]));
    let (status, _) = mina.delete("/api/anniversaries/dates/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn impossible_dates_and_zones_are_refused(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    for body in [
        json!({}),
        json!({ "started_on": "2199-01-01" }),
        json!({ "started_on": "2026-02-30" }),
        json!({ "time_zone": "Mars/Olympus" }),
    ] {
        let (status, answer) = mina.patch("/api/anniversaries", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input");
    }
    for body in [
        json!({ "title": " ", "date": "2026-01-01" }),
        json!({ "title": "x".repeat(101), "date": "2026-01-01" }),
        json!({ "title": "ok", "date": "1066-10-14" }),
        json!({ "title": "ok", "date": "tomorrow" }),
    ] {
        let (status, answer) = mina.post("/api/anniversaries/dates", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input");
    }
    let (_, calendar) = mina.get("/api/anniversaries").await;
    assert_eq!(calendar["dates"], json!([]), "nothing was kept");
    let single = User::signup(&node, "single").await;
    let (status, _) = single.get("/api/anniversaries").await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn a_couple_keeps_at_most_the_configured_number_of_dates(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-couple-dates", "1"]).await;
    let (mina, joon) = couple(&node).await;
    let first = json!({ "title": "first", "date": "2024-05-05" });
    let (status, added) = mina.post("/api/anniversaries/dates", first).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let second = json!({ "title": "second", "date": "2024-06-06" });
    let (status, body) = joon.post("/api/anniversaries/dates", second.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    let path = format!("/api/anniversaries/dates/{}", added["id"].as_str().unwrap());
    joon.delete(&path).await;
    let (status, _) = joon.post("/api/anniversaries/dates", second).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn dates_added_at_once_cannot_pass_the_limit(backend: Backend) {
    let node = spawn_node_with(backend, &["--max-couple-dates", "3"]).await;
    let (mina, joon) = couple(&node).await;
    let adds = (0..12).map(|i| {
        let who = if i % 2 == 0 { &mina } else { &joon };
        let body = json!({ "title": format!("date {i}"), "date": "2024-05-05" });
        async move { who.post("/api/anniversaries/dates", body).await.0 }
    });
    let statuses = futures_util::future::join_all(adds).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 3, "exactly the limit was added: {statuses:?}");
    let (_, calendar) = mina.get("/api/anniversaries").await;
    assert_eq!(
        calendar["dates"].as_array().map(Vec::len),
        Some(3),
        "{calendar}"
    );
}
