//! A long history in seconds: chats (and files) written straight into the test's database.

use super::*;

/// Writes `count` chats of the couple of `a` and `b` (seqs 1..=count, texts `chat <seq>`,
/// alternating senders) straight into the database, with a sent file named `f<seq>.png`
/// (metadata only, no blob) on each chat `carries` picks, and moves the couple's last seq.
pub async fn seed_history(
    node: &TestNode,
    a: &User,
    b: &User,
    count: i64,
    carries: impl Fn(i64) -> bool,
) {
    use entity::{chats, couple_members, couples, files};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

    let db = Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let couple_id = couple_members::Entity::find()
        .filter(couple_members::Column::UserId.eq(a.id))
        .one(&db)
        .await
        .expect("reading the couple")
        .expect("a couple")
        .couple_id;
    let now = chrono::Utc::now();
    let mut chat_rows = Vec::new();
    let mut file_rows = Vec::new();
    for seq in 1..=count {
        let id = Uuid::now_v7();
        let sender = if seq % 2 == 0 { a.id } else { b.id };
        chat_rows.push(chats::ActiveModel {
            id: Set(id),
            couple_id: Set(couple_id),
            seq: Set(seq),
            sender_id: Set(sender),
            client_id: Set(Uuid::new_v4()),
            text: Set(format!("chat {seq}")),
            sent_at: Set(now),
            deleted_at: Set(None),
            reply_to: Set(None),
            edits: Set(0),
            edited_seq: Set(None),
            first_text: Set(None),
        });
        if carries(seq) {
            file_rows.push(files::ActiveModel {
                id: Set(Uuid::now_v7()),
                couple_id: Set(couple_id),
                owner_id: Set(sender),
                name: Set(format!("f{seq}.png")),
                size: Set(75),
                content_type: Set("image/png".into()),
                width: Set(Some(3)),
                height: Set(Some(2)),
                blob: Set(format!("seeded-{seq}")),
                chat_id: Set(Some(id)),
                created_at: Set(now),
                deleted_at: Set(None),
                thumb_blob: Set(None),
                thumb_width: Set(None),
                thumb_height: Set(None),
                duration_ms: Set(None),
            });
        }
    }
    // Batches stay under SQLite's limit of bound values per statement.
    while !chat_rows.is_empty() {
        let batch: Vec<_> = chat_rows.drain(..chat_rows.len().min(500)).collect();
        chats::Entity::insert_many(batch)
            .exec(&db)
            .await
            .expect("seeding chats");
    }
    while !file_rows.is_empty() {
        let batch: Vec<_> = file_rows.drain(..file_rows.len().min(500)).collect();
        files::Entity::insert_many(batch)
            .exec(&db)
            .await
            .expect("seeding files");
    }
    couples::Entity::update_many()
        .col_expr(
            couples::Column::LastSeq,
            sea_orm::sea_query::Expr::value(count),
        )
        .filter(couples::Column::Id.eq(couple_id))
        .exec(&db)
        .await
        .expect("moving the couple's last seq");
    db.close().await.ok();
}
