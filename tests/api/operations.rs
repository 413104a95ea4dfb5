//! What operators see: metrics on a listener of their own, never beside the public API.

use reqwest::StatusCode;

use crate::support::*;

/// `/metrics` tells anyone how busy a node is and how its partners' sockets come and go: it
/// is served on `DUET_METRICS_BIND` only, never on the API's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_only() {
    let node = spawn_node(Backend::Sqlite).await;
    let metrics = node.metrics.expect("a metrics listener");
    assert_ne!(metrics.port(), node.addr.port());

    let (status, body, _) = request(
        reqwest::Method::GET,
        &format!("{}/metrics", node.base()),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the API's port: {body}");

    let text = reqwest::get(node.metrics_url())
        .await
        .expect("the metrics listener answers")
        .text()
        .await
        .expect("metrics text");
    assert!(text.contains("duet_sockets_open"), "{text}");
    // And nothing of the API is served there.
    let me = reqwest::get(format!("http://{metrics}/api/me"))
        .await
        .expect("the metrics listener answers");
    assert_eq!(me.status(), StatusCode::NOT_FOUND);
}

/// `off` serves none; a port that is taken costs the metrics, not the node; the API's own port
/// is refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_port_that_is_off_or_taken_never_stops_the_node() {
    let off = spawn_node_with(Backend::Sqlite, &["--metrics-bind=off"]).await;
    assert_eq!(off.metrics, None);
    assert_eq!(
        reqwest::get(format!("{}/healthz", off.base()))
            .await
            .expect("the node answers")
            .status(),
        StatusCode::OK
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("its address").port();
    let flag = format!("--metrics-bind=127.0.0.1:{port}");
    let node = spawn_node_with(Backend::Sqlite, &[&flag]).await;
    assert_eq!(node.metrics, None);
    assert_eq!(
        reqwest::get(format!("{}/healthz", node.base()))
            .await
            .expect("the node answers")
            .status(),
        StatusCode::OK
    );

    let db = TestDb::new(Backend::Sqlite).await;
    let same = config(&db.url, db.data_dir(), &["--metrics-bind=127.0.0.1:18931"]);
    let same = duet::config::Config {
        bind: "127.0.0.1:18931".parse().expect("an address"),
        ..same
    };
    assert!(
        duet::start(same).await.is_err(),
        "metrics on the API's port"
    );
}

/// With the database gone, `/readyz` says so at once: an orchestrator's probe gives up after
/// a second, sooner than a ping to a database that does not answer. It comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_answered_at_once_when_the_database_is_down() {
    use std::time::{Duration, Instant};
    let mut pg = crate::private_pg::PrivatePostgres::start().await;
    let db = TestDb::existing(&pg.url());
    let node = duet::start(config(&db.url, db.data_dir(), &["--db-timeout-ms=2000"]))
        .await
        .expect("the node starts");
    let readyz = format!("http://{}/readyz", node.addr());
    let probe = || async {
        let started = Instant::now();
        let status = reqwest::get(&readyz)
            .await
            .expect("the node answers")
            .status();
        (status, started.elapsed())
    };
    assert_eq!(probe().await.0, StatusCode::OK);

    pg.stop().await;
    // The background check notices within its period plus the database timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut slowest = Duration::ZERO;
    loop {
        let (status, took) = probe().await;
        slowest = slowest.max(took);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never 503 with the database down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..5 {
        let (status, took) = probe().await;
        slowest = slowest.max(took);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "/readyz took {slowest:?} with the database down (a probe gives up after 1 s)"
    );

    pg.resume().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while probe().await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.stop().await;
}
