//! What a push says, and its encryption to one device (RFC 8291, `aes128gcm`), by
//! web-push-native: the service worker (assets/sw.js) reads the JSON and shows it.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::Serialize;
use uuid::Uuid;
use web_push_native::p256;

/// Characters of a chat's text a preview carries: enough for a notification's two lines,
/// well under the 4 KiB a push may hold.
const PREVIEW_CHARS: usize = 200;

/// The events that reach a device that is not looking.
#[derive(Clone, Debug)]
pub enum What {
    /// A chat by the partner (`file`: it carries a file).
    Chat { seq: i64, text: String, file: bool },
    /// A question both of us owe an answer to.
    Question { seq: i64, text: String },
    /// The partner answered a question.
    Answer { seq: i64 },
    /// The partner changed our calendar (day one, our own dates).
    Dates,
    /// The partner is thinking of you.
    Nudge,
}

impl What {
    pub fn kind(&self) -> &'static str {
        match self {
            What::Chat { .. } => "chat",
            What::Question { .. } => "question",
            What::Answer { .. } => "answer",
            What::Dates => "dates",
            What::Nudge => "nudge",
        }
    }

    pub fn seq(&self) -> Option<i64> {
        match self {
            What::Chat { seq, .. } | What::Question { seq, .. } | What::Answer { seq } => {
                Some(*seq)
            }
            What::Dates | What::Nudge => None,
        }
    }

    /// How soon the push service should wake the device (RFC 8030 `Urgency`).
    pub fn urgency(&self) -> &'static str {
        match self {
            What::Chat { .. } => "high",
            What::Question { .. } | What::Answer { .. } | What::Nudge => "normal",
            What::Dates => "low",
        }
    }
}

/// The decrypted body of a push (docs/PROTOCOL.md, "Web Push").
#[derive(Serialize, Debug, Clone)]
pub struct Payload {
    pub kind: &'static str,
    pub couple_id: Uuid,
    /// Where a click opens the conversation: the first event of those this push stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// How many events this push stands for (a burst collapses into one push).
    pub count: u32,
    /// For a chat: how many of the partner's chats the user has not read, all told (the
    /// notification's number: right even when a push service dropped an earlier push for a
    /// later one of the same `Topic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// The partner's name, when it is by them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The chat's or question's text, only for a device that chose previews.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub file: bool,
}

impl Payload {
    pub fn new(
        couple_id: Uuid,
        what: &What,
        first_seq: Option<i64>,
        count: u32,
        unread: Option<u64>,
        from: Option<String>,
        preview: bool,
    ) -> Self {
        let text = match what {
            What::Chat { text, .. } | What::Question { text, .. } if preview => {
                Some(text.chars().take(PREVIEW_CHARS).collect())
            }
            _ => None,
        };
        Payload {
            kind: what.kind(),
            couple_id,
            seq: first_seq,
            count,
            unread,
            from,
            text,
            file: matches!(what, What::Chat { file: true, .. }),
        }
    }
}

impl Payload {
    /// A later push for the same device and kind, while this one still waits: one push that
    /// stands for both, opening at the first, saying what the later says.
    pub fn merge(&mut self, later: Payload) {
        let seq = match (self.seq, later.seq) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let count = self.count.saturating_add(later.count);
        *self = Payload {
            seq,
            count,
            ..later
        };
    }
}

/// A device's keys, as its subscription gave them (base64url, padded or not).
pub struct DeviceKeys {
    pub public: p256::PublicKey,
    pub auth: web_push_native::Auth,
}

impl DeviceKeys {
    /// Parses `p256dh` (an uncompressed P-256 point) and `auth` (16 bytes); `None` if either
    /// is not what a browser gives.
    pub fn parse(p256dh: &str, auth: &str) -> Option<DeviceKeys> {
        let public = p256::PublicKey::from_sec1_bytes(&decode(p256dh)?).ok()?;
        let auth = decode(auth)?;
        if auth.len() != 16 {
            return None;
        }
        Some(DeviceKeys {
            public,
            auth: web_push_native::Auth::clone_from_slice(&auth),
        })
    }
}

/// Browsers give keys base64url without padding; some libraries pad.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .or_else(|_| URL_SAFE.decode(text.as_bytes()))
        .ok()
}

/// What a device does with a push: decrypts its `aes128gcm` body with the device's private key
/// and auth secret (both base64url). The code's own path for RFC 8291's example (the unit
/// test below) and the tests' push service.
pub fn open(body: Vec<u8>, private_key: &str, auth: &str) -> anyhow::Result<Vec<u8>> {
    let secret = p256::SecretKey::from_slice(
        &decode(private_key).ok_or_else(|| anyhow::anyhow!("the private key is not base64url"))?,
    )?;
    let auth = decode(auth).ok_or_else(|| anyhow::anyhow!("auth is not base64url"))?;
    if auth.len() != 16 {
        anyhow::bail!("auth must be 16 bytes");
    }
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    web_push_native::decrypt(body, &secret, &auth).map_err(|e| anyhow::anyhow!("decrypting: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// RFC 8291, Appendix A: the user agent's keys and the message the application server
    /// sent them, and its plaintext.
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const MESSAGE: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    const PLAINTEXT: &str = "When I grow up, I want to be a watermelon";

    #[test]
    fn rfc8291_appendix_a_decrypts_to_its_plaintext() {
        let opened = open(decode(MESSAGE).unwrap(), UA_PRIVATE, AUTH).unwrap();
        assert_eq!(String::from_utf8(opened).unwrap(), PLAINTEXT);
    }

    #[test]
    fn what_we_encrypt_to_a_device_it_decrypts() {
        let keys = DeviceKeys::parse(UA_PUBLIC, AUTH).unwrap();
        let sealed =
            web_push_native::encrypt(PLAINTEXT.as_bytes().to_vec(), &keys.public, &keys.auth)
                .unwrap();
        assert_ne!(sealed, PLAINTEXT.as_bytes());
        let opened = open(sealed, UA_PRIVATE, AUTH).unwrap();
        assert_eq!(opened, PLAINTEXT.as_bytes());
    }

    #[test]
    fn keys_a_browser_would_not_give_are_refused() {
        assert!(DeviceKeys::parse(UA_PUBLIC, "c2hvcnQ").is_none());
        assert!(DeviceKeys::parse("BAAA", AUTH).is_none());
        assert!(DeviceKeys::parse("not base64 !", AUTH).is_none());
    }
}
