//! The REST API documents itself: the OpenAPI document generated from the handlers is what
//! the node serves at /api/openapi.json and what docs/openapi.json holds, so the committed
//! document can never drift from the code. After changing an endpoint, regenerate it with
//! `DUET_WRITE_OPENAPI=1 cargo test openapi`.

use std::path::Path;

use crate::support::*;

fn committed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

#[test]
fn the_committed_openapi_document_is_the_one_the_code_generates() {
    let generated = duet::http::openapi::document();
    if std::env::var_os("DUET_WRITE_OPENAPI").is_some() {
        std::fs::write(committed(), &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json differs from what the handlers generate: regenerate it with \
         `DUET_WRITE_OPENAPI=1 cargo test openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/signup",
        "/api/requests/{id}/accept",
        "/api/chats",
        "/api/files",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_openapi_document_without_a_session() {
    let node = spawn_node(Backend::Sqlite).await;
    let url = format!("{}/api/openapi.json", node.base());
    let (status, body, headers) = request(reqwest::Method::GET, &url, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        serde_json::from_str::<serde_json::Value>(&duet::http::openapi::document()).unwrap()
    );
}
