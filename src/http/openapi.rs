//! The REST API's OpenAPI 3.1 document, generated from the handlers' annotations: served at
//! `/api/openapi.json` and committed at docs/openapi.json (a test fails when the two differ:
//! regenerate with `DUET_WRITE_OPENAPI=1 cargo test openapi`). The WebSocket frames are in
//! docs/asyncapi.yaml, the rules in docs/PROTOCOL.md.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    album, anniversaries, answers, auth, chats, export, files, health, memories, pairing, push,
    words,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Duet",
        description = "A real-time chat for couples. JSON over HTTP under /api; the chat itself runs over the WebSocket at /ws (see docs/asyncapi.yaml and docs/PROTOCOL.md). Every error has the body `{\"error\": {\"code\", \"message\"}}`. Requests that change state and carry an `Origin` header must come from an allowed origin (403 `forbidden_origin`). Anything that is not the caller's, or does not exist, is 404."
    ),
    paths(
        auth::signup, auth::login, auth::logout, auth::me, auth::delete_me, auth::change_password, auth::username,
        pairing::list, pairing::create, pairing::accept, pairing::remove,
        pairing::break_up, pairing::restore,
        chats::history, chats::search, chats::versions, memories::memories, answers::answers, files::upload, files::download, files::thumbnail, album::photos,
        words::ours, words::exclude, words::include,
        anniversaries::calendar, anniversaries::set_start, anniversaries::add, anniversaries::remove,
        push::key, push::list, push::subscribe, push::set_preview, push::remove,
        export::download,
        health::healthz, health::readyz,
    ),
    modifiers(&Sessions),
    tags(
        (name = "accounts", description = "Sign up, log in, sessions"),
        (name = "pairing", description = "Pairing requests and the break-up"),
        (name = "chat", description = "History beyond what the socket replays, jumps and search"),
        (name = "questions", description = "The answers page"),
        (name = "files", description = "Uploads a chat then carries, and downloads"),
        (name = "words", description = "Our most used words and the ones we leave out"),
        (name = "anniversaries", description = "Day one, days together, milestones and our own dates"),
        (name = "push", description = "Web Push: the key to subscribe with, and my devices that get pushes"),
        (name = "export", description = "Our whole history as one zip"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct Api;

/// The two ways a request carries its session.
struct Sessions;

impl Modify for Sessions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("duet_session"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("cookie", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

/// The document, as served and as committed (pretty, with a final newline).
pub fn document() -> String {
    let json = Api::openapi().to_pretty_json().unwrap_or_default();
    format!("{json}\n")
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(serve))
}

async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
