//! "Thinking of you": a one-tap nudge to the partner. Live only (no seq, not replayed): the
//! partner's sockets show a small animation now, and a partner who is not looking gets a push
//! from this node. A few per minute per user (`DUET_NUDGES_PER_MINUTE`); beyond,
//! `rate_limited`.

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::push::What;
use crate::seats::PerMinute;
use crate::services::Services;

pub fn send(services: &Services, nudges: &PerMinute, me: &Member) -> Result<()> {
    nudges.check(me.user_id).map_err(|_| Error::RateLimited)?;
    let frame = ServerFrame::Nudge {
        user_id: me.user_id,
    };
    publish::to_partner(&services.bus, me.couple_id, me.user_id, &frame);
    services
        .push
        .notify(me.couple_id, me.partner_id, Some(me.user_id), What::Nudge);
    tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, "nudge");
    Ok(())
}
