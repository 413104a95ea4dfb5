//! Listening on one Redis: one dedicated subscriber connection per node, supervised (PINGs,
//! deadlines, reconnect with backoff, resubscribe, and every local session catches up).
//! On a cluster the listening is `shards`' instead; both hand messages to `on_payload`.

use super::*;

/// The subscriber connection only receives, so it asks Redis for a sign of life this often.
const SUBSCRIBER_PING_EVERY: Duration = Duration::from_secs(1);

impl RedisBus {
    pub(super) async fn subscriber(
        self: Arc<Self>,
        client: redis::Client,
        mut watch: mpsc::UnboundedReceiver<Watch>,
        stop: CancellationToken,
    ) {
        let mut backoff = BACKOFF_MIN;
        // Sessions may open while no subscription exists (the first attempt failed, or Redis
        // went away): every connection after the first one tells them all to catch up.
        let mut first = true;
        loop {
            let reason = match self.listen(&client, &mut watch, &stop, first).await {
                Listening::Stopped => return,
                Listening::Failed(reason) => reason,
            };
            first = false;
            self.set_connected(false);
            tracing::warn!(
                ?backoff,
                reason,
                "redis subscriber disconnected; reconnecting"
            );
            // While away, answer waiting sessions at once: they are resubscribed and caught
            // up on reconnect anyway.
            let pause = tokio::time::sleep(jitter(backoff));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    () = &mut pause => break,
                    command = watch.recv() => match command {
                        Some(Watch::Listen(_, done)) => { let _ = done.send(()); }
                        Some(Watch::Forget(_)) => {}
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    }

    /// One subscriber connection's life: subscribe every local couple, then pass on messages
    /// and follow the hub's couples, PINGing on a period so that a Redis that stopped
    /// answering (frozen, or cut off without a reset) is noticed within seconds.
    async fn listen(
        &self,
        client: &redis::Client,
        watch: &mut mpsc::UnboundedReceiver<Watch>,
        stop: &CancellationToken,
        first: bool,
    ) -> Listening {
        let pubsub = match timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => return Listening::Failed("connect"),
        };
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = self
            .hub
            .couples()
            .into_iter()
            .map(|c| self.channel(c))
            .collect();
        if !channels.is_empty() && !ok(timeout(COMMAND_TIMEOUT, sink.subscribe(&channels)).await) {
            return Listening::Failed("subscribe");
        }
        self.set_connected(true);
        if !first {
            self.metrics.redis_reconnects.inc();
            tracing::info!(
                couples = channels.len(),
                "redis subscriber reconnected; sessions catch up"
            );
            self.hub.resync_all();
        }
        let mut ping = tokio::time::interval(SUBSCRIBER_PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.on_payload(message.get_channel_name().as_bytes(), message.get_payload_bytes()),
                    None => return Listening::Failed("connection closed"),
                },
                command = watch.recv() => match command {
                    Some(Watch::Listen(couple, done)) => {
                        let subscribed = timeout(COMMAND_TIMEOUT, sink.subscribe(self.channel(couple))).await;
                        if !ok(subscribed) {
                            return Listening::Failed("subscribe");
                        }
                        if done.send(()).is_err() {
                            // The session stopped waiting and read the couple's state before
                            // this subscription began: what came in between, it must read.
                            self.hub.deliver(couple, BusEvent::Resync);
                        }
                    }
                    Some(Watch::Forget(couple)) => {
                        // It may have been wanted again since; its Listen is queued.
                        if !self.hub.has_couple(couple) {
                            let unsubscribed = timeout(COMMAND_TIMEOUT, sink.unsubscribe(self.channel(couple))).await;
                            if !ok(unsubscribed) {
                                return Listening::Failed("unsubscribe");
                            }
                        }
                    }
                    None => return Listening::Stopped,
                },
                _ = ping.tick() => {
                    let pong = timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !ok(pong) {
                        return Listening::Failed("no answer to ping");
                    }
                }
                () = stop.cancelled() => return Listening::Stopped,
            }
        }
    }

    /// A message from a couple's channel: delivered to this node's sockets of the couple,
    /// unless this node published it.
    pub(in crate::bus) fn on_payload(&self, channel: &[u8], payload: &[u8]) {
        let Some(couple) = self.couple_of(channel) else {
            return;
        };
        match decode(payload) {
            // Our own publish, delivered here when it was made.
            Some(decoded) if decoded.origin == self.node_id.as_bytes() => {}
            Some(decoded) => {
                if let Some(at) = decoded.written_at {
                    let micros = unix_micros().saturating_sub(at);
                    self.metrics.stages.bus.observe(micros as f64 / 1e6);
                }
                self.hub.deliver(couple, decoded.event)
            }
            None => tracing::warn!(couple_id = %couple, "undecodable bus message"),
        }
    }
}

/// How a subscriber connection ended.
enum Listening {
    Stopped,
    Failed(&'static str),
}

/// A command that finished in time and succeeded.
fn ok<T>(result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> bool {
    matches!(result, Ok(Ok(_)))
}
