//! Me in my couple: the ids every action on a couple's conversation starts from. The HTTP
//! extractor `http::Paired` and the socket's handshake both produce one.

use uuid::Uuid;

/// Who is acting, in which couple, with whom, on which session.
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: Uuid,
    pub couple_id: Uuid,
    pub partner_id: Uuid,
    pub session_id: Uuid,
}
