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
    let mut found = Vec::new();
    files_under(assets, assets, &mut found)?;
    found.sort();
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

/// Every file under `dir` as (URL path, file path), skipping hidden ones.
fn files_under(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            files_under(root, &path, found)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let url = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push((format!("/{url}"), path));
        }
    }
    Ok(())
}
