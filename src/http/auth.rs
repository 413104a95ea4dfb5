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
use utoipa::ToSchema;
use uuid::Uuid;

use super::client_addr::ClientAddr;
use super::{Json, Path};
use crate::couple::Member;
use crate::error::ErrorBody;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::couples::MyCouple;
use crate::store::users::User;
use crate::view::{rfc3339, rfc3339_opt};
use crate::{account, pairing};

pub const COOKIE: &str = "duet_session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/signup", post(signup))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me).delete(delete_me))
        .route("/api/password", post(change_password))
        .route("/api/usernames/{username}", get(username))
}

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
pub struct CoupleView {
    pub id: Uuid,
    #[serde(serialize_with = "rfc3339")]
    pub since: DateTime<Utc>,
    pub partner: UserView,
    /// When the scheduled break-up falls due; `null` when none is scheduled.
    #[serde(serialize_with = "rfc3339_opt")]
    pub delete_at: Option<DateTime<Utc>>,
}

pub fn couple_view(mine: &MyCouple) -> CoupleView {
    CoupleView {
        id: mine.couple.id,
        since: mine.couple.since,
        partner: UserView::from(&mine.partner),
        delete_at: mine.couple.delete_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct MeBody {
    pub user: UserView,
    /// `null` while I am not in a couple.
    pub couple: Option<CoupleView>,
}

/// Creates an account and starts a session (cookie `duet_session`, HttpOnly).
#[utoipa::path(post, path = "/api/signup", tag = "accounts", request_body = Credentials,
    responses(
        (status = 201, description = "Signed up and signed in", body = UserBody),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: well-formed JSON of the wrong shape, or a value not accepted", body = ErrorBody),
        (status = 429, description = "Too many attempts (`Retry-After`)", body = ErrorBody),
    ))]
pub(super) async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse> {
    let user =
        account::sign_up(&state, &state.logins, client, &body.username, body.password).await?;
    let jar = start_session(&state, &headers, jar, &user).await?;
    Ok((
        StatusCode::CREATED,
        jar,
        Json(UserBody {
            user: UserView::from(&user),
        }),
    ))
}

/// Starts a session for an existing account.
#[utoipa::path(post, path = "/api/login", tag = "accounts", request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = UserBody),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: well-formed JSON of the wrong shape, or a value not accepted", body = ErrorBody),
        (status = 429, description = "Too many attempts (`Retry-After`)", body = ErrorBody),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse> {
    let user =
        account::log_in(&state, &state.logins, client, &body.username, body.password).await?;
    let jar = start_session(&state, &headers, jar, &user).await?;
    Ok((
        jar,
        Json(UserBody {
            user: UserView::from(&user),
        }),
    ))
}

/// The session token goes into an HttpOnly cookie; clients that are not browsers send it back
/// as `Authorization: Bearer`.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    user: &User,
) -> Result<CookieJar> {
    let token = account::start_session(state, user).await?;
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

/// Ends this session; its sockets close on every node.
#[utoipa::path(post, path = "/api/logout", tag = "accounts",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No session, or it ended", body = ErrorBody),
    ))]
pub(super) async fn logout(
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

#[derive(Deserialize, ToSchema)]
pub struct NewPassword {
    pub old_password: String,
    /// 8-128 characters.
    pub new_password: String,
}

/// Changes my password. Every other session of mine ends (their sockets close with 4001);
/// this one stays.
#[utoipa::path(post, path = "/api/password", tag = "accounts", request_body = NewPassword,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden`: the current password is wrong", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the new password is not 8-128 characters", body = ErrorBody),
        (status = 429, description = "Too many attempts (`Retry-After`)", body = ErrorBody),
    ))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    me: CurrentUser,
    Json(body): Json<NewPassword>,
) -> Result<impl IntoResponse> {
    account::change_password(
        &state,
        &state.logins,
        client,
        &me.user,
        me.session_id,
        body.old_password,
        body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct Password {
    pub password: String,
}

/// Deletes my account. In a couple, its break-up is scheduled as if I had asked (my partner
/// sees it live and cannot take it back) and my rows go with the couple; otherwise at once.
/// Every session of mine ends now.
#[utoipa::path(delete, path = "/api/me", tag = "accounts", request_body = Password,
    responses(
        (status = 204, description = "Deleted (or, in a couple, leaving with it)"),
        (status = 400, description = "`invalid_input`: not JSON", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "`forbidden`: the password is wrong", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the wrong shape", body = ErrorBody),
        (status = 429, description = "Too many attempts (`Retry-After`)", body = ErrorBody),
    ))]
pub(super) async fn delete_me(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    me: CurrentUser,
    jar: CookieJar,
    Json(body): Json<Password>,
) -> Result<impl IntoResponse> {
    account::delete(
        &state,
        &state.logins,
        client,
        &me.user,
        me.session_id,
        body.password,
    )
    .await?;
    Ok((
        StatusCode::NO_CONTENT,
        jar.remove(Cookie::build(COOKIE).path("/")),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct UsernameBody {
    pub username: String,
    /// Nobody has it, in any case: signing up with it would succeed now.
    pub available: bool,
}

/// Whether a username is free, for the sign-up form (no session needed).
#[utoipa::path(get, path = "/api/usernames/{username}", tag = "accounts",
    params(("username" = String, Path, description = "The username to check")),
    responses(
        (status = 200, description = "Whether it is free", body = UsernameBody),
        (status = 422, description = "`invalid_input`: not a well-formed username", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many checks from this address; `Retry-After` says when to try again", body = ErrorBody),
    ))]
pub(super) async fn username(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(username): Path<String>,
) -> Result<impl IntoResponse> {
    let available = account::is_free(&state, &state.logins, client, &username).await?;
    Ok(Json(UsernameBody {
        username,
        available,
    }))
}

/// Who I am, and my couple if I am in one.
#[utoipa::path(get, path = "/api/me", tag = "accounts",
    responses(
        (status = 200, description = "Me", body = MeBody),
        (status = 401, description = "No session, or it ended", body = ErrorBody),
    ))]
pub(super) async fn me(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<impl IntoResponse> {
    let couple = pairing::my_couple(&state, user.user.id)
        .await?
        .map(|m| couple_view(&m));
    Ok(Json(MeBody {
        user: UserView::from(&user.user),
        couple,
    }))
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
    // The scheme is case-insensitive (RFC 9110 11.1).
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
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
