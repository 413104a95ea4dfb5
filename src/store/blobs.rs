//! Where file bytes live. Nodes of a cluster must all see the same blobs: the local-directory
//! store serves one host (or several sharing a volume); an object store (S3 and the like)
//! would implement the same trait, with `serve` answering a redirect to a signed URL.

use std::io;
use std::path::PathBuf;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tower_http::services::ServeFile;
use uuid::Uuid;

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Starts a new blob under a generated name.
    async fn create(&self) -> io::Result<Box<dyn BlobWriter>>;
    /// Removes a blob; a blob already gone is not an error (sweepers on every node race).
    async fn delete(&self, blob: &str) -> io::Result<()>;
    /// Answers a download, honouring `Range` and conditional headers.
    async fn serve(&self, blob: &str, headers: &HeaderMap) -> io::Result<Response>;
    /// Reads a blob from its start (the export copies it into the archive).
    async fn open(&self, blob: &str) -> io::Result<Box<dyn AsyncRead + Send + Unpin>>;
}

#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Makes the blob visible under its name, which is returned.
    async fn finish(self: Box<Self>) -> io::Result<String>;
    /// Throws away what was written.
    async fn abort(self: Box<Self>);
}

/// Blobs as files in a directory: `<dir>/<first two hex digits>/<32 hex digits>`. Uploads are
/// written to `<dir>/tmp` first and renamed into place, so a half-written blob never has a
/// name.
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(LocalDir { dir })
    }

    /// The path of a blob, for names this store generated only: anything else (a path
    /// separator, `..`) is refused rather than resolved.
    fn path(&self, blob: &str) -> io::Result<PathBuf> {
        let valid = blob.len() == 32 && blob.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad blob name"));
        }
        Ok(self.dir.join(&blob[..2]).join(blob))
    }
}

#[async_trait]
impl BlobStore for LocalDir {
    async fn create(&self) -> io::Result<Box<dyn BlobWriter>> {
        let name = Uuid::new_v4().simple().to_string();
        let temp = self.dir.join("tmp").join(format!("{name}.part"));
        let file = tokio::fs::File::create(&temp).await?;
        Ok(Box::new(LocalWriter {
            file,
            final_path: self.path(&name)?,
            temp,
            name,
        }))
    }

    async fn delete(&self, blob: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(blob)?).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn serve(&self, blob: &str, headers: &HeaderMap) -> io::Result<Response> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri("/")
            .body(Body::empty())
            .map_err(io::Error::other)?;
        *request.headers_mut() = headers.clone();
        let response = ServeFile::new(self.path(blob)?).try_call(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(io::Error::new(io::ErrorKind::NotFound, "blob missing"));
        }
        Ok(response.map(Body::new).into_response())
    }

    async fn open(&self, blob: &str) -> io::Result<Box<dyn AsyncRead + Send + Unpin>> {
        Ok(Box::new(tokio::fs::File::open(self.path(blob)?).await?))
    }
}

struct LocalWriter {
    file: tokio::fs::File,
    temp: PathBuf,
    final_path: PathBuf,
    name: String,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk).await
    }

    async fn finish(mut self: Box<Self>) -> io::Result<String> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        if let Some(parent) = self.final_path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&self.temp, &self.final_path).await?;
        Ok(self.name)
    }

    async fn abort(self: Box<Self>) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}

#[cfg(test)]
mod tests {
    //! The blob store turns names into paths only for names it generated itself: whatever
    //! name reaches it, it answers a path inside its directory or refuses.

    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Component;

    use proptest::prelude::*;

    use super::*;

    fn dir() -> (tempfile::TempDir, LocalDir) {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let store = LocalDir::new(temp.path()).expect("a blob store");
        (temp, store)
    }

    /// Names aimed at escaping the directory, and ones that nearly look generated.
    fn blob_name() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9a-fA-F./\\\\]{30,34}",
            "(\\.\\./|\\.\\.\\\\|/|[0-9a-f]){1,40}",
            any::<u128>().prop_map(|n| format!("{n:032x}")),
        ]
    }

    proptest! {
        // No regressions file (the repository's layout is fixed): a failure prints its
        // minimal input, to be kept as a plain test.
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn no_blob_name_leads_outside_the_directory(blob in blob_name()) {
            let (temp, store) = dir();
            if let Ok(path) = store.path(&blob) {
                let inside = path.strip_prefix(temp.path());
                prop_assert!(inside.is_ok(), "{blob:?} -> {}", path.display());
                let parts: Vec<Component> = inside.map(|p| p.components().collect()).unwrap_or_default();
                prop_assert_eq!(parts.len(), 2, "{:?} -> {}", blob, path.display());
                prop_assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))), "{blob:?} -> {}", path.display());
            }
        }
    }

    #[test]
    fn generated_names_have_paths_and_traversal_has_none() {
        let (temp, store) = dir();
        let name = Uuid::new_v4().simple().to_string();
        assert!(store.path(&name).unwrap().starts_with(temp.path()));
        for bad in [
            "../../../../etc/passwd",
            "..",
            "",
            "00/../../../../../etc/pass",
            "0123456789abcdef0123456789abcde/",
        ] {
            assert!(store.path(bad).is_err(), "{bad:?}");
        }
    }
}
