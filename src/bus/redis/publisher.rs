//! Publishing: every event goes through a queue to one task that sends each burst as one
//! pipeline (one per master on a cluster), keeps what Redis did not take for retry in order,
//! and holds a couple whose publish failed so that its later events wait behind it while
//! other couples' go out at once.

use super::*;

/// Publishes bound for one master (on one Redis, all of them).
struct ShardGroup<T> {
    /// A slot of the master, to route by.
    slot: u16,
    items: Vec<(Uuid, T)>,
    /// The subscriber cannot reach that master (or the one Redis) now: keep them for retry
    /// without a try.
    down: bool,
}

impl RedisBus {
    /// Splits publishes by the master that owns their slot (as far as this node knows; a
    /// slot of unknown owner goes alone), each group with a slot of it to route by.
    fn by_master<T>(&self, items: impl IntoIterator<Item = (Uuid, T)>) -> Vec<ShardGroup<T>> {
        let Commands::Cluster { topology, down, .. } = &self.commands else {
            // The subscriber PINGs every second and reconnects within a quarter of one: while
            // it is away, Redis most likely is too, and a try would cost a command timeout
            // per burst while the queue fills. Its return rings `usable`.
            return vec![ShardGroup {
                slot: 0,
                items: items.into_iter().collect(),
                down: !self.is_connected(),
            }];
        };
        let topology = topology.load();
        let down = down.load();
        // Keyed by the owner, or by the slot itself when the owner is unknown.
        let mut groups: HashMap<Result<&str, u16>, ShardGroup<T>> = HashMap::new();
        for (couple, item) in items {
            let slot = shards::slot(couple);
            let owner = topology.owner(slot).ok_or(slot);
            groups
                .entry(owner)
                .or_insert_with(|| ShardGroup {
                    slot,
                    items: Vec::new(),
                    down: owner.is_ok_and(|addr| down.contains(addr)),
                })
                .items
                .push((couple, item));
        }
        groups.into_values().collect()
    }

    /// Runs a pipeline of publishes on the master of `slot` (on one Redis, on the one
    /// connection) and says which of them Redis did not take: all when the pipeline failed,
    /// on a cluster also those refused one by one (MOVED, when a slot changed hands).
    async fn run_publishes(&self, slot: u16, pipe: redis::Pipeline) -> Vec<bool> {
        use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
        let n = pipe.len();
        match &self.commands {
            Commands::Single { .. } => {
                let failed = self.run::<()>(&pipe).await.is_err();
                vec![failed; n]
            }
            Commands::Cluster { conn, .. } => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                match conn.clone().route_pipeline(pipe, 0, n, route).await {
                    Ok(replies) if replies.len() == n => replies
                        .iter()
                        .map(|r| matches!(r, redis::Value::ServerError(_)))
                        .collect(),
                    _ => vec![true; n],
                }
            }
        }
    }

    /// Delivers to this node's sockets and queues the event for the other nodes, without
    /// waiting for Redis.
    pub fn publish(&self, couple_id: Uuid, event: BusEvent) {
        self.hub.deliver(couple_id, event.clone());
        if let Err(full) = self.outbox.try_send((couple_id, event, Instant::now())) {
            let (_, event, _) = full.into_inner();
            if event.must_arrive() {
                self.lose(couple_id);
            } else {
                self.metrics.publish_failures.inc();
            }
        }
    }

    /// Sends what the queue holds, burst by burst. Events Redis did not take wait in `retry`
    /// (oldest first) with backoff; later events of the same couples queue behind them, so a
    /// couple's events go out in order, while other couples' events go out at once: one
    /// shard that is down does not hold up the others.
    pub(super) async fn publisher(
        self: Arc<Self>,
        mut outbox: mpsc::Receiver<(Uuid, BusEvent, Instant)>,
        stop: CancellationToken,
    ) {
        let mut retry: VecDeque<(Uuid, BusEvent)> = VecDeque::new();
        let mut held: HashSet<Uuid> = HashSet::new();
        let mut backoff = BACKOFF_MIN;
        // A deadline kept across turns, not a sleep made anew on each: a node that publishes
        // more often than once per backoff would otherwise never retry, and every later event
        // of a held couple would queue behind the first one that failed.
        let mut retry_at = Instant::now();
        loop {
            tokio::select! {
                next = outbox.recv() => match next {
                    Some(item) => {
                        let mut burst = vec![self.taken(item)];
                        while burst.len() < MAX_BURST {
                            match outbox.try_recv() {
                                Ok(item) => burst.push(self.taken(item)),
                                Err(_) => break,
                            }
                        }
                        let (wait, now): (Vec<_>, Vec<_>) =
                            burst.into_iter().partition(|(couple, _)| held.contains(couple));
                        for item in wait {
                            keep(&mut retry, item, &self);
                        }
                        let failed = self.send_burst(now).await;
                        if !failed.is_empty() && retry.is_empty() {
                            backoff = BACKOFF_MIN;
                            retry_at = Instant::now() + jitter(backoff);
                        }
                        for item in failed {
                            self.metrics.publish_failures.inc();
                            keep(&mut retry, item, &self);
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(retry_at.into()), if !retry.is_empty() => {
                    let n = retry.len().min(MAX_BURST);
                    let burst: Vec<_> = retry.drain(..n).collect();
                    let failed = self.send_burst(burst).await;
                    if failed.is_empty() {
                        // Redis takes publishes again: the rest of what is kept goes now.
                        backoff = BACKOFF_MIN;
                        retry_at = Instant::now();
                    } else {
                        let max = if self.sharded() { SHARD_BACKOFF_MAX } else { BACKOFF_MAX };
                        backoff = (backoff * 2).min(max);
                        retry_at = Instant::now() + jitter(backoff);
                    }
                    // Back to the front, in their order: they are older than what is left.
                    for item in failed.into_iter().rev() {
                        self.metrics.publish_failures.inc();
                        retry.push_front(item);
                    }
                }
                () = self.usable.notified(), if !retry.is_empty() => {
                    backoff = BACKOFF_MIN;
                    retry_at = Instant::now();
                }
                () = stop.cancelled() => {
                    outbox.close();
                    retry.extend(std::iter::from_fn(|| outbox.try_recv().ok()).map(|(couple, event, _)| (couple, event)));
                    return self.publish_rest(retry).await;
                }
            }
            if !retry.is_empty() || !held.is_empty() {
                held = retry.iter().map(|(couple, _)| *couple).collect();
            }
        }
    }

    /// An event the publisher takes from its queue, its wait there measured.
    fn taken(&self, (couple, event, queued_at): (Uuid, BusEvent, Instant)) -> (Uuid, BusEvent) {
        self.metrics
            .stages
            .publish_queue
            .observe(queued_at.elapsed().as_secs_f64());
        (couple, event)
    }

    /// Publishes a burst, then a resync for every couple whose events could not be queued,
    /// one pipeline per master (on one Redis, one pipeline). Returns what Redis did not take
    /// and is worth another try.
    async fn send_burst(&self, burst: Vec<(Uuid, BusEvent)>) -> Vec<(Uuid, BusEvent)> {
        let lost: Vec<Uuid> = lock(&self.lost).drain().collect();
        if burst.is_empty() && lost.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        let published = burst.len();
        let all = burst
            .into_iter()
            .chain(lost.into_iter().map(|couple| (couple, BusEvent::Resync)));
        let verb = if self.sharded() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let sends = self.by_master(all).into_iter().map(
            |ShardGroup {
                 slot,
                 items: group,
                 down,
             }| async move {
                if down {
                    return group;
                }
                let mut pipe = redis::pipe();
                for (couple, event) in &group {
                    pipe.cmd(verb).arg(self.channel(*couple)).arg(Wire {
                        origin: &self.node_id,
                        event,
                    });
                }
                let refused = self.run_publishes(slot, pipe).await;
                if refused.iter().any(|r| *r) {
                    tracing::debug!(events = group.len(), "publish failed");
                }
                group
                    .into_iter()
                    .zip(refused)
                    .filter_map(|(item, refused)| refused.then_some(item))
                    .collect::<Vec<_>>()
            },
        );
        let failed: Vec<_> = futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
            .filter(|(_, event)| event.must_arrive())
            .collect();
        if failed.is_empty() {
            let per_event = started.elapsed().as_secs_f64() / published.max(1) as f64;
            for _ in 0..published {
                self.metrics.publish_seconds.observe(per_event);
            }
        }
        failed
    }

    /// On stop (after the node's sessions and commits are done): one attempt to publish what
    /// is still queued, so the other nodes hear this node's last events.
    async fn publish_rest(&self, mut rest: VecDeque<(Uuid, BusEvent)>) {
        while !rest.is_empty() || !lock(&self.lost).is_empty() {
            let n = rest.len().min(MAX_BURST);
            let failed = self.send_burst(rest.drain(..n).collect()).await;
            if !failed.is_empty() {
                return;
            }
        }
    }

    /// Remembers that a couple's event never reached Redis: its sessions on other nodes are
    /// told to catch up from the database as soon as Redis takes a publish again.
    fn lose(&self, couple_id: Uuid) {
        self.metrics.publish_failures.inc();
        lock(&self.lost).insert(couple_id);
    }
}

/// Keeps an event for another try; beyond the limit (or for an event not worth keeping) the
/// couple's other sessions are told to catch up instead.
fn keep(retry: &mut VecDeque<(Uuid, BusEvent)>, item: (Uuid, BusEvent), bus: &RedisBus) {
    if !item.1.must_arrive() {
        return;
    }
    if retry.len() < RETRY_LIMIT {
        retry.push_back(item);
    } else {
        bus.lose(item.0);
    }
}
