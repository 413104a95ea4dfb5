//! What the contract shows of a chat, a file and a question: the plain views that `chat`,
//! `question` and `file` frames and the REST responses carry. A leaf: frames are built from
//! these, and the modules that make them depend on this one, never the other way.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::chats::Chat;
use crate::store::files::{File, Photo};
use crate::store::questions::Asked;

/// A chat as the contract shows it, in `chat` frames and in `GET /api/chats`.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct ChatView {
    pub seq: i64,
    pub id: Uuid,
    pub sender_id: Uuid,
    pub text: String,
    pub file: Option<FileView>,
    #[serde(serialize_with = "rfc3339")]
    pub sent_at: DateTime<Utc>,
    pub client_id: Option<Uuid>,
    /// Extension: set only when a replay passes a chat deleted since (its text is gone).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Extension: set on the live frame of a chat sent with `silent`; the partner's client
    /// shows it without a notification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
    /// Extension: the earlier chat this one answers, as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuoteView>,
    /// Extension: how many times its sender edited it (`text` is the latest); left out when
    /// never.
    #[serde(skip_serializing_if = "is_zero")]
    pub edits: i32,
    /// Extension: each partner's reaction to it, oldest first; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionView>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl ChatView {
    pub fn new(chat: Chat, file: Option<File>) -> Self {
        ChatView {
            seq: chat.seq,
            id: chat.id,
            sender_id: chat.sender_id,
            deleted: chat.deleted_at.is_some(),
            silent: false,
            text: chat.text,
            file: file.map(FileView::from),
            sent_at: chat.sent_at,
            client_id: Some(chat.client_id),
            reply_to: None,
            edits: chat.edits,
            reactions: Vec::new(),
        }
    }
}

/// Longest quote of a chat replied to, in characters.
pub const QUOTE_CHARS: usize = 100;

/// The chat a reply quotes: enough to show it above the reply and to jump to it.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct QuoteView {
    pub id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    /// Its text's first 100 characters (`""` for a file without text, or once deleted).
    pub text: String,
    /// Deleted since: the quote shows that it was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl QuoteView {
    /// The quote of a chat that is not deleted.
    pub fn live(id: Uuid, seq: i64, sender_id: Uuid, text: &str) -> Self {
        QuoteView {
            id,
            seq,
            sender_id,
            text: text.chars().take(QUOTE_CHARS).collect(),
            deleted: false,
        }
    }
}

impl From<&Chat> for QuoteView {
    fn from(chat: &Chat) -> Self {
        QuoteView {
            deleted: chat.deleted_at.is_some(),
            ..QuoteView::live(chat.id, chat.seq, chat.sender_id, &chat.text)
        }
    }
}

/// One text a chat had: `GET /api/chats/{id}/versions` and the export.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct VersionView {
    pub text: String,
    /// When it was sent or edited to this.
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// A partner's reaction to a chat.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct ReactionView {
    pub user_id: Uuid,
    pub emoji: String,
}

/// The file object of the contract (`chat.file`, `POST /api/files`), plus image size hints so
/// a client can lay the chat out before the image loads.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Extension: how long a recording (a voice note) lasts, in milliseconds, measured by the
    /// server; left out for anything else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

impl From<File> for FileView {
    fn from(file: File) -> Self {
        FileView {
            id: file.id,
            name: file.name,
            size: file.size,
            content_type: file.content_type,
            width: file.width,
            height: file.height,
            duration_ms: file.duration_ms,
        }
    }
}

/// A `question` frame.
#[derive(Serialize, Debug, Clone)]
pub struct QuestionView {
    pub seq: i64,
    pub question_id: i64,
    pub text: String,
    pub keyword: String,
    #[serde(serialize_with = "rfc3339")]
    pub asked_at: DateTime<Utc>,
}

impl From<Asked> for QuestionView {
    fn from(asked: Asked) -> Self {
        QuestionView {
            seq: asked.seq,
            question_id: asked.question_id,
            text: asked.text,
            keyword: asked.keyword,
            asked_at: asked.asked_at,
        }
    }
}

/// An optional instant on the wire: RFC 3339 or `null`.
pub fn rfc3339_opt<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Instants on the wire: RFC 3339, UTC, milliseconds.
pub fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The couple's calendar: `GET /api/anniversaries` and the `anniversaries` frame.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct AnniversariesView {
    /// Day one (defaults to the day the couple paired), a calendar date.
    #[schema(value_type = String, format = Date, example = "2026-03-01")]
    pub started_on: chrono::NaiveDate,
    /// The IANA time zone the couple's dates are in.
    #[schema(example = "Asia/Seoul")]
    pub time_zone: String,
    /// Today in that time zone.
    #[schema(value_type = String, format = Date)]
    pub today: chrono::NaiveDate,
    /// Days together, counting day one as 1.
    pub days_together: i64,
    /// The couple's own dates, in date order.
    pub dates: Vec<DateView>,
    /// Milestones and own dates: upcoming ones first (soonest first), then past ones (most
    /// recent first).
    pub upcoming: Vec<UpcomingView>,
}

/// One of the couple's own dates.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct DateView {
    pub id: Uuid,
    pub title: String,
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    /// Kept every year (`true`) or once.
    pub yearly: bool,
}

/// A day to count towards or from.
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct UpcomingView {
    /// `milestone` (every 100 days), `yearly` (each year together) or `date` (their own).
    pub kind: &'static str,
    /// "100 days", "1 year" or the date's own title.
    pub title: String,
    /// The day this time (a yearly date's next or last occurrence).
    #[schema(value_type = String, format = Date)]
    pub date: chrono::NaiveDate,
    /// Positive: days to go; 0: today; negative: days since.
    pub days_from_today: i64,
    /// `D-29`, `D-day` or `D+3`.
    pub label: String,
    /// A milestone's count of days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// A yearly milestone's count of years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub years: Option<i32>,
    /// An own date's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
}

/// A photo of our album (`GET /api/album`).
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct PhotoView {
    /// The chat that sent it: where "show in the conversation" jumps.
    pub chat_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    #[serde(serialize_with = "rfc3339")]
    pub sent_at: DateTime<Utc>,
    /// The original, byte for byte, at `GET /api/files/{id}`.
    pub file: FileView,
    /// Its thumbnail at `GET /api/files/{id}/thumbnail` (`null`: none could be made; show
    /// the original).
    pub thumbnail: Option<ThumbnailView>,
}

/// A thumbnail's size in pixels (its longest side is at most 400).
#[derive(Serialize, Debug, Clone, ToSchema)]
pub struct ThumbnailView {
    pub width: i32,
    pub height: i32,
}

impl From<Photo> for PhotoView {
    fn from(photo: Photo) -> Self {
        let thumbnail = match (
            &photo.file.thumb_blob,
            photo.file.thumb_width,
            photo.file.thumb_height,
        ) {
            (Some(_), Some(width), Some(height)) => Some(ThumbnailView { width, height }),
            _ => None,
        };
        PhotoView {
            chat_id: photo.chat_id,
            seq: photo.seq,
            sender_id: photo.sender_id,
            sent_at: photo.sent_at,
            file: FileView::from(photo.file),
            thumbnail,
        }
    }
}
