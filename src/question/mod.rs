//! Questions: the reason Duet exists. A chat that mentions a catalogue keyword the couple was
//! never asked about brings that question to both partners, and each must answer before
//! chatting on. The server enforces it from the database, inside the transaction that commits
//! the send (see `chat::plan`), so it holds on every node and after every reconnect.

pub mod bench;
pub(crate) mod catalogue;
pub(crate) mod matcher;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::push::What;
use crate::services::Services;
use crate::store;
use crate::store::questions::Answered;
use crate::view::{QuestionView, rfc3339};

pub(crate) use catalogue::Catalogue;

/// Longest answer, in characters, after trimming: as long as a chat may be.
pub(crate) const MAX_ANSWER_CHARS: usize = 4000;

/// Questions this member has not answered, oldest first, asked up to seq `upto` (sent after
/// `synced`; later ones reach the socket live, so none comes twice).
pub(crate) async fn owed(services: &Services, me: &Member, upto: i64) -> Result<Vec<QuestionView>> {
    let owed =
        store::questions::owed(&services.db, me.couple_id, me.user_id, Some(upto), None).await?;
    Ok(owed.into_iter().map(QuestionView::from).collect())
}

/// Stores my answer and tells us both. Answering twice changes nothing; the caller gets the
/// first answer's `answered` frame again so a retry settles like the original.
pub(crate) async fn answer(
    services: &Services,
    me: &Member,
    question_id: i64,
    text: &str,
) -> Result<Option<ServerFrame>> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::InvalidInput("an answer needs some text".into()));
    }
    if text.chars().count() > MAX_ANSWER_CHARS {
        return Err(Error::TooLong);
    }
    let outcome =
        store::questions::answer(&services.db, me.couple_id, me.user_id, question_id, text).await?;
    match outcome {
        None => Err(Error::NotFound),
        Some(Answered::Before(answer)) => Ok(Some(ServerFrame::Answered {
            seq: answer.seq,
            question_id,
            user_id: me.user_id,
        })),
        Some(Answered::Now(answer)) => {
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, question_id, seq = answer.seq, "question answered");
            let frame = ServerFrame::Answered {
                seq: answer.seq,
                question_id,
                user_id: me.user_id,
            };
            publish::persisted(
                &services.bus,
                me.couple_id,
                answer.seq,
                Some(me.user_id),
                &frame,
            );
            let what = What::Answer { seq: answer.seq };
            services
                .push
                .notify(me.couple_id, me.partner_id, Some(me.user_id), what);
            Ok(None)
        }
    }
}

/// One row of the answers page.
#[derive(Serialize, Debug, ToSchema)]
pub(crate) struct AnswerRow {
    pub question_id: i64,
    pub question: String,
    pub keyword: String,
    #[serde(serialize_with = "rfc3339")]
    pub asked_at: DateTime<Utc>,
    pub mine: Option<AnswerText>,
    pub partner: Option<AnswerText>,
}

#[derive(Serialize, Debug, ToSchema)]
pub(crate) struct AnswerText {
    pub text: String,
    #[serde(serialize_with = "rfc3339")]
    pub answered_at: DateTime<Utc>,
}

/// Every question we were asked, newest first, with both answers; my partner's stays hidden
/// until I have answered, so neither can copy the other.
pub(crate) async fn answers_page(services: &Services, me: &Member) -> Result<Vec<AnswerRow>> {
    let (asked, answers) = store::questions::asked_with_answers(&services.db, me.couple_id).await?;
    let find = |question_id: i64, user_id: Uuid| {
        answers
            .iter()
            .find(|a| a.question_id == question_id && a.user_id == user_id)
            .map(|a| AnswerText {
                text: a.text.clone(),
                answered_at: a.answered_at,
            })
    };
    Ok(asked
        .into_iter()
        .map(|asked| {
            let mine = find(asked.question_id, me.user_id);
            let partner = mine
                .as_ref()
                .and_then(|_| find(asked.question_id, me.partner_id));
            AnswerRow {
                question_id: asked.question_id,
                question: asked.text,
                keyword: asked.keyword,
                asked_at: asked.asked_at,
                mine,
                partner,
            }
        })
        .collect())
}
