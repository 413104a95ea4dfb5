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
