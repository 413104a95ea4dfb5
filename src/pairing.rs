//! Becoming a couple: a request sent to a username, accepted or declined by its receiver,
//! or withdrawn by its sender; and finding a user's couple. Races (two accepts, two requests
//! at once) are settled by the database's unique constraints and translated here; accepts
//! that share a person queue on their two people's rows, taken in one order
//! (`store::couples::accept_request`).

use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result, ResultExt};
use crate::services::Services;
use crate::store;
use crate::store::couples::{MyCouple, RequestView, Standing};

pub use crate::store::couples::SocketStanding;
use crate::store::users::User;

/// Sends a pairing request from `me` to `username`.
pub async fn request(services: &Services, me: User, username: &str) -> Result<RequestView> {
    let to = store::users::by_username(&services.db, username)
        .await?
        .ok_or(Error::NotFound)?;
    if to.id == me.id {
        return Err(Error::InvalidInput("you cannot pair with yourself".into()));
    }
    if store::couples::is_paired(&services.db, me.id).await?
        || store::couples::is_paired(&services.db, to.id).await?
    {
        return Err(Error::AlreadyPaired);
    }
    let request = store::couples::create_request(&services.db, me.id, to.id)
        .await
        .on_unique_violation(|| Error::DuplicateRequest)?;
    tracing::info!(user_id = %me.id, to_user_id = %to.id, "pairing requested");
    Ok(RequestView {
        request,
        from: me,
        to,
    })
}

/// The requests I received and those I sent, still open.
pub async fn requests(
    services: &Services,
    user_id: Uuid,
) -> Result<(Vec<RequestView>, Vec<RequestView>)> {
    Ok(store::couples::requests_of(&services.db, user_id).await?)
}

/// Accepts a request sent to me: we are a couple.
pub async fn accept(services: &Services, request_id: Uuid, user_id: Uuid) -> Result<MyCouple> {
    let couple = store::couples::accept_request(&services.db, request_id, user_id)
        .await
        .on_unique_violation(|| Error::AlreadyPaired)?
        .ok_or(Error::NotFound)?;
    tracing::info!(%user_id, couple_id = %couple.id, "paired");
    my_couple(services, user_id).await?.ok_or(Error::NotFound)
}

/// Declines a request sent to me, or withdraws one I sent.
pub async fn remove(services: &Services, request_id: Uuid, user_id: Uuid) -> Result<()> {
    if !store::couples::delete_request(&services.db, request_id, user_id).await? {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// My couple as I see it (for `/api/me` and after pairing or restoring).
pub async fn my_couple(services: &Services, user_id: Uuid) -> Result<Option<MyCouple>> {
    Ok(store::couples::my_couple(&services.db, user_id).await?)
}

/// Me in my couple, when I am in one: what every action on the conversation starts from.
pub async fn member(
    services: &Services,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<Option<Member>> {
    let found = store::couples::partner_of(&services.db, user_id).await?;
    Ok(found.map(|(couple_id, partner_id)| Member {
        user_id,
        couple_id,
        partner_id,
        session_id,
    }))
}

/// Where the couple stands for a socket's `hello`: its last seq and the partner's read mark.
/// `None` once the couple is gone.
pub async fn standing(services: &Services, me: &Member) -> Result<Option<Standing>> {
    Ok(store::couples::standing(&services.db, me.couple_id, me.partner_id).await?)
}

/// Whether an open socket may go on, and how far its couple's events go: what every catch-up
/// of a socket reads, so a session or couple that ended closes the socket at the latest
/// one ping interval later, even if the bus message saying so was lost.
pub async fn socket_standing(services: &Services, me: &Member) -> Result<SocketStanding> {
    Ok(
        store::couples::socket_standing(&services.db, me.session_id, me.user_id, me.couple_id)
            .await?,
    )
}
