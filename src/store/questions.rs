//! The catalogue, the questions a couple was asked and the answers. "Asked at most once" is
//! the primary key of `couple_questions`; questions are asked by the group commit
//! (`store::sends`), under the couple's row lock, with the chat that brought them up.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{answers, couple_questions, couples, question_keywords, questions};
use migration::catalogue::Entry;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::events::{self, EventKind, EventRef, next_seq, now_millis};

pub use answers::Model as Answer;
pub use questions::Model as Question;

/// A question a chat's text brought up, through one of its keywords.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The question brought up.
    pub question_id: i64,
    /// The keyword of it that the text mentions.
    pub keyword: String,
}

/// A question as the couple was asked it.
#[derive(Clone, Debug)]
pub struct Asked {
    /// The seq of the event that asked it.
    pub seq: i64,
    /// The catalogue's question.
    pub question_id: i64,
    /// The question's text when it was asked.
    pub text: String,
    /// The keyword that brought it up.
    pub keyword: String,
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
}

/// Every (question, keyword) pair of the catalogue, for the matcher.
pub async fn keywords(db: &impl ConnectionTrait) -> Result<Vec<(i64, String)>, DbErr> {
    let rows = question_keywords::Entity::find()
        .order_by_asc(question_keywords::Column::QuestionId)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.question_id, r.keyword))
        .collect())
}

/// Changes whenever a question is added or changed: how nodes notice an import.
pub async fn version(db: &impl ConnectionTrait) -> Result<(u64, Option<DateTime<Utc>>), DbErr> {
    let count = questions::Entity::find().count(db).await?;
    let newest = questions::Entity::find()
        .order_by_desc(questions::Column::UpdatedAt)
        .one(db)
        .await?
        .map(|q| q.updated_at);
    Ok((count, newest))
}

/// The catalogue with each question's keywords, by id.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<(Question, Vec<String>)>, DbErr> {
    let questions = questions::Entity::find()
        .order_by_asc(questions::Column::Id)
        .all(db)
        .await?;
    let mut keywords: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, keyword) in self::keywords(db).await? {
        keywords.entry(id).or_default().push(keyword);
    }
    Ok(questions
        .into_iter()
        .map(|q| {
            let mut words = keywords.remove(&q.id).unwrap_or_default();
            words.sort();
            (q, words)
        })
        .collect())
}

/// What an import of the catalogue did, question by question.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Questions with a key the catalogue did not have.
    pub added: usize,
    /// Questions whose text or keywords changed.
    pub updated: usize,
    /// Questions already as given.
    pub unchanged: usize,
}

/// Adds or updates questions by `key`, in one transaction. Importing the same file twice
/// changes nothing the second time (not even `updated_at`).
pub async fn import(db: &DatabaseConnection, entries: &[Entry]) -> Result<ImportReport, DbErr> {
    let txn = db.begin().await?;
    let mut report = ImportReport::default();
    let now = Utc::now();
    for entry in entries {
        let existing = questions::Entity::find()
            .filter(questions::Column::Key.eq(entry.key.as_str()))
            .one(&txn)
            .await?;
        let id = match existing {
            None => {
                report.added += 1;
                questions::ActiveModel {
                    key: Set(entry.key.clone()),
                    text: Set(entry.text.clone()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?
                .id
            }
            Some(question) => {
                let mut current: Vec<String> = question_keywords::Entity::find()
                    .filter(question_keywords::Column::QuestionId.eq(question.id))
                    .all(&txn)
                    .await?
                    .into_iter()
                    .map(|k| k.keyword)
                    .collect();
                current.sort();
                let mut wanted = entry.keywords.clone();
                wanted.sort();
                if question.text == entry.text && current == wanted {
                    report.unchanged += 1;
                    continue;
                }
                report.updated += 1;
                let id = question.id;
                let mut question: questions::ActiveModel = question.into();
                question.text = Set(entry.text.clone());
                question.updated_at = Set(now);
                question.update(&txn).await?;
                question_keywords::Entity::delete_many()
                    .filter(question_keywords::Column::QuestionId.eq(id))
                    .exec(&txn)
                    .await?;
                id
            }
        };
        let rows = entry
            .keywords
            .iter()
            .map(|keyword| question_keywords::ActiveModel {
                question_id: Set(id),
                keyword: Set(keyword.clone()),
            });
        question_keywords::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(report)
}

/// The texts of these questions, by id; a question no longer in the catalogue is absent.
pub async fn texts(
    db: &impl ConnectionTrait,
    ids: Vec<i64>,
) -> Result<HashMap<i64, String>, DbErr> {
    Ok(questions::Entity::find()
        .filter(questions::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|q| (q.id, q.text))
        .collect())
}

/// Questions of the couple this user has not answered, oldest first, asked at or before
/// `upto` (a seq) when given.
pub async fn owed(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    user_id: Uuid,
    upto: Option<i64>,
    limit: Option<u64>,
) -> Result<Vec<Asked>, DbErr> {
    let answered = Query::select()
        .column(answers::Column::QuestionId)
        .from(answers::Entity)
        .and_where(answers::Column::CoupleId.eq(couple_id))
        .and_where(answers::Column::UserId.eq(user_id))
        .to_owned();
    let mut query = couple_questions::Entity::find()
        .filter(couple_questions::Column::CoupleId.eq(couple_id))
        .filter(couple_questions::Column::QuestionId.not_in_subquery(answered));
    if let Some(upto) = upto {
        query = query.filter(couple_questions::Column::Seq.lte(upto));
    }
    let asked = query
        .order_by_asc(couple_questions::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    with_text(db, asked).await
}

/// The asked questions behind these `question` events.
pub async fn asked_at_seqs(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
    seqs: Vec<i64>,
) -> Result<Vec<Asked>, DbErr> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let asked = couple_questions::Entity::find()
        .filter(couple_questions::Column::CoupleId.eq(couple_id))
        .filter(couple_questions::Column::Seq.is_in(seqs))
        .all(db)
        .await?;
    with_text(db, asked).await
}

/// Every question the couple was asked, newest first, with every answer given to them.
pub async fn asked_with_answers(
    db: &impl ConnectionTrait,
    couple_id: Uuid,
) -> Result<(Vec<Asked>, Vec<Answer>), DbErr> {
    let asked = couple_questions::Entity::find()
        .filter(couple_questions::Column::CoupleId.eq(couple_id))
        .order_by_desc(couple_questions::Column::Seq)
        .all(db)
        .await?;
    let answers = answers::Entity::find()
        .filter(answers::Column::CoupleId.eq(couple_id))
        .all(db)
        .await?;
    Ok((with_text(db, asked).await?, answers))
}

async fn with_text(
    db: &impl ConnectionTrait,
    asked: Vec<couple_questions::Model>,
) -> Result<Vec<Asked>, DbErr> {
    let ids: Vec<i64> = asked.iter().map(|a| a.question_id).collect();
    let texts: HashMap<i64, String> = if ids.is_empty() {
        HashMap::new()
    } else {
        questions::Entity::find()
            .filter(questions::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|q| (q.id, q.text))
            .collect()
    };
    Ok(asked
        .into_iter()
        .map(|a| Asked {
            seq: a.seq,
            question_id: a.question_id,
            text: texts.get(&a.question_id).cloned().unwrap_or_default(),
            keyword: a.keyword,
            asked_at: a.asked_at,
        })
        .collect())
}

/// The outcome of an answer: stored now, or a repeat of one given before.
pub enum Answered {
    /// Stored now, with this seq.
    Now(Answer),
    /// This user had answered before; nothing changed.
    Before(Answer),
}

/// Stores a user's answer to a question their couple was asked. `None` when the couple was
/// never asked it (another couple's question, or no such question).
pub async fn answer(
    db: &DatabaseConnection,
    couple_id: Uuid,
    user_id: Uuid,
    question_id: i64,
    text: &str,
) -> Result<Option<Answered>, DbErr> {
    let txn = db.begin().await?;
    if couple_questions::Entity::find_by_id((couple_id, question_id))
        .one(&txn)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let seq = next_seq(&txn, couple_id).await?;
    // Read after taking the couple's lock: a double submit from two tabs sees the first.
    if let Some(before) = answers::Entity::find_by_id((couple_id, question_id, user_id))
        .one(&txn)
        .await?
    {
        return Ok(Some(Answered::Before(before)));
    }
    let answer = answers::ActiveModel {
        couple_id: Set(couple_id),
        question_id: Set(question_id),
        user_id: Set(user_id),
        text: Set(text.to_owned()),
        seq: Set(seq),
        answered_at: Set(now_millis()),
    }
    .insert(&txn)
    .await?;
    let refs = EventRef {
        question_id: Some(question_id),
        user_id: Some(user_id),
        ..EventRef::default()
    };
    events::append(&txn, couple_id, seq, EventKind::Answered, refs).await?;
    // The second answer closes the question for the couple (see `couples.open_questions`).
    let answers_given = answers::Entity::find()
        .filter(answers::Column::CoupleId.eq(couple_id))
        .filter(answers::Column::QuestionId.eq(question_id))
        .count(&txn)
        .await?;
    if answers_given >= 2 {
        couples::Entity::update_many()
            .col_expr(
                couples::Column::OpenQuestions,
                Expr::col(couples::Column::OpenQuestions).sub(1),
            )
            .filter(couples::Column::Id.eq(couple_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Some(Answered::Now(answer)))
}
