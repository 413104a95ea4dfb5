//! What keeps sign-ups and logins from hurting the node or the accounts. Password hashing
//! (Argon2id: about 19 MiB and tens of milliseconds each) runs a bounded number at a time, and
//! a request that cannot have its turn soon is told to come back (429 with `Retry-After`)
//! instead of queueing memory: unbounded, 64 wrong passwords at once took a node from 17 MB to
//! 1.3 GB. Attempts are rate-limited per client address and per username. A sweeper that every
//! node runs purges expired sessions and forgets limiter entries that have gone quiet.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::store;

/// What a client refused for want of a hashing slot is told to wait: a hash takes tens of
/// milliseconds, so the queue has moved on by then.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// How often limiter entries that are back to a full burst are forgotten. A quota refills
/// within a minute, so the maps hold at most the keys of the last two minutes or so.
const TRIM_PERIOD: Duration = Duration::from_secs(60);

/// Usernames are at most 32 characters: a longer one names nobody, and cutting it keeps a
/// client from filling the limiter with huge keys.
const MAX_KEY_CHARS: usize = 33;

/// The gate every login and sign-up passes: the rate limits, then a hashing slot.
pub struct Guard {
    /// One permit per hash that may run at once (`DUET_HASH_CONCURRENCY`). The permit travels
    /// with the blocking task, so a client that hangs up does not free a slot whose hash is
    /// still running. A finished hash's memory goes back to mimalloc's shared arena, where the
    /// next hash reuses it, and to the OS after mimalloc's purge delay (measured: a node is back
    /// to its resting size within about ten seconds of a storm).
    hashing: Arc<Semaphore>,
    /// How long a request waits for a permit before it is refused (`DUET_HASH_WAIT_MS`).
    hash_wait: Duration,
    /// Attempts per client address (`DUET_LOGIN_RATE_PER_ADDR`); `None`: unlimited.
    by_addr: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Attempts per username, whatever the address (`DUET_LOGIN_RATE_PER_USER`): guessing one
    /// account's password from many addresses stays slow.
    by_user: Option<DefaultKeyedRateLimiter<String>>,
    /// Username availability checks per client address (`DUET_USERNAME_CHECKS_PER_ADDR`).
    checks: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Guard {
    pub fn new(config: &Config) -> Guard {
        let quota = |per_minute: u32| NonZeroU32::new(per_minute).map(Quota::per_minute);
        Guard {
            hashing: Arc::new(Semaphore::new(config.hash_concurrency())),
            hash_wait: config.hash_wait(),
            by_addr: quota(config.login_rate_per_addr).map(RateLimiter::keyed),
            by_user: quota(config.login_rate_per_user).map(RateLimiter::keyed),
            checks: quota(config.username_checks_per_addr).map(RateLimiter::keyed),
        }
    }

    /// Counts one attempt from `addr` at `username`; refused when either has had its share.
    pub fn admit(&self, addr: IpAddr, username: &str) -> Result<()> {
        if let Some(limiter) = &self.by_addr {
            let key = addr_key(addr);
            limiter.check_key(&key).map_err(|not_until| {
                tracing::debug!(client = %key, "login attempts limited (address)");
                Error::TryLater {
                    message: "too many attempts from your address, try again later",
                    retry_after: not_until.wait_time_from(limiter.clock().now()),
                }
            })?;
        }
        if let Some(limiter) = &self.by_user {
            let cut: String = username.chars().take(MAX_KEY_CHARS).collect();
            let key = store::users::username_key(&cut);
            limiter.check_key(&key).map_err(|not_until| {
                tracing::debug!(client = %addr, "login attempts limited (username)");
                Error::TryLater {
                    message: "too many attempts for this username, try again later",
                    retry_after: not_until.wait_time_from(limiter.clock().now()),
                }
            })?;
        }
        Ok(())
    }

    /// Counts one username availability check from `addr`; refused when it has had its share.
    pub fn admit_check(&self, addr: IpAddr) -> Result<()> {
        let Some(limiter) = &self.checks else {
            return Ok(());
        };
        let key = addr_key(addr);
        limiter.check_key(&key).map_err(|not_until| {
            tracing::debug!(client = %key, "username checks limited (address)");
            Error::TryLater {
                message: "too many username checks from your address, try again later",
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }
        })
    }

    /// Runs `work` (hashing or verifying a password) off the async workers once a hashing
    /// slot is free; refused with `Retry-After` when none frees up within the wait.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit = tokio::time::timeout(self.hash_wait, self.hashing.clone().acquire_owned())
            .await
            .map_err(|_| Error::TryLater {
                message: "too many sign-ins at once, try again in a moment",
                retry_after: BUSY_RETRY,
            })?
            .map_err(|e| Error::Internal(e.into()))?;
        tokio::task::spawn_blocking(move || {
            let done = work();
            drop(permit);
            done
        })
        .await
        .map_err(|e| Error::Internal(e.into()))
    }

    /// Forgets the keys whose quota is full again: they behave exactly like unseen ones.
    pub fn trim(&self) {
        if let Some(limiter) = &self.by_addr {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.by_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.checks {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// An IPv6 client usually holds a whole /64: counting each of its addresses apart would let
/// it walk around the limit.
fn addr_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

pub fn spawn_sweeper(services: Services, logins: Arc<Guard>) {
    let stop = services.shutdown.clone();
    services.tasks.clone().spawn(async move {
        let mut trim = tokio::time::interval(TRIM_PERIOD);
        let mut purge = tokio::time::interval(services.config.sweep_period());
        loop {
            tokio::select! {
                _ = trim.tick() => logins.trim(),
                _ = purge.tick() => match sweep(&services).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "expired sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions"),
                },
                () = stop.cancelled() => return,
            }
        }
    });
}

/// Deletes every expired session (they already count as none; this only frees the rows).
/// Returns how many went.
pub async fn sweep(services: &Services) -> anyhow::Result<u64> {
    Ok(store::users::purge_expired_sessions(&services.db, Utc::now()).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let key = |s: &str| addr_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
