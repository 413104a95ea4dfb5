//! Accounts and sessions: sign up, log in, log out, who am I. The session token lives in the
//! `duet_session` cookie (or `Authorization: Bearer` for non-browser clients); the server
//! keeps only its SHA-256, so logging out deletes one row and ends the session everywhere.
//! Sign-ups and logins pass the account guard first (`crate::account`): rate limits per client
//! address and username, and a bounded number of password hashes at a time.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::Json;
use super::client_addr::ClientAddr;
use crate::couple::Member;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::couples::MyCouple;
use crate::store::users::User;
use crate::{account, pairing};

pub const COOKIE: &str = "duet_session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/signup", post(signup))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            username: user.username.clone(),
        }
    }
}

/// The `couple` object of the contract, seen by one of its members.
pub fn couple_view(mine: &MyCouple) -> serde_json::Value {
    let delete_at = mine
        .couple
        .delete_at
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    json!({
        "id": mine.couple.id,
        "since": mine.couple.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "partner": UserView::from(&mine.partner),
        "delete_at": delete_at,
    })
}

async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse> {
    let user =
        account::sign_up(&state, &state.logins, client, &body.username, body.password).await?;
    let jar = start_session(&state, &headers, jar, user.id).await?;
    Ok((
        StatusCode::CREATED,
        jar,
        Json(json!({ "user": UserView::from(&user) })),
    ))
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse> {
    let user =
        account::log_in(&state, &state.logins, client, &body.username, body.password).await?;
    let jar = start_session(&state, &headers, jar, user.id).await?;
    Ok((jar, Json(json!({ "user": UserView::from(&user) }))))
}

/// The session token goes into an HttpOnly cookie; clients that are not browsers send it back
/// as `Authorization: Bearer`.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    user_id: Uuid,
) -> Result<CookieJar> {
    let token = account::start_session(state, user_id).await?;
    let cookie = Cookie::build((COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(is_https(headers))
        .max_age(time_duration(state.config.session_ttl()));
    Ok(jar.add(cookie))
}

fn time_duration(d: std::time::Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Behind a TLS-terminating load balancer the request arrives over plain HTTP; the balancer
/// says what the browser used.
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    jar: CookieJar,
) -> Result<impl IntoResponse> {
    account::log_out(&state, user.user.id, user.session_id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        jar.remove(Cookie::build(COOKIE).path("/")),
    ))
}

async fn me(State(state): State<AppState>, user: CurrentUser) -> Result<impl IntoResponse> {
    let couple = pairing::my_couple(&state, user.user.id)
        .await?
        .map(|m| couple_view(&m));
    Ok(Json(
        json!({ "user": UserView::from(&user.user), "couple": couple }),
    ))
}

/// The signed-in user of a request: 401 `unauthenticated` when there is none.
pub struct CurrentUser {
    pub user: User,
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers)
            .or_else(|| {
                CookieJar::from_headers(&parts.headers)
                    .get(COOKIE)
                    .map(|c| c.value().to_owned())
            })
            .ok_or(Error::Unauthenticated)?;
        let found = account::session_user(state, &token)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(CurrentUser {
            user: found.user,
            session_id: found.session_id,
            expires_at: found.expires_at,
        })
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_owned())
}

/// A signed-in user who is in a couple: what the chat, answers and files routes need.
/// Anyone else is refused with 409 `not_paired`.
pub struct Paired(pub Member);

impl FromRequestParts<AppState> for Paired {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let me = CurrentUser::from_request_parts(parts, state).await?;
        let member = pairing::member(state, me.user.id, me.session_id)
            .await?
            .ok_or(Error::NotPaired)?;
        Ok(Paired(member))
    }
}
