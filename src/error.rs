//! The one error type of the application layer. Handlers and the chat domain return it with
//! `?`; `IntoResponse` turns it into the contract's body `{"error": {"code", "message"}}`, and
//! the socket session turns it into an `error` frame with the same code. Internal causes are
//! logged here and never shown to the client.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sea_orm::DbErr;
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request: unparsable JSON, a bad query string (400).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but not acceptable: too-short password, pairing with oneself (422).
    #[error("{0}")]
    InvalidInput(String),
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("this origin may not make changes here")]
    ForbiddenOrigin,
    /// Only sent in `error` frames: the action belongs to the partner (deleting their chat).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("this username is taken")]
    UsernameTaken,
    #[error("one of you is already in a couple")]
    AlreadyPaired,
    #[error("you are not in a couple yet")]
    NotPaired,
    #[error("a request between you two is already pending")]
    DuplicateRequest,
    #[error("{0}")]
    TooLarge(String),
    #[error("a chat may have at most 4000 characters")]
    TooLong,
    /// Only sent in `error` frames: this user owes an answer before chatting on.
    #[error("answer the question first")]
    AnswerRequired(i64),
    #[error("slow down")]
    RateLimited,
    /// Too many attempts, or too much work already waiting: `rate_limited` with a
    /// `Retry-After` header saying when another try can succeed.
    #[error("{message}")]
    TryLater {
        message: &'static str,
        retry_after: Duration,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("internal: {0}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) | Error::InvalidInput(_) => "invalid_input",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidCredentials => "invalid_credentials",
            Error::ForbiddenOrigin => "forbidden_origin",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::UsernameTaken => "username_taken",
            Error::AlreadyPaired => "already_paired",
            Error::NotPaired => "not_paired",
            Error::DuplicateRequest => "duplicate_request",
            Error::TooLarge(_) => "too_large",
            Error::TooLong => "too_long",
            Error::AnswerRequired(_) => "answer_required",
            Error::RateLimited | Error::TryLater { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Db(e) if is_unavailable(e) || is_cut_off(e) => "unavailable",
            Error::Db(_) | Error::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::InvalidInput(_) | Error::TooLong => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthenticated | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::ForbiddenOrigin | Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::UsernameTaken
            | Error::AlreadyPaired
            | Error::NotPaired
            | Error::DuplicateRequest
            | Error::AnswerRequired(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited | Error::TryLater { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(e) if is_unavailable(e) || is_cut_off(e) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text a client may see: internal causes stay in the log.
    pub fn public_message(&self) -> String {
        match self.code() {
            "internal" => "something went wrong on our side".to_owned(),
            "unavailable" if matches!(self, Error::Db(e) if is_cut_off(e)) => {
                "this took too long; try again later, or narrow it down".to_owned()
            }
            "unavailable" if matches!(self, Error::Db(_)) => {
                "the database is unavailable, try again shortly".to_owned()
            }
            _ => self.to_string(),
        }
    }

    /// Logs what the client will not see. Called wherever an error leaves the application.
    pub fn log(&self) {
        match self {
            Error::Db(e) if is_cut_off(e) => {
                tracing::info!("heavy read cut off by the read timeout")
            }
            Error::Db(_) | Error::Internal(_) => tracing::error!(error = %self, "request failed"),
            _ => tracing::debug!(code = self.code(), "request refused"),
        }
    }
}

/// The pool could not hand out a connection, the connection broke, or the server is shutting
/// down or starting up: a retry may work, so the client is told `unavailable`, not `internal`.
fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match e {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-57P03: the server is going down or starting;
        // 25006: read-only, a primary turned standby (a switchover) before the node moved on.
        Sqlx::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "25006"
        }),
        _ => false,
    }
}

/// A heavy read ran past `DUET_READ_TIMEOUT_MS` and was cut off: Postgres's
/// `query_canceled` (57014, what `statement_timeout` raises), SQLite's `SQLITE_INTERRUPT` (9,
/// what the read pool's progress handler causes). Nothing is wrong with the database, so it
/// is not logged as a failure.
fn is_cut_off(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = e else {
        return false;
    };
    match e.as_ref() {
        Sqlx::Database(db) => db.code().is_some_and(|code| code == "57014" || code == "9"),
        _ => false,
    }
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_input`, `unauthenticated`, `not_paired`, `not_found`, ...
    pub code: &'static str,
    /// For people; never contains another user's data.
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Error::TryLater { retry_after, .. } = &self {
            // Whole seconds, rounded up: a client that waits what it is told is not refused
            // again for having come back a fraction too early.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// Maps a unique-constraint violation to the error the client should see, like
/// realworld-axum-sqlx's `on_constraint`: the database decides races, we only translate.
pub trait ResultExt<T> {
    fn on_unique_violation(self, err: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, DbErr> {
    fn on_unique_violation(self, err: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => err(),
            _ => Error::Db(e),
        })
    }
}
