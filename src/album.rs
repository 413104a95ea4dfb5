//! Our album: every photo the couple sent, newest first, in pages, each with the thumbnail
//! the server made of it (`file::thumbnail`) and the chat it came in, to jump to.

use uuid::Uuid;

use crate::error::Result;
use crate::services::Services;
use crate::store;
use crate::view::PhotoView;

/// The photos sent in chats with `seq < before` (or the newest), newest first, at most
/// `limit`; read on the read pool (a long story has many).
pub async fn page(
    services: &Services,
    couple_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<PhotoView>> {
    let reads = services.reads_for(couple_id).await;
    let photos = store::files::album(&reads, couple_id, before, limit).await?;
    Ok(photos.into_iter().map(PhotoView::from).collect())
}
