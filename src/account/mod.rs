//! Accounts and sessions: sign up, log in, log out, and who a session token belongs to. The
//! server keeps only a session token's SHA-256, so logging out deletes one row and ends the
//! session everywhere. Sign-ups and logins pass the guard first (`guard`): rate limits per
//! client address and username, and a bounded number of password hashes at a time.

mod guard;

use std::net::IpAddr;
use std::sync::LazyLock;

use base64::Engine;
use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result, ResultExt};
use crate::services::Services;
use crate::store;
use crate::store::users::{SessionUser, User};
use crate::{breakup, pairing, publish};

pub use guard::{Guard, spawn_sweeper};

/// Creates an account. The username is free or the answer is `username_taken`.
pub async fn sign_up(
    services: &Services,
    guard: &Guard,
    client: IpAddr,
    username: &str,
    password: String,
) -> Result<User> {
    validate_username(username)?;
    validate_password(&password)?;
    guard.admit(client, username)?;
    let hash = guard
        .hash(move || password_auth::generate_hash(password))
        .await?;
    let user = store::users::create(&services.db, username, hash)
        .await
        .on_unique_violation(|| Error::UsernameTaken)?;
    tracing::info!(user_id = %user.id, "signed up");
    Ok(user)
}

/// Verifying against this when the user does not exist makes "no such user" take as long as
/// "wrong password", so timing does not reveal which usernames exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password_auth::generate_hash("not anybody's password"));

/// Checks a username and password: the user, or `invalid_credentials` whichever was wrong.
pub async fn log_in(
    services: &Services,
    guard: &Guard,
    client: IpAddr,
    username: &str,
    password: String,
) -> Result<User> {
    guard.admit(client, username)?;
    // A deleted account is "no such user": checked against the dummy hash, same timing.
    let user = store::users::by_username(&services.db, username)
        .await?
        .filter(|u| u.deleted_at.is_none());
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = guard
        .hash(move || {
            let hash = hash.as_deref().unwrap_or(&DUMMY_HASH);
            password_auth::verify_password(password, hash).is_ok()
        })
        .await?;
    let Some(user) = user.filter(|_| verified) else {
        return Err(Error::InvalidCredentials);
    };
    tracing::info!(user_id = %user.id, "logged in");
    Ok(user)
}

/// Starts a session for the user as verified: the token to hand the client (stored only as
/// its hash), valid for `DUET_SESSION_TTL`. A password changed (or the account deleted) since
/// it was verified makes it `invalid_credentials`.
pub async fn start_session(services: &Services, user: &User) -> Result<String> {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires_at = Utc::now() + services.config.session_ttl();
    store::users::create_session(&services.db, user, token_hash(&token), expires_at)
        .await?
        .ok_or(Error::InvalidCredentials)?;
    Ok(token)
}

/// Whether a username can still be had: well-formed and nobody's (whatever its case and
/// Unicode form). Rate-limited per client address like logins.
pub async fn is_free(
    services: &Services,
    guard: &Guard,
    client: IpAddr,
    username: &str,
) -> Result<bool> {
    guard.admit_check(client)?;
    validate_username(username)?;
    Ok(!store::users::exists(&services.db, username).await?)
}

/// Changes my password: the old one first (a stolen session alone cannot take the account),
/// then every other session of mine ends and its sockets close, on every node. The session
/// that asked stays.
pub async fn change_password(
    services: &Services,
    guard: &Guard,
    client: IpAddr,
    user: &User,
    session_id: Uuid,
    old: String,
    new: String,
) -> Result<()> {
    validate_password(&new)?;
    confirm_password(guard, client, user, old, "the current password is wrong").await?;
    let hash = guard
        .hash(move || password_auth::generate_hash(new))
        .await?;
    let ended = store::users::change_password(&services.db, user.id, hash, session_id).await?;
    if let Some((couple_id, _)) = store::couples::partner_of(&services.db, user.id).await? {
        for session_id in &ended {
            publish::session_ended(&services.bus, couple_id, *session_id);
        }
    }
    tracing::info!(user_id = %user.id, ended = ended.len(), "password changed");
    Ok(())
}

/// Deletes my account (my password first). In a couple, its break-up is scheduled as if I had
/// asked (my partner sees it live, and it can no longer be taken back), my sessions end at
/// once, and my rows go with the couple; in none, they go now.
pub async fn delete(
    services: &Services,
    guard: &Guard,
    client: IpAddr,
    user: &User,
    session_id: Uuid,
    password: String,
) -> Result<()> {
    confirm_password(guard, client, user, password, "the password is wrong").await?;
    let member = pairing::member(services, user.id, session_id).await?;
    let break_up = match &member {
        Some(me) => Some((me.couple_id, breakup::due(services)?)),
        None => None,
    };
    let (ended, delete_at) = store::users::delete_account(&services.db, user.id, break_up).await?;
    if let (Some(me), Some(delete_at)) = (&member, delete_at) {
        tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, %delete_at, "break-up scheduled");
        breakup::announce(services, me.couple_id, Some(delete_at));
        for session_id in &ended {
            publish::session_ended(&services.bus, me.couple_id, *session_id);
        }
    }
    tracing::info!(user_id = %user.id, in_couple = member.is_some(), "account deleted");
    Ok(())
}

/// What changing or deleting an account asks first: its password, so a stolen session alone
/// cannot take the account. Guessing it here is as slow as through a login (same limits).
async fn confirm_password(
    guard: &Guard,
    client: IpAddr,
    user: &User,
    password: String,
    wrong: &'static str,
) -> Result<()> {
    guard.admit(client, &user.username)?;
    let hash = user.password_hash.clone();
    let verified = guard
        .hash(move || password_auth::verify_password(password, &hash).is_ok())
        .await?;
    if verified {
        Ok(())
    } else {
        Err(Error::Forbidden(wrong))
    }
}

/// Ends a session; sockets opened with it close, on whichever node holds them.
pub async fn log_out(services: &Services, user_id: Uuid, session_id: Uuid) -> Result<()> {
    store::users::delete_session(&services.db, session_id).await?;
    if let Some((couple_id, _)) = store::couples::partner_of(&services.db, user_id).await? {
        publish::session_ended(&services.bus, couple_id, session_id);
    }
    tracing::info!(%user_id, "logged out");
    Ok(())
}

/// The user a session token belongs to, while the session lasts.
pub async fn session_user(services: &Services, token: &str) -> Result<Option<SessionUser>> {
    Ok(store::users::session_user(&services.db, &token_hash(token)).await?)
}

fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// The rule holds for the name as typed and for its key (its normal form, which is what makes
/// names the same): one character may expand into several, or into spaces, under NFKC.
fn validate_username(username: &str) -> Result<()> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-');
    let fits = |name: &str| (3..=32).contains(&name.chars().count()) && name.chars().all(allowed);
    if !fits(username) || !fits(&store::users::username_key(username)) {
        return Err(Error::InvalidInput(
            "a username has 3-32 letters, digits, '_', '.' or '-'".into(),
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<()> {
    if !(8..=128).contains(&password.chars().count()) {
        return Err(Error::InvalidInput(
            "a password has 8-128 characters".into(),
        ));
    }
    Ok(())
}
