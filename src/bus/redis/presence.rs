//! Who is online where: per user a sorted set of node ids scored by an expiry time, renewed by
//! a heartbeat that also looks at every partner this node's sockets care about and passes on
//! changes (a node that died silently shows up as its users' entries expire). Beside it, the
//! same kind of set of the nodes where a socket of the user looks at the conversation, which
//! decides whether their devices get a push.

use super::*;

impl RedisBus {
    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Registers this node as holding a socket of the user and asks whether the partner is
    /// online, in one round trip: `(nobody held one before, partner online)`.
    pub async fn came_online(
        &self,
        couple_id: Uuid,
        user_id: Uuid,
        partner_id: Uuid,
    ) -> (bool, bool) {
        let key = self.presence_key(couple_id, user_id);
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &key);
        self.renew(&mut pipe, &key, Self::now_ms());
        count_live(&mut pipe, &self.presence_key(couple_id, partner_id));
        match self.run::<(i64, i64)>(&pipe).await {
            Ok((before, partner)) => (
                before == 0,
                partner > 0 || self.hub.sockets_of(partner_id) > 0,
            ),
            Err(e) => {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
                // Unknown counts as a change: telling the partner twice is harmless.
                (true, self.hub.sockets_of(partner_id) > 0)
            }
        }
    }

    /// Removes this node from the user's presence; true if nobody holds a socket any more.
    pub async fn went_offline(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        let key = self.presence_key(couple_id, user_id);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&key).arg(&self.node_id).ignore();
        count_live(&mut pipe, &key);
        let left = self.query_count(couple_id, user_id, &pipe).await;
        // A socket of the user may have opened here while the ZREM was on its way (a tab
        // closed as another opened): its entry was just removed, so put it back. Both go
        // over one connection (on a cluster, to the one master of the key), in order.
        if self.hub.sockets_of(user_id) > 0 {
            let mut pipe = redis::pipe();
            self.renew(&mut pipe, &key, Self::now_ms());
            if let Err(e) = self.run::<()>(&pipe).await {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
            }
            return false;
        }
        left.is_none_or(|left| left == 0)
    }

    /// Appends "this node holds a socket of the user until the presence TTL from `now`".
    fn renew(&self, pipe: &mut redis::Pipeline, key: &str, now: i64) {
        pipe.cmd("ZADD")
            .arg(key)
            .arg(now + self.ttl_ms())
            .arg(&self.node_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(self.ttl_ms() * 2)
            .ignore();
    }

    pub async fn is_online(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        if self.hub.sockets_of(user_id) > 0 {
            return true;
        }
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &self.presence_key(couple_id, user_id));
        self.query_count(couple_id, user_id, &pipe)
            .await
            .is_some_and(|n| n > 0)
    }

    /// Puts this node in or out of the user's looking set, as its sockets are now. Several
    /// changes may race on their way to Redis; each writes the state at the time it runs,
    /// and a stale entry lapses within the presence TTL, as the heartbeat no longer renews it.
    pub async fn sync_looking(&self, couple_id: Uuid, user_id: Uuid) {
        let key = self.looking_key(couple_id, user_id);
        let mut pipe = redis::pipe();
        if self.hub.looking_of(user_id) > 0 {
            self.renew(&mut pipe, &key, Self::now_ms());
        } else {
            pipe.cmd("ZREM").arg(&key).arg(&self.node_id).ignore();
        }
        if let Err(e) = self.run::<()>(&pipe).await {
            tracing::debug!(couple_id = %couple_id, user_id = %user_id, error = %e, "looking: redis unavailable");
        }
    }

    /// Whether a socket of the user, on any node, looks at the conversation. Redis away
    /// counts as no: a push too many beats a chat missed.
    pub async fn is_looking(&self, couple_id: Uuid, user_id: Uuid) -> bool {
        if self.hub.looking_of(user_id) > 0 {
            return true;
        }
        let mut pipe = redis::pipe();
        count_live(&mut pipe, &self.looking_key(couple_id, user_id));
        self.query_count(couple_id, user_id, &pipe)
            .await
            .is_some_and(|n| n > 0)
    }

    /// Runs a presence pipeline whose one unignored reply is a count; `None` if Redis is away.
    async fn query_count(
        &self,
        couple_id: Uuid,
        user_id: Uuid,
        pipe: &redis::Pipeline,
    ) -> Option<i64> {
        match self.run::<(i64,)>(pipe).await {
            Ok((count,)) => Some(count),
            Err(e) => {
                tracing::warn!(couple_id = %couple_id, user_id = %user_id, error = %e, "presence: redis unavailable");
                None
            }
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.presence_ttl.as_millis()).unwrap_or(30_000)
    }

    /// Every third of the presence TTL: renew this node's entries, and look at every partner
    /// this node's sockets care about, passing on any change (a node that died silently shows
    /// up here as its users' entries expire).
    pub(super) async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.presence_ttl / 3);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            self.beat().await;
        }
    }

    /// One heartbeat: per local user, renew its entry, drop expired ones and count the
    /// partner's live entries, one pipeline per slot.
    async fn beat(&self) {
        let now = Self::now_ms();
        let users = self.hub.local_users();
        let beats = self.by_slot(users).into_iter().map(|group| async move {
            let mut pipe = redis::pipe();
            for (couple, (user, partner)) in &group {
                let key = self.presence_key(*couple, *user);
                self.renew(&mut pipe, &key, now);
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now)
                    .ignore();
                count_live(&mut pipe, &self.presence_key(*couple, *partner));
            }
            match self.run::<Vec<i64>>(&pipe).await {
                Ok(counts) => {
                    for ((couple, (_, partner)), count) in group.into_iter().zip(counts) {
                        let online = count > 0 || self.hub.sockets_of(partner) > 0;
                        self.hub.deliver(
                            couple,
                            BusEvent::Presence {
                                user_id: partner,
                                online,
                            },
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "presence heartbeat failed"),
            }
        });
        let lookers = self.hub.local_lookers();
        let looks = self.by_slot(lookers).into_iter().map(|group| async move {
            let mut pipe = redis::pipe();
            for (couple, user) in &group {
                self.renew(&mut pipe, &self.looking_key(*couple, *user), now);
            }
            if let Err(e) = self.run::<()>(&pipe).await {
                tracing::debug!(error = %e, "looking heartbeat failed");
            }
            // A tab hidden while the renewal was on its way: its ZREM may have gone first,
            // and the renewal would keep the user looking (and unpushed) until the TTL.
            for (couple, user) in group {
                if self.hub.looking_of(user) == 0 {
                    self.sync_looking(couple, user).await;
                }
            }
        });
        futures_util::future::join(
            futures_util::future::join_all(beats),
            futures_util::future::join_all(looks),
        )
        .await;
    }
}

/// Appends "how many nodes hold a live entry in this presence set".
fn count_live(pipe: &mut redis::Pipeline, key: &str) {
    pipe.cmd("ZCOUNT")
        .arg(key)
        .arg(chrono::Utc::now().timestamp_millis())
        .arg("+inf");
}
