//! The installable app's service worker, `/sw.js`: `assets/sw.js` with the app shell written
//! above it (a version and the files to keep). The version is a digest of every file in the
//! assets directory, so a deploy that changes any of them changes the worker's bytes, which is
//! how a browser learns of a new version; and every node of a cluster serving the same assets
//! serves the same worker, so a client moved between nodes never sees versions flip.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use sha2::{Digest, Sha256};
use walkdir::WalkDir;

use crate::state::AppState;

/// The worker's file in the assets and its URL. The worker itself is never kept: it is how a
/// new version is found.
const WORKER: &str = "sw.js";
const WORKER_URL: &str = "/sw.js";

/// What the service worker keeps, as the page at `/` and the files it loads.
#[derive(Serialize)]
struct Shell {
    version: String,
    files: Vec<String>,
}

/// Serves `/sw.js`, built once from the assets directory at start. Without `assets/sw.js`
/// there is no worker to serve (404) and the app runs as a plain page.
pub(crate) fn router(assets: &Path) -> Router<AppState> {
    match worker(assets) {
        Ok(body) => {
            let serve = move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/javascript; charset=utf-8"),
                            ),
                            // Browsers look for a new worker on every visit; a cache in between
                            // would hide a deploy.
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                        ],
                        body,
                    )
                        .into_response()
                }
            };
            Router::new().route(WORKER_URL, get(serve))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no service worker: the app cannot be installed");
            Router::new()
        }
    }
}

fn worker(assets: &Path) -> std::io::Result<String> {
    let script = std::fs::read_to_string(assets.join(WORKER))?;
    let found = files_under(assets)?;
    let mut digest = Sha256::new();
    for (url, path) in &found {
        digest.update(url.as_bytes());
        digest.update([0]);
        digest.update(std::fs::read(path)?);
    }
    let version = format!("{:x}", digest.finalize())[..16].to_owned();
    let mut files = vec!["/".to_owned()];
    files.extend(
        found
            .into_iter()
            .map(|(url, _)| url)
            .filter(|url| url != WORKER_URL),
    );
    let shell = serde_json::to_string(&Shell { version, files }).map_err(std::io::Error::other)?;
    Ok(format!("const SHELL = {shell};\n{script}"))
}

/// Every file under `root` as (URL path, file path), skipping hidden ones, following links (an
/// operator may link assets in).
fn files_under(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let hidden =
        |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
    let mut found = Vec::new();
    for entry in WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| !hidden(e))
    {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        if let Ok(relative) = entry.path().strip_prefix(root) {
            let url = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push((format!("/{url}"), entry.into_path()));
        }
    }
    found.sort();
    Ok(found)
}
