//! Every publish goes through here: what a couple's sockets hear, whichever node holds them.
//! Persisted events carry their seq (sessions drop duplicates and detect gaps by it) and are
//! published only after their commit; the rest (typing, read marks, presence, endings) are
//! live only. The domain modules call these; nothing else touches `Bus::publish`.

use uuid::Uuid;

use crate::bus::{Bus, BusEvent};
use crate::couple::Member;
use crate::frame::ServerFrame;

/// A committed event for both partners; `from` is who it is by, when anyone.
pub fn persisted(bus: &Bus, couple_id: Uuid, seq: i64, from: Option<Uuid>, frame: &ServerFrame) {
    let event = BusEvent::Frame {
        seq: Some(seq),
        skip_user: None,
        from,
        json: frame.to_text(),
    };
    bus.publish(couple_id, event);
}

/// A live frame by `user_id` for the partner's sockets only (typing, read marks).
pub fn to_partner(bus: &Bus, couple_id: Uuid, user_id: Uuid, frame: &ServerFrame) {
    let event = BusEvent::Frame {
        seq: None,
        skip_user: Some(user_id),
        from: Some(user_id),
        json: frame.to_text(),
    };
    bus.publish(couple_id, event);
}

/// A live frame for both partners' sockets that is not in the event log (`couple`).
pub fn to_both(bus: &Bus, couple_id: Uuid, frame: &ServerFrame) {
    let event = BusEvent::Frame {
        seq: None,
        skip_user: None,
        from: None,
        json: frame.to_text(),
    };
    bus.publish(couple_id, event);
}

pub fn presence(bus: &Bus, me: &Member, online: bool) {
    let event = BusEvent::Presence {
        user_id: me.user_id,
        online,
    };
    bus.publish(me.couple_id, event);
}

/// Sockets opened with this session close, on whichever node holds them.
pub fn session_ended(bus: &Bus, couple_id: Uuid, session_id: Uuid) {
    bus.publish(couple_id, BusEvent::SessionEnded { session_id });
}

/// The couple is gone: its sockets close.
pub fn couple_deleted(bus: &Bus, couple_id: Uuid) {
    bus.publish(couple_id, BusEvent::CoupleDeleted);
}

/// Events of the couple may have been committed unannounced: its sessions read what they
/// missed from the database.
pub fn resync(bus: &Bus, couple_id: Uuid) {
    bus.publish(couple_id, BusEvent::Resync);
}
