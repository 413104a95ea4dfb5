//! The group commit's SQL: many sends of many couples persisted together (see
//! `chat::committer` for the batching and `chat::plan` for the rules). Two ways in:
//!
//! - **One statement** (`append_plain`, Postgres only): plain text chats of couples that owe
//!   no answer. It locks the couples' rows in id order, numbers the chats from each couple's
//!   `last_seq`, inserts the chats and advances `last_seq`, all in one round trip and
//!   one implicit transaction. Whether a couple owes anything is read from the row it locks
//!   (`open_questions`), which Postgres re-reads after waiting for the lock, so the answer is
//!   never stale. A `(sender_id, client_id)` that exists already makes the whole statement
//!   fail on the unique index: nothing is written and the batch takes the other way.
//! - **A transaction** (`lock_couples`, `load`, `write`): everything else (questions, files,
//!   retries, couples with open questions, and every batch on SQLite). The couples are locked
//!   first, in id order so two nodes' batches never deadlock; everything the rules need is
//!   read after the lock, so it is current; then the writes are a few multi-row statements.

use std::collections::HashMap;

use super::events::EventKind;
use chrono::{DateTime, Utc};
use entity::{answers, chats, couple_members, couple_questions, couples, events, files, reactions};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

pub use couples::Model as Couple;

/// A chat with no file and no question to ask, ready to take its couple's next seq.
pub struct PlainChat<'a> {
    /// The chat's id.
    pub id: Uuid,
    /// Whose conversation it is in.
    pub couple_id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// The sender's id for the send, which makes a retry of it a repeat (`send` in PROTOCOL.md).
    pub client_id: Uuid,
    /// What it says.
    pub text: &'a str,
    /// The chat it replies to: the statement checks that it is a live chat of the couple.
    pub reply_to: Option<Uuid>,
}

/// A reaction put on (`Some`) or taken away, ready to take its couple's next seq.
pub struct PlainReaction<'a> {
    /// Whose conversation it is in.
    pub couple_id: Uuid,
    /// Who reacts.
    pub user_id: Uuid,
    /// The chat reacted to: the statement checks that it is a live chat of the couple.
    pub chat_id: Uuid,
    /// The reaction; `None` takes it away.
    pub emoji: Option<&'a str>,
}

/// An edit of one's own text chat with no keyword in its new text, ready to take its
/// couple's next seq.
pub struct PlainEdit<'a> {
    /// Whose conversation it is in.
    pub couple_id: Uuid,
    /// Who edits: the statement checks that they sent the chat.
    pub user_id: Uuid,
    /// The chat edited: the statement checks that it is live, of the couple, has text and
    /// can still be edited (`EditRule`).
    pub chat_id: Uuid,
    /// Its new text: the statement checks that it differs.
    pub text: &'a str,
}

/// How far edits go, as the statement checks them.
#[derive(Clone, Copy)]
pub struct EditRule {
    /// Chats sent before this can no longer be edited.
    pub sent_since: DateTime<Utc>,
    /// Chats edited this many times cannot be edited again.
    pub max_edits: i32,
}

/// A send the one statement can take: a chat, a reaction or an edit.
pub enum Plain<'a> {
    /// A chat, a reply too.
    Chat(PlainChat<'a>),
    /// A reaction put on or taken away.
    React(PlainReaction<'a>),
    /// A new text for a chat.
    Edit(PlainEdit<'a>),
}

impl Plain<'_> {
    /// Whose conversation the send is in.
    pub fn couple_id(&self) -> Uuid {
        match self {
            Plain::Chat(chat) => chat.couple_id,
            Plain::React(reaction) => reaction.couple_id,
            Plain::Edit(edit) => edit.couple_id,
        }
    }
}

/// What `append_plain` wrote.
#[derive(Default)]
pub struct Appended {
    /// Each written couple's new `last_seq`.
    pub last_seqs: HashMap<Uuid, i64>,
    /// The chats replied to, as they are now: (seq, sender, text). Only those of the couples
    /// written were checked to be theirs and live.
    pub quoted: HashMap<Uuid, (i64, Uuid, String)>,
}

/// Postgres' unique_violation: a send that exists already.
const UNIQUE_VIOLATION: &str = "23505";

/// Stands for "none" in a uuid array (the driver binds no NULL inside an array); no chat has it.
const NO_CHAT: Uuid = Uuid::nil();

/// Appends plain sends in one statement (Postgres only). A chat is its own entry in the
/// couple's log: `events` holds only the other kinds, so a chat costs one row. Sends of one
/// couple take consecutive seqs in the order given. A couple missing from the answer was not
/// touched and none of its sends were written: it owes an answer, is gone, or has a send the
/// full rules must decide (a reply, reaction or edit to no live chat of the couple, a
/// reaction or an edit that changes nothing, an edit not allowed, an edit of a chat whose
/// words are counted already). `Ok(None)`: one of the chats exists already, and nothing at
/// all was written.
pub async fn append_plain(
    db: &DatabaseConnection,
    sends: &[Plain<'_>],
    sent_at: DateTime<Utc>,
    edits: EditRule,
) -> Result<Option<Appended>, DbErr> {
    let mut counts: HashMap<Uuid, i64> = HashMap::new();
    let places: Vec<i64> = sends
        .iter()
        .map(|send| {
            let count = counts.entry(send.couple_id()).or_default();
            *count += 1;
            *count
        })
        .collect();
    let gestures = sends.iter().any(|s| match s {
        Plain::Chat(chat) => chat.reply_to.is_some(),
        Plain::React(_) | Plain::Edit(_) => true,
    });
    let statement = if gestures {
        with_gestures(sends, &places, counts, sent_at, edits)
    } else {
        chats_only(sends, &places, counts, sent_at)
    };
    match db.query_all_raw(statement).await {
        Ok(rows) => {
            let mut appended = Appended::default();
            for row in rows {
                let id: Uuid = row.try_get("", "id")?;
                let seq: i64 = row.try_get("", "last_seq")?;
                match row.try_get::<Option<Uuid>>("", "sender_id")? {
                    None => {
                        appended.last_seqs.insert(id, seq);
                    }
                    Some(sender_id) => {
                        let text = row.try_get::<Option<String>>("", "text")?;
                        let quote = (seq, sender_id, text.unwrap_or_default());
                        appended.quoted.insert(id, quote);
                    }
                }
            }
            Ok(Some(appended))
        }
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One array parameter: a field of each of the rows.
fn column<T, U>(rows: &[T], field: impl Fn(&T) -> U) -> sea_orm::Value
where
    Vec<U>: Into<sea_orm::Value>,
{
    rows.iter().map(field).collect::<Vec<U>>().into()
}

/// The couples' ids in id order with how many seqs each takes.
fn by_couple(counts: HashMap<Uuid, i64>) -> (Vec<Uuid>, Vec<i64>) {
    let mut couples: Vec<(Uuid, i64)> = counts.into_iter().collect();
    couples.sort_unstable();
    couples.into_iter().unzip()
}

/// Chats and nothing else: the statement of most batches, kept as short as it can be.
fn chats_only(
    sends: &[Plain<'_>],
    places: &[i64],
    counts: HashMap<Uuid, i64>,
    sent_at: DateTime<Utc>,
) -> Statement {
    // `locked` takes the couples' row locks in id order; after waiting for another node's
    // batch, Postgres re-reads the row, so `last_seq` and `open_questions` are current. The
    // data-modifying parts then see only couples that were locked. Every position and count
    // is worked out here rather than in SQL: a short plan is most of what a statement costs
    // Postgres when batches are small. The couples come as their own array so that they are
    // found through the primary key (a plan prepared for any batch would otherwise scan).
    const SQL: &str = r#"
WITH locked AS (
    SELECT id, last_seq FROM couples
    WHERE id = ANY($1::uuid[]) AND open_questions = 0
    ORDER BY id
    FOR UPDATE
),
new_chats AS (
    INSERT INTO chats (id, couple_id, seq, sender_id, client_id, text, sent_at)
    SELECT b.id, b.couple_id, l.last_seq + b.place, b.sender_id, b.client_id, b.text, $8
    FROM unnest($3::uuid[], $4::uuid[], $5::int8[], $6::uuid[], $7::uuid[], $9::text[])
        AS b(id, couple_id, place, sender_id, client_id, text)
    JOIN locked l ON l.id = b.couple_id
)
UPDATE couples c SET last_seq = l.last_seq + k.n
FROM locked l JOIN unnest($1::uuid[], $2::int8[]) AS k(id, n) ON k.id = l.id
WHERE c.id = l.id
RETURNING c.id, c.last_seq, NULL::uuid AS sender_id
"#;
    let (couples, seqs) = by_couple(counts);
    let chats: Vec<&PlainChat<'_>> = sends
        .iter()
        .filter_map(|s| match s {
            Plain::Chat(chat) => Some(chat),
            Plain::React(_) | Plain::Edit(_) => None,
        })
        .collect();
    let values: Vec<sea_orm::Value> = vec![
        couples.into(),
        seqs.into(),
        column(&chats, |c| c.id),
        column(&chats, |c| c.couple_id),
        places.to_vec().into(),
        column(&chats, |c| c.sender_id),
        column(&chats, |c| c.client_id),
        sent_at.into(),
        column(&chats, |c| c.text.to_owned()),
    ];
    Statement::from_sql_and_values(DbBackend::Postgres, SQL, values)
}

/// Chats, replies, reactions and edits. What the rules would read (the chats replied or
/// reacted to, the reactions now) is read in the statement's snapshot, which may be older
/// than the row lock it then waits for. Every change to a couple's chats and reactions moves
/// its `last_seq` under that lock, so a couple whose `last_seq` is the same in the snapshot
/// and under the lock was read as it is; any other couple that replies, reacts or edits is
/// left to the full rules.
///
/// An edit changes what our words count. The statement shares the couple's word mark (after
/// the couples' locks, the order every writer uses) and edits here only a chat the counts
/// have not reached: a count that holds the mark is waited for, one that comes later reads
/// the new text. A couple with no mark yet gets one here, held until the statement ends; if a
/// first count created it meanwhile (the snapshot cannot see that one), the couple is left to
/// the full rules.
///
/// The statement holds only the parts its batch needs (`gesture_sql`): each part is planned
/// once per connection, but every part present is set up and run at every call, empty or
/// not, and most batches carry one or two kinds of gesture, not all three.
fn with_gestures(
    sends: &[Plain<'_>],
    places: &[i64],
    counts: HashMap<Uuid, i64>,
    sent_at: DateTime<Utc>,
    rule: EditRule,
) -> Statement {
    let (couples, seqs) = by_couple(counts);
    let mut chats: Vec<(&PlainChat<'_>, i64)> = Vec::new();
    let mut reactions: Vec<(&PlainReaction<'_>, i64)> = Vec::new();
    let mut edits: Vec<(&PlainEdit<'_>, i64)> = Vec::new();
    for (send, &place) in sends.iter().zip(places) {
        match send {
            Plain::Chat(chat) => chats.push((chat, place)),
            Plain::React(reaction) => reactions.push((reaction, place)),
            Plain::Edit(edit) => edits.push((edit, place)),
        }
    }
    let quoted: Vec<Uuid> = chats.iter().filter_map(|(c, _)| c.reply_to).collect();
    // Only a couple with a reply, a reaction or an edit read anything beyond its own row.
    let mut gesturing: Vec<Uuid> = chats
        .iter()
        .filter(|(c, _)| c.reply_to.is_some())
        .map(|(c, _)| c.couple_id)
        .chain(reactions.iter().map(|(r, _)| r.couple_id))
        .chain(edits.iter().map(|(e, _)| e.couple_id))
        .collect();
    gesturing.sort_unstable();
    gesturing.dedup();
    let parts = Parts {
        chats: !chats.is_empty(),
        replies: !quoted.is_empty(),
        reactions: !reactions.is_empty(),
        edits: !edits.is_empty(),
    };
    let values: Vec<sea_orm::Value> = vec![
        couples.into(),
        seqs.into(),
        column(&chats, |(c, _)| c.id),
        column(&chats, |(c, _)| c.couple_id),
        column(&chats, |(_, p)| *p),
        column(&chats, |(c, _)| c.sender_id),
        column(&chats, |(c, _)| c.client_id),
        sent_at.into(),
        column(&chats, |(c, _)| c.text.to_owned()),
        column(&chats, |(c, _)| c.reply_to.unwrap_or(NO_CHAT)),
        column(&reactions, |(r, _)| r.couple_id),
        column(&reactions, |(_, p)| *p),
        column(&reactions, |(r, _)| r.chat_id),
        column(&reactions, |(r, _)| r.user_id),
        column(&reactions, |(r, _)| r.emoji.unwrap_or_default().to_owned()),
        EventKind::Reacted.as_str().into(),
        quoted.into(),
        NO_CHAT.into(),
        gesturing.into(),
        column(&edits, |(e, _)| e.couple_id),
        column(&edits, |(_, p)| *p),
        column(&edits, |(e, _)| e.chat_id),
        column(&edits, |(e, _)| e.user_id),
        column(&edits, |(e, _)| e.text.to_owned()),
        EventKind::Edited.as_str().into(),
        rule.sent_since.into(),
        rule.max_edits.into(),
    ];
    Statement::from_sql_and_values(DbBackend::Postgres, gesture_sql(parts), values)
}

/// What a batch of `with_gestures` holds, so which parts its statement needs.
#[derive(Clone, Copy)]
struct Parts {
    chats: bool,
    replies: bool,
    reactions: bool,
    edits: bool,
}

impl Parts {
    fn index(self) -> usize {
        usize::from(self.chats)
            | usize::from(self.replies) << 1
            | usize::from(self.reactions) << 2
            | usize::from(self.edits) << 3
    }

    fn all() -> impl Iterator<Item = Parts> {
        (0..16usize).map(|bits| Parts {
            chats: bits & 1 != 0,
            replies: bits & 2 != 0,
            reactions: bits & 4 != 0,
            edits: bits & 8 != 0,
        })
    }
}

/// The statement for a batch holding `parts`, written once for each of the sixteen. Every
/// variant takes the same 27 parameters; those of a part it lacks are bound and unused.
fn gesture_sql(parts: Parts) -> &'static str {
    static STATEMENTS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| Parts::all().map(write_gesture_sql).collect());
    STATEMENTS.get(parts.index()).map_or("", String::as_str)
}

fn write_gesture_sql(parts: Parts) -> String {
    let Parts {
        chats,
        replies,
        reactions,
        edits,
    } = parts;
    let mut sql = String::from(
        r#"
WITH seen AS (
    SELECT id, last_seq FROM couples WHERE id = ANY($1::uuid[])
),
locked AS (
    SELECT id, last_seq FROM couples
    WHERE id = ANY($1::uuid[]) AND open_questions = 0
    ORDER BY id
    FOR UPDATE
),"#,
    );
    let targets: Vec<&str> = [
        replies.then_some(
            r#"
    SELECT g.couple_id, t.id AS found
    FROM unnest($4::uuid[], $10::uuid[]) AS g(couple_id, chat_id)
    LEFT JOIN chats t ON t.id = g.chat_id AND t.couple_id = g.couple_id AND t.deleted_at IS NULL
    WHERE g.chat_id <> $18::uuid"#,
        ),
        reactions.then_some(
            r#"
    SELECT x.couple_id, t.id AS found
    FROM unnest($11::uuid[], $13::uuid[]) AS x(couple_id, chat_id)
    LEFT JOIN chats t ON t.id = x.chat_id AND t.couple_id = x.couple_id AND t.deleted_at IS NULL"#,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !targets.is_empty() {
        sql += "
targets AS (";
        sql += &targets.join(
            "
    UNION ALL",
        );
        sql += "
),";
    }
    if reactions {
        // A scalar subquery is a keyed lookup whatever the plan made for a small table.
        sql += r#"
unchanged AS (
    SELECT x.couple_id
    FROM unnest($11::uuid[], $13::uuid[], $14::uuid[], $15::text[])
        AS x(couple_id, chat_id, user_id, emoji)
    WHERE NULLIF(x.emoji, '') IS NOT DISTINCT FROM
        (SELECT r.emoji FROM reactions r WHERE r.chat_id = x.chat_id AND r.user_id = x.user_id)
),"#;
    }
    if edits {
        sql += r#"
edits AS (
    SELECT e.couple_id, e.place, e.chat_id, e.user_id, e.text, t.seq AS chat_seq
    FROM unnest($20::uuid[], $21::int8[], $22::uuid[], $23::uuid[], $24::text[])
        AS e(couple_id, place, chat_id, user_id, text)
    LEFT JOIN chats t ON t.id = e.chat_id AND t.couple_id = e.couple_id
        AND t.deleted_at IS NULL AND t.sender_id = e.user_id AND t.text <> ''
        AND t.text <> e.text AND t.sent_at >= $26 AND t.edits < $27
),"#;
    }
    // Without edits, the couples that pass the checks are the ones written (`ok`).
    sql += if edits {
        "
checked AS ("
    } else {
        "
ok AS ("
    };
    sql += r#"
    SELECT l.id, l.last_seq FROM locked l JOIN seen s ON s.id = l.id
    WHERE (s.last_seq = l.last_seq OR NOT l.id = ANY($19::uuid[]))"#;
    if !targets.is_empty() {
        sql += r#"
    AND NOT EXISTS (SELECT 1 FROM targets g WHERE g.couple_id = l.id AND g.found IS NULL)"#;
    }
    if reactions {
        sql += r#"
    AND NOT EXISTS (SELECT 1 FROM unchanged u WHERE u.couple_id = l.id)"#;
    }
    if edits {
        sql += r#"
    AND NOT EXISTS (SELECT 1 FROM edits e WHERE e.couple_id = l.id AND e.chat_seq IS NULL)
),
new_marks AS (
    INSERT INTO word_marks (couple_id, counted_seq)
    SELECT DISTINCT e.couple_id, 0 FROM edits e JOIN checked c ON c.id = e.couple_id
    WHERE NOT EXISTS (SELECT 1 FROM word_marks w WHERE w.couple_id = e.couple_id)
    ON CONFLICT (couple_id) DO NOTHING
    RETURNING couple_id, counted_seq
),
marks AS (
    SELECT m.couple_id, m.counted_seq FROM word_marks m
    WHERE m.couple_id IN (SELECT e.couple_id FROM edits e JOIN checked c ON c.id = e.couple_id)
    FOR SHARE
),
ok AS (
    SELECT c.id, c.last_seq FROM checked c
    WHERE NOT EXISTS (
        SELECT 1 FROM edits e
        LEFT JOIN (SELECT * FROM marks UNION ALL SELECT * FROM new_marks) m
            ON m.couple_id = e.couple_id
        WHERE e.couple_id = c.id AND (m.counted_seq IS NULL OR m.counted_seq >= e.chat_seq)
    )"#;
    }
    sql += "
),";
    if chats {
        sql += r#"
new_chats AS (
    INSERT INTO chats (id, couple_id, seq, sender_id, client_id, text, sent_at, reply_to)
    SELECT b.id, b.couple_id, l.last_seq + b.place, b.sender_id, b.client_id, b.text, $8,
        NULLIF(b.reply_to, $18::uuid)
    FROM unnest($3::uuid[], $4::uuid[], $5::int8[], $6::uuid[], $7::uuid[], $9::text[], $10::uuid[])
        AS b(id, couple_id, place, sender_id, client_id, text, reply_to)
    JOIN ok l ON l.id = b.couple_id
),"#;
    }
    if reactions {
        sql += r#"
reacted AS (
    SELECT x.couple_id, l.last_seq + x.place AS seq, x.chat_id, x.user_id,
        NULLIF(x.emoji, '') AS emoji
    FROM unnest($11::uuid[], $12::int8[], $13::uuid[], $14::uuid[], $15::text[])
        AS x(couple_id, place, chat_id, user_id, emoji)
    JOIN ok l ON l.id = x.couple_id
),
put_on AS (
    INSERT INTO reactions (chat_id, user_id, couple_id, emoji, seq, reacted_at)
    SELECT chat_id, user_id, couple_id, emoji, seq, $8 FROM reacted WHERE emoji IS NOT NULL
    ON CONFLICT (chat_id, user_id)
    DO UPDATE SET emoji = excluded.emoji, seq = excluded.seq, reacted_at = excluded.reacted_at
),
taken_away AS (
    DELETE FROM reactions r USING reacted x
    WHERE x.emoji IS NULL AND r.chat_id = x.chat_id AND r.user_id = x.user_id
),"#;
    }
    if edits {
        sql += r#"
edited AS (
    SELECT e.couple_id, l.last_seq + e.place AS seq, e.chat_id, e.user_id, e.text
    FROM edits e JOIN ok l ON l.id = e.couple_id
),
rewritten AS (
    UPDATE chats c SET text = x.text, edits = c.edits + 1, edited_seq = x.seq,
        first_text = COALESCE(c.first_text, c.text)
    FROM edited x WHERE c.id = x.chat_id
),"#;
    }
    let logged: Vec<&str> = [
        reactions.then_some(
            "
    SELECT couple_id, seq, $16, chat_id, user_id, $8, emoji FROM reacted",
        ),
        edits.then_some(
            "
    SELECT couple_id, seq, $25, chat_id, user_id, $8, text FROM edited",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !logged.is_empty() {
        sql += "
logged AS (
    INSERT INTO events (couple_id, seq, kind, chat_id, user_id, created_at, text)";
        sql += &logged.join(
            "
    UNION ALL",
        );
        sql += "
),";
    }
    sql += r#"
moved AS (
    UPDATE couples c SET last_seq = l.last_seq + k.n
    FROM ok l JOIN unnest($1::uuid[], $2::int8[]) AS k(id, n) ON k.id = l.id
    WHERE c.id = l.id
    RETURNING c.id, c.last_seq
)
SELECT id, last_seq, NULL::uuid AS sender_id, NULL::text AS text FROM moved"#;
    if replies {
        sql += r#"
UNION ALL
SELECT id, seq, sender_id, text FROM chats WHERE id = ANY($17::uuid[])"#;
    }
    sql.push('\n');
    sql
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) || e.to_string().contains(UNIQUE_VIOLATION)
}

/// Locks the couples' rows for the transaction, in id order (the order every node uses, so
/// batches never deadlock). On SQLite the one connection is the lock.
pub async fn lock_couples(
    txn: &DatabaseTransaction,
    mut ids: Vec<Uuid>,
) -> Result<Vec<Couple>, DbErr> {
    ids.sort_unstable();
    ids.dedup();
    couples::Entity::find()
        .filter(couples::Column::Id.is_in(ids))
        .order_by_asc(couples::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await
}

/// A question a couple was asked, with who has answered it.
pub struct AskedBefore {
    /// The couple asked.
    pub couple_id: Uuid,
    /// The question asked.
    pub question_id: i64,
    /// The members who have answered it (both: it no longer holds the chat).
    pub answered_by: Vec<Uuid>,
}

/// What the rules of a send need to know, read under the couples' locks.
#[derive(Default)]
pub struct Loaded {
    /// The questions the couples were asked that are still open, and those of the sends'
    /// triggers asked before, oldest first: who owes what, and what is not asked again.
    pub asked: Vec<AskedBefore>,
    /// Chats these senders sent with these client_ids before: the sends are retries.
    pub earlier: Vec<chats::Model>,
    /// The texts of the questions the sends would ask (a question removed from the
    /// catalogue since the node loaded it is absent and is not asked).
    pub questions: HashMap<i64, String>,
    /// The files the sends would carry, locked until commit.
    pub files: Vec<files::Model>,
    /// The chats the sends reply to, react to or edit (of any couple: the rules check).
    pub targets: Vec<chats::Model>,
    /// The reactions the reacting senders have on those chats now.
    pub reactions: Vec<reactions::Model>,
}

/// What the rules of a batch read beyond the sends themselves.
#[derive(Default)]
pub struct Wanted {
    /// The questions the sends' texts bring up.
    pub question_ids: Vec<i64>,
    /// The uploads they carry.
    pub file_ids: Vec<Uuid>,
    /// The chats they reply to, react to or edit.
    pub target_ids: Vec<Uuid>,
    /// The users who react.
    pub reactors: Vec<Uuid>,
    /// Whether a couple of the batch owes an answer (its locked row's `open_questions`): only
    /// then, or when the sends bring questions up, are the asked questions read.
    pub owing: bool,
}

/// Reads what the rules of a batch of sends need, in the transaction that holds the couples'
/// locks (every write to a couple's chats holds its lock, so the chats read are current):
/// `sends` are the chats' (sender, client_id) pairs.
pub async fn load(
    txn: &DatabaseTransaction,
    couple_ids: &[Uuid],
    sends: &[(Uuid, Uuid)],
    wanted: Wanted,
) -> Result<Loaded, DbErr> {
    let Wanted {
        question_ids,
        file_ids,
        target_ids,
        reactors,
        owing,
    } = wanted;
    // Only what the rules can use: questions still open (a partner's answer missing), which
    // gate, and among those the sends would bring up, whether they were asked before. A long
    // story's answered questions are neither.
    let open = Expr::cust(
        "(SELECT COUNT(*) FROM answers \
          WHERE answers.couple_id = couple_questions.couple_id \
          AND answers.question_id = couple_questions.question_id) < 2",
    );
    let asked_rows = if owing || !question_ids.is_empty() {
        couple_questions::Entity::find()
            .filter(couple_questions::Column::CoupleId.is_in(couple_ids.to_vec()))
            .filter(
                Condition::any()
                    .add(open)
                    .add(couple_questions::Column::QuestionId.is_in(question_ids.clone())),
            )
            .order_by_asc(couple_questions::Column::Seq)
            .all(txn)
            .await?
    } else {
        Vec::new()
    };
    let mut asked = Vec::with_capacity(asked_rows.len());
    if !asked_rows.is_empty() {
        let answers = answers::Entity::find()
            .filter(answers::Column::CoupleId.is_in(couple_ids.to_vec()))
            .filter(
                answers::Column::QuestionId
                    .is_in(asked_rows.iter().map(|r| r.question_id).collect::<Vec<_>>()),
            )
            .all(txn)
            .await?;
        for row in asked_rows {
            let answered_by = answers
                .iter()
                .filter(|a| a.couple_id == row.couple_id && a.question_id == row.question_id)
                .map(|a| a.user_id)
                .collect();
            asked.push(AskedBefore {
                couple_id: row.couple_id,
                question_id: row.question_id,
                answered_by,
            });
        }
    }
    let senders: Vec<Uuid> = sends.iter().map(|s| s.0).collect();
    let client_ids: Vec<Uuid> = sends.iter().map(|s| s.1).collect();
    let earlier = if sends.is_empty() {
        Vec::new()
    } else {
        chats::Entity::find()
            .filter(chats::Column::SenderId.is_in(senders))
            .filter(chats::Column::ClientId.is_in(client_ids))
            .all(txn)
            .await?
            .into_iter()
            .filter(|c| sends.contains(&(c.sender_id, c.client_id)))
            .collect()
    };
    let questions = if question_ids.is_empty() {
        HashMap::new()
    } else {
        super::questions::texts(txn, question_ids).await?
    };
    let files = if file_ids.is_empty() {
        Vec::new()
    } else {
        files::Entity::find()
            .filter(files::Column::Id.is_in(file_ids))
            .lock_exclusive()
            .all(txn)
            .await?
    };
    let targets = if target_ids.is_empty() {
        Vec::new()
    } else {
        chats::Entity::find()
            .filter(chats::Column::Id.is_in(target_ids.clone()))
            .filter(chats::Column::CoupleId.is_in(couple_ids.to_vec()))
            .all(txn)
            .await?
    };
    let reactions = if reactors.is_empty() {
        Vec::new()
    } else {
        reactions::Entity::find()
            .filter(reactions::Column::ChatId.is_in(target_ids))
            .filter(reactions::Column::UserId.is_in(reactors))
            .all(txn)
            .await?
    };
    Ok(Loaded {
        asked,
        earlier,
        questions,
        files,
        targets,
        reactions,
    })
}

/// Everything a batch writes, decided under the locks.
#[derive(Default)]
pub struct Writes {
    /// New chats.
    pub chats: Vec<chats::Model>,
    /// The events that tell the couples, one seq each.
    pub events: Vec<events::Model>,
    /// Questions the couples are asked now.
    pub asked: Vec<couple_questions::Model>,
    /// (file, chat): uploads attached to the chats carrying them.
    pub attach: Vec<(Uuid, Uuid)>,
    /// (couple, new last_seq, questions opened).
    pub couples: Vec<(Uuid, i64, i32)>,
    /// Reactions put on, replaced or taken away, in order.
    pub reactions: Vec<ReactionWrite>,
    /// Chats edited, in order.
    pub edits: Vec<Edit>,
}

/// A partner's reaction to a chat as it is to be: `set`, or none.
#[derive(Debug)]
pub struct ReactionWrite {
    /// The chat reacted to.
    pub chat_id: Uuid,
    /// Who reacted.
    pub user_id: Uuid,
    /// Their reaction now; `None`: taken away.
    pub set: Option<reactions::Model>,
}

/// A chat as an edit leaves it, and its text before.
#[derive(Debug)]
pub struct Edit {
    /// The chat with its new text.
    pub chat: chats::Model,
    /// Its text before the edit.
    pub before: String,
}

/// Writes a batch's rows in a few multi-row statements, in the transaction that read them.
/// `words_of` splits an edited text into the words our words count. Our words follow an edit
/// in the same transaction, under the couple's word mark: a look counting at that moment is
/// waited for (rare, and short), which is what keeps the counts exact.
pub async fn write(
    txn: &DatabaseTransaction,
    writes: Writes,
    words_of: impl Fn(&str) -> Vec<String>,
) -> Result<(), DbErr> {
    if !writes.chats.is_empty() {
        chats::Entity::insert_many(writes.chats.into_iter().map(chats::ActiveModel::from))
            .exec_without_returning(txn)
            .await?;
    }
    if !writes.asked.is_empty() {
        couple_questions::Entity::insert_many(
            writes
                .asked
                .into_iter()
                .map(couple_questions::ActiveModel::from),
        )
        .exec_without_returning(txn)
        .await?;
    }
    if !writes.events.is_empty() {
        events::Entity::insert_many(writes.events.into_iter().map(events::ActiveModel::from))
            .exec_without_returning(txn)
            .await?;
    }
    for (file_id, chat_id) in writes.attach {
        // The row is locked and was checked in `load`; this cannot miss.
        files::Entity::update_many()
            .col_expr(files::Column::ChatId, Expr::value(Some(chat_id)))
            .filter(files::Column::Id.eq(file_id))
            .filter(files::Column::ChatId.is_null())
            .exec(txn)
            .await?;
    }
    write_reactions(txn, writes.reactions).await?;
    for edit in writes.edits {
        let chat = &edit.chat;
        chats::Entity::update_many()
            .col_expr(chats::Column::Text, Expr::value(chat.text.clone()))
            .col_expr(chats::Column::Edits, Expr::value(chat.edits))
            .col_expr(chats::Column::EditedSeq, Expr::value(chat.edited_seq))
            .col_expr(
                chats::Column::FirstText,
                Expr::value(chat.first_text.clone()),
            )
            .filter(chats::Column::Id.eq(chat.id))
            .exec(txn)
            .await?;
        super::words::recount(txn, chat, words_of(&edit.before), words_of(&chat.text)).await?;
    }
    advance(txn, writes.couples).await
}

/// Each reaction as the batch leaves it (a partner's second reaction to a chat in one batch
/// replaces the first), in two statements: the ones put on, the ones taken away.
async fn write_reactions(txn: &DatabaseTransaction, all: Vec<ReactionWrite>) -> Result<(), DbErr> {
    if all.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<(Uuid, Uuid), Option<reactions::Model>> = HashMap::new();
    for reaction in all {
        last.insert((reaction.chat_id, reaction.user_id), reaction.set);
    }
    let (set, gone): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, set)| set.is_some());
    let set: Vec<reactions::ActiveModel> = set
        .into_iter()
        .filter_map(|(_, set)| set.map(reactions::ActiveModel::from))
        .collect();
    if !set.is_empty() {
        reactions::Entity::insert_many(set)
            .on_conflict(
                OnConflict::columns([reactions::Column::ChatId, reactions::Column::UserId])
                    .update_columns([
                        reactions::Column::Emoji,
                        reactions::Column::Seq,
                        reactions::Column::ReactedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    if !gone.is_empty() {
        let mut which = Condition::any();
        for ((chat_id, user_id), _) in gone {
            which = which.add(
                Condition::all()
                    .add(reactions::Column::ChatId.eq(chat_id))
                    .add(reactions::Column::UserId.eq(user_id)),
            );
        }
        reactions::Entity::delete_many()
            .filter(which)
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Moves the couples' `last_seq` (and open questions) on: one statement on Postgres.
async fn advance(txn: &DatabaseTransaction, couples: Vec<(Uuid, i64, i32)>) -> Result<(), DbErr> {
    if couples.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        const SQL: &str = r#"
UPDATE couples c SET last_seq = v.last_seq, open_questions = c.open_questions + v.opened
FROM unnest($1::uuid[], $2::int8[], $3::int4[]) AS v(id, last_seq, opened)
WHERE c.id = v.id
"#;
        let values: Vec<sea_orm::Value> = vec![
            couples.iter().map(|c| c.0).collect::<Vec<_>>().into(),
            couples.iter().map(|c| c.1).collect::<Vec<_>>().into(),
            couples.iter().map(|c| c.2).collect::<Vec<_>>().into(),
        ];
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL,
            values,
        ))
        .await?;
        return Ok(());
    }
    // SQLite: statements run in-process, one per couple costs no round trip.
    for (couple_id, last_seq, opened) in couples {
        couples::Entity::update_many()
            .col_expr(couples::Column::LastSeq, Expr::value(last_seq))
            .col_expr(
                couples::Column::OpenQuestions,
                Expr::col(couples::Column::OpenQuestions).add(opened),
            )
            .filter(couples::Column::Id.eq(couple_id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Moves read marks forward (never back), many users at once: `(user, couple, seq)`, each
/// matched by user and couple, so a mark from a socket of a user's old couple (the break-up
/// closes it, but a mark may be on its way) never moves their mark in a new one. Returns
/// `(user, couple, seq)` for the marks that moved.
pub async fn mark_read(
    db: &DatabaseConnection,
    marks: &[(Uuid, Uuid, i64)],
) -> Result<Vec<(Uuid, Uuid, i64)>, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        const SQL: &str = r#"
UPDATE couple_members m SET read_seq = v.seq
FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS v(user_id, couple_id, seq)
WHERE m.user_id = v.user_id AND m.couple_id = v.couple_id AND m.read_seq < v.seq
RETURNING m.user_id, m.couple_id, m.read_seq
"#;
        let values: Vec<sea_orm::Value> = vec![
            marks.iter().map(|m| m.0).collect::<Vec<_>>().into(),
            marks.iter().map(|m| m.1).collect::<Vec<_>>().into(),
            marks.iter().map(|m| m.2).collect::<Vec<_>>().into(),
        ];
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                SQL,
                values,
            ))
            .await?;
        return rows
            .into_iter()
            .map(|row| {
                Ok((
                    row.try_get("", "user_id")?,
                    row.try_get("", "couple_id")?,
                    row.try_get("", "read_seq")?,
                ))
            })
            .collect();
    }
    // SQLite: statements run in-process, one per mark costs no round trip.
    let mut moved = Vec::new();
    for &(user_id, couple_id, seq) in marks {
        let updated = couple_members::Entity::update_many()
            .col_expr(couple_members::Column::ReadSeq, Expr::value(seq))
            .filter(couple_members::Column::UserId.eq(user_id))
            .filter(couple_members::Column::CoupleId.eq(couple_id))
            .filter(couple_members::Column::ReadSeq.lt(seq))
            .exec_with_returning(db)
            .await?;
        moved.extend(updated.into_iter().map(|m| (m.user_id, m.couple_id, seq)));
    }
    Ok(moved)
}
