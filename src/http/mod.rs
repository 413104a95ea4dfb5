//! The HTTP side: one module per resource, each with its own `router()`, merged here with the
//! socket endpoint, the health checks and the browser client. Cross-cutting rules live here
//! too: the Origin allow-list, body limits, and extractors whose rejections speak the
//! contract's error body.

mod album;
mod anniversaries;
mod answers;
mod auth;
mod chats;
mod client_addr;
mod export;
mod files;
mod headers;
mod health;
mod memories;
pub mod openapi;
mod pairing;
mod push;
mod shell;
mod words;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::error::Error;
use crate::state::AppState;

pub(crate) use auth::{CurrentUser, Paired};
pub(crate) use health::{metrics_router, spawn_database_check};

/// JSON bodies of the API are small; files have their own route and limit.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// The whole HTTP side; `socket` is the WebSocket endpoint (`ws::router`), handed in so that
/// `ws`, which uses this module's extractors, is not also used by it.
pub fn router(state: AppState, socket: Router<AppState>) -> Router {
    let assets = ServeDir::new(&state.config.assets_dir)
        // A POST to a path nobody serves is a 404 in the contract's shape, not an empty 405.
        .call_fallback_on_method_not_allowed(true)
        .not_found_service(axum::routing::any(not_found).with_state(()));
    let app = Router::new()
        .merge(auth::router())
        .merge(pairing::router())
        .merge(chats::router())
        .merge(album::router())
        .merge(memories::router())
        .merge(answers::router())
        .merge(words::router())
        .merge(anniversaries::router())
        .merge(push::router())
        .merge(export::router())
        .merge(files::router(state.config.max_upload_bytes))
        .merge(health::router())
        .merge(openapi::router())
        .merge(shell::router(&state.config.assets_dir))
        .merge(socket)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .fallback_service(assets)
        .layer(request_log())
        .with_state(state);
    headers::secure(app)
}

/// The request log: method and the route the request matched (`/api/words/excluded/{word}`),
/// never the URI as sent, at any level: a couple's search terms ride in the query and their
/// left-out words in the path.
fn request_log() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request) -> tracing::Span,
> {
    TraceLayer::new_for_http().make_span_with(request_span as fn(&Request) -> tracing::Span)
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}

async fn not_found() -> Error {
    Error::NotFound
}

async fn method_not_allowed() -> Response {
    let mut response = Error::BadRequest("this method is not allowed here".into()).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// Browsers attach `Origin` to cross-site requests; refusing foreign ones on everything that
/// changes state (and on socket upgrades, which cookies would otherwise authenticate) stops
/// cross-site request forgery. Clients that send no `Origin` are not browsers and pass.
async fn check_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let guarded = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.uri().path() == "/ws";
    if guarded && !origin_allowed(&state, request.headers()) {
        return Err(Error::ForbiddenOrigin);
    }
    Ok(next.run(request).await)
}

fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|origin| state.origins.iter().any(|allowed| allowed == origin)),
    }
}

/// A `limit` query parameter: `default` when absent, clamped to `max`, 422 below 1.
fn page_limit(asked: Option<i64>, default: u64, max: u64) -> Result<u64, Error> {
    match asked {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(u64::try_from(n).unwrap_or(max).min(max)),
        Some(_) => Err(Error::InvalidInput("limit must be at least 1".into())),
    }
}

/// `axum::Json` whose rejections are the contract's errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are the contract's errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejections are the contract's errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Error::TooLarge("the request body is too large".into())
            }
            StatusCode::UNPROCESSABLE_ENTITY => Error::InvalidInput(rejection.body_text()),
            _ => Error::BadRequest(rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(_: PathRejection) -> Self {
        // A malformed id names nothing that exists.
        Error::NotFound
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::{delete, get};
    use tower::ServiceExt;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_request_log_names_the_route_never_the_query_or_a_word() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app: Router = Router::new()
            .route("/api/chats/search", get(|| async { "found" }))
            .route("/api/words/excluded/{word}", delete(|| async { "kept" }))
            .layer(request_log());
        for (method, uri) in [
            ("GET", "/api/chats/search?q=honeymoonsecret"),
            ("DELETE", "/api/words/excluded/leftoutword"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains(r#"route="/api/chats/search""#), "{log}");
        assert!(
            log.contains(r#"route="/api/words/excluded/{word}""#),
            "{log}"
        );
        for secret in ["honeymoonsecret", "leftoutword"] {
            assert!(!log.contains(secret), "the log shows {secret:?}: {log}");
        }
    }
}
