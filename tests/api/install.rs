//! The installable app: a manifest a browser accepts with the icons it declares, and a service
//! worker that keeps the app shell of this version, whose version follows the assets and is
//! the same on every node serving them (a client moved between nodes never sees it flip).

use std::path::Path;

use serde_json::Value;

use crate::support::*;

async fn get(url: String) -> reqwest::Response {
    reqwest::get(url).await.expect("requesting")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The shell written above the worker's script: `{ version, files }`.
async fn shell(base: &str) -> (Value, String) {
    let response = get(format!("{base}/sw.js")).await;
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type").starts_with("text/javascript"),
        "{:?}",
        response.headers()
    );
    assert_eq!(
        header(&response, "cache-control"),
        "no-cache",
        "a cache in between would hide a deploy from the browsers"
    );
    let body = response.text().await.expect("the worker");
    let first = body.lines().next().unwrap_or_default();
    let json = first
        .strip_prefix("const SHELL = ")
        .and_then(|rest| rest.strip_suffix(';'))
        .unwrap_or_else(|| panic!("the worker starts with its shell: {first}"));
    (serde_json::from_str(json).expect("the shell is JSON"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_makes_the_app_installable_with_the_icons_it_declares() {
    let node = spawn_node(Backend::Sqlite).await;
    let page = get(node.base()).await.text().await.expect("the page");
    assert!(
        page.contains(r#"<link rel="manifest" href="/manifest.webmanifest">"#),
        "the page links its manifest"
    );
    let response = get(format!("{}/manifest.webmanifest", node.base())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/manifest+json"
    );
    let manifest: Value = response.json().await.expect("the manifest is JSON");
    for key in [
        "name",
        "short_name",
        "start_url",
        "scope",
        "lang",
        "theme_color",
        "background_color",
    ] {
        assert!(
            manifest[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {manifest}"
        );
    }
    assert_eq!(manifest["display"], "standalone");

    let icons = manifest["icons"].as_array().expect("icons");
    let largest = |purpose: &str| {
        icons
            .iter()
            .filter(|i| i["purpose"] == purpose)
            .filter_map(|i| i["sizes"].as_str())
            .filter_map(|s| s.split_once('x')?.0.parse::<usize>().ok())
            .max()
            .unwrap_or(0)
    };
    assert!(largest("any") >= 512, "an icon of 512 px: {manifest}");
    assert!(largest("maskable") >= 512, "a maskable icon: {manifest}");
    for icon in icons {
        let src = icon["src"].as_str().expect("src");
        let response = get(format!("{}{src}", node.base())).await;
        assert_eq!(response.status(), 200, "{src}");
        assert_eq!(header(&response, "content-type"), icon["type"], "{src}");
        let bytes = response.bytes().await.expect("the icon");
        let size = imagesize::blob_size(&bytes).expect("an image");
        assert_eq!(
            format!("{}x{}", size.width, size.height),
            icon["sizes"].as_str().unwrap_or_default(),
            "{src} is the size it says"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_worker_keeps_every_file_of_the_shell_and_nothing_live() {
    let node = spawn_node(Backend::Sqlite).await;
    let (shell, body) = shell(&node.base()).await;
    let version = shell["version"].as_str().expect("a version");
    assert_eq!(version.len(), 16, "{version}");
    let files: Vec<&str> = shell["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for needed in [
        "/",
        "/index.html",
        "/app.js",
        "/style.css",
        "/manifest.webmanifest",
    ] {
        assert!(files.contains(&needed), "{needed} in {files:?}");
    }
    assert!(
        !files
            .iter()
            .any(|f| *f == "/sw.js" || f.starts_with("/api/")),
        "the worker and the API are never kept: {files:?}"
    );
    // Installing keeps all of them or none (`cache.addAll`): one missing file and the app
    // never works offline.
    for file in &files {
        let response = get(format!("{}{file}", node.base())).await;
        assert_eq!(response.status(), 200, "{file}");
    }
    assert!(
        body.contains("addEventListener('fetch'"),
        "the worker serves the shell"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_changes_an_asset_is_a_new_version_the_same_on_every_node() {
    let assets = tempfile::tempdir().expect("a directory");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"),
        assets.path(),
    );
    let db = TestDb::new(Backend::Sqlite).await;
    let start = |dir: &Path| {
        let mut config = config(&db.url, db.data_dir(), &[]);
        config.assets_dir = dir.to_owned();
        duet::start(config)
    };
    let one = start(assets.path()).await.expect("a node");
    let two = start(assets.path()).await.expect("another node");
    let (_, worker_one) = shell(&format!("http://{}", one.addr())).await;
    let (_, worker_two) = shell(&format!("http://{}", two.addr())).await;
    assert_eq!(
        worker_one, worker_two,
        "two nodes with the same assets serve the same worker, byte for byte"
    );

    let css = assets.path().join("style.css");
    let mut changed = std::fs::read_to_string(&css).expect("the style");
    changed.push_str("\n/* a deploy */\n");
    std::fs::write(&css, changed).expect("changing the style");
    let three = start(assets.path())
        .await
        .expect("a node of the new deploy");
    let (before, _) = shell(&format!("http://{}", one.addr())).await;
    let (after, _) = shell(&format!("http://{}", three.addr())).await;
    assert_ne!(
        before["version"], after["version"],
        "a changed asset is a new version, so browsers install it"
    );
    for node in [one, two, three] {
        node.stop().await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("reading the assets") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            std::fs::create_dir_all(&target).expect("a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying");
        }
    }
}
