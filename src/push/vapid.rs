//! The cluster's VAPID identity (RFC 8292): one P-256 key pair, from the operator or made by
//! the first node and kept in the database, and the `Authorization: vapid` header signed with
//! it for each push service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::DatabaseConnection;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;

use crate::store;

/// How long a signature is good for: RFC 8292 allows at most 24 hours.
const VALID_FOR: Duration = Duration::from_secs(12 * 60 * 60);
/// A signature is reused for a push service while it has at least this long left.
const REUSE_UNTIL_LEFT: Duration = Duration::from_secs(60 * 60);
/// Audiences whose signature is kept.
const MAX_AUDIENCES: usize = 1024;

pub struct Vapid {
    key: ES256KeyPair,
    /// The public key clients subscribe with (`applicationServerKey`), base64url.
    public: String,
    subject: String,
    /// Signatures by audience, reused until an hour before they expire: signing is the
    /// costly part of a push.
    signed: Mutex<HashMap<String, (String, Instant)>>,
}

impl Vapid {
    /// The operator's key when given, else the one in the database (made now if none is).
    pub async fn load(
        db: &DatabaseConnection,
        given: Option<&str>,
        subject: &str,
    ) -> anyhow::Result<Vapid> {
        let private = match given {
            Some(given) => given.trim().to_owned(),
            None => {
                let fresh = URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes());
                store::push::vapid_key(db, fresh)
                    .await
                    .context("reading the VAPID key from the database")?
            }
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(private.as_bytes())
            .context("DUET_VAPID_PRIVATE_KEY must be base64url (no padding)")?;
        let key = ES256KeyPair::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("DUET_VAPID_PRIVATE_KEY is not a P-256 key: {e}"))?;
        let public = URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
        Ok(Vapid {
            key,
            public,
            subject: subject.to_owned(),
            signed: Mutex::default(),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// `vapid t=<JWT>, k=<public key>` for a push service at `origin` (`scheme://host[:port]`,
    /// the port as the endpoint names it: RFC 8292's audience is the endpoint's origin).
    pub fn header(&self, origin: &str) -> anyhow::Result<String> {
        let now = Instant::now();
        let mut signed = self
            .signed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((token, until)) = signed.get(origin)
            && *until > now + REUSE_UNTIL_LEFT
        {
            return Ok(format!("vapid t={token}, k={}", self.public));
        }
        let claims = Claims::create(VALID_FOR.into())
            .with_audience(origin)
            .with_subject(&self.subject);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| anyhow::anyhow!("signing the VAPID token: {e}"))?;
        // Push services are few (one per browser vendor), but endpoints are the clients'
        // choice: what has expired goes, and a map grown past any real need starts over.
        signed.retain(|_, (_, until)| *until > now + REUSE_UNTIL_LEFT);
        if signed.len() >= MAX_AUDIENCES {
            signed.clear();
        }
        signed.insert(origin.to_owned(), (token.clone(), now + VALID_FOR));
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}
