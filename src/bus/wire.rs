//! How an event travels on a couple's channel: a header line naming the publishing node and
//! the event, then the frame's JSON as is. Both Redis backends (one server, or a cluster with
//! sharded channels) carry the same bytes.

use axum::extract::ws::Utf8Bytes;
use uuid::Uuid;

use super::BusEvent;

/// The wire form of an event on a channel: a header line naming the publishing node and the
/// event, then the frame's JSON as is. It is written straight into the pipeline's buffer, so
/// a frame is serialized once and copied once on its way to Redis.
pub(super) struct Wire<'a> {
    pub origin: &'a str,
    pub event: &'a BusEvent,
}

impl redis::ToRedisArgs for Wire<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        // Writing into a Vec cannot fail.
        let _ = match self.event {
            BusEvent::Frame {
                seq,
                skip_user,
                from,
                json,
            } => {
                let _ = write!(w, "{} F ", self.origin);
                let _ = write_opt(&mut w, seq.map(|s| s.to_string()));
                let _ = write_opt(&mut w, skip_user.map(|u| u.simple().to_string()));
                let _ = write_opt(&mut w, from.map(|u| u.simple().to_string()));
                let _ = write!(w, "{}", unix_micros());
                w.write_all(b"\n")
                    .and_then(|()| w.write_all(json.as_bytes()))
            }
            BusEvent::Presence { user_id, online } => {
                write!(
                    w,
                    "{} P {} {}",
                    self.origin,
                    user_id.simple(),
                    u8::from(*online)
                )
            }
            BusEvent::SessionEnded { session_id } => {
                write!(w, "{} E {}", self.origin, session_id.simple())
            }
            BusEvent::CoupleDeleted => write!(w, "{} D", self.origin),
            BusEvent::Resync => write!(w, "{} R", self.origin),
        };
    }

    fn num_of_args(&self) -> usize {
        1
    }
}

/// Writes a header field and its separator; `-` stands for none.
fn write_opt(w: &mut impl std::io::Write, value: Option<String>) -> std::io::Result<()> {
    match value {
        Some(v) => write!(w, "{v} "),
        None => w.write_all(b"- "),
    }
}

/// Microseconds since the Unix epoch: when a frame was written for Redis, so the node that
/// reads it can tell how long it travelled.
pub(super) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A message read off a couple's channel.
pub(super) struct Decoded<'a> {
    /// The node that published it.
    pub origin: &'a [u8],
    pub event: BusEvent,
    /// When a frame was written for Redis (`unix_micros`); absent in other events and in
    /// frames from a node that does not say.
    pub written_at: Option<u64>,
}

/// Reads a message.
pub(super) fn decode(payload: &[u8]) -> Option<Decoded<'_>> {
    let (header, body) = match payload.iter().position(|&b| b == b'\n') {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &payload[payload.len()..]),
    };
    let header = std::str::from_utf8(header).ok()?;
    let mut parts = header.split_ascii_whitespace();
    let origin = parts.next()?;
    let mut written_at = None;
    let event = match parts.next()? {
        "F" => {
            let seq = match parts.next()? {
                "-" => None,
                s => Some(s.parse().ok()?),
            };
            let skip_user = uuid_field(parts.next()?)?;
            let from = uuid_field(parts.next()?)?;
            written_at = parts.next().and_then(|t| t.parse().ok());
            let json = String::from_utf8(body.to_vec()).ok()?;
            BusEvent::Frame {
                seq,
                skip_user,
                from,
                json: Utf8Bytes::from(json),
            }
        }
        "P" => BusEvent::Presence {
            user_id: Uuid::parse_str(parts.next()?).ok()?,
            online: parts.next()? == "1",
        },
        "E" => BusEvent::SessionEnded {
            session_id: Uuid::parse_str(parts.next()?).ok()?,
        },
        "D" => BusEvent::CoupleDeleted,
        "R" => BusEvent::Resync,
        _ => return None,
    };
    Some(Decoded {
        origin: &payload[..origin.len()],
        event,
        written_at,
    })
}

/// `-` or a uuid; `None` when it is neither.
fn uuid_field(field: &str) -> Option<Option<Uuid>> {
    match field {
        "-" => Some(None),
        u => Uuid::parse_str(u).ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn wire(event: &BusEvent) -> Vec<u8> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        redis::ToRedisArgs::write_redis_args(
            &Wire {
                origin: "node1",
                event,
            },
            &mut out,
        );
        out.concat()
    }

    #[test]
    fn events_survive_the_wire_with_their_origin() {
        let user = Uuid::new_v4();
        let frame = BusEvent::Frame {
            seq: Some(7),
            skip_user: Some(user),
            from: None,
            json: Utf8Bytes::from_static("{\"type\":\"chat\",\"text\":\"a\\nb\"}"),
        };
        let bytes = wire(&frame);
        let Decoded {
            origin,
            event: back,
            written_at,
        } = decode(&bytes).unwrap();
        assert_eq!(origin, b"node1");
        assert!(written_at.is_some_and(|t| t.abs_diff(unix_micros()) < 60_000_000));
        assert!(
            matches!(back, BusEvent::Frame { seq: Some(7), skip_user: Some(u), from: None, json } if u == user && json.as_str() == "{\"type\":\"chat\",\"text\":\"a\\nb\"}")
        );
        let presence = wire(&BusEvent::Presence {
            user_id: user,
            online: true,
        });
        assert!(
            matches!(decode(&presence), Some(Decoded { event: BusEvent::Presence { user_id, online: true }, written_at: None, .. }) if user_id == user)
        );
        // A frame from a node that writes no time is read all the same (a rolling upgrade).
        assert!(matches!(
            decode(b"node F 3 - -\n{}"),
            Some(Decoded {
                event: BusEvent::Frame { seq: Some(3), .. },
                written_at: None,
                ..
            })
        ));
        assert!(decode(b"node X junk").is_none());
        assert!(decode(b"node F notanumber - -\n{}").is_none());
    }
}
