//! Web Push: a partner's chat, question, answer or calendar change reaches the user's devices
//! when no client of theirs is looking at the conversation (RFC 8030 delivery, RFC 8291
//! encryption, RFC 8292 VAPID; the crypto is web-push-native's).
//!
//! - **One node pushes each event**: the one that committed it calls `Pusher::notify`; the
//!   bus carries no pushes, so however many nodes hold sockets, a device hears once.
//! - **Nothing waits for a push service.** `notify` only queues (bounded; a full queue drops
//!   and counts); a worker collapses bursts and hands each push to a task of its own, which
//!   hands each device's delivery to another (all bounded by `DUET_PUSH_IN_FLIGHT`; a device
//!   has one delivery at a time), so a slow or dead push service delays no ack, no commit, no
//!   other device and no other user's push.
//! - **A burst is one push.** The first event for a user leaves at once; those within the
//!   collapse window after it wait and leave together as one push that says how many. The
//!   `Topic` header lets a push service replace a push the device has not fetched yet, and
//!   the service worker merges what reaches it into the notification already shown.

mod message;
mod resolve;
mod sender;
mod vapid;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use uuid::Uuid;

pub use message::{DeviceKeys, What, open};
pub use resolve::is_public;
pub use vapid::Vapid;

use crate::bus::Bus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store;
use crate::store::push::Subscription;

/// What every push task needs.
pub struct Shared {
    config: Config,
    db: DatabaseConnection,
    bus: Bus,
    metrics: Arc<Metrics>,
    vapid: Vapid,
    client: reqwest::Client,
    /// Pushes under way, streams' and devices' together (`DUET_PUSH_IN_FLIGHT`).
    in_flight: Arc<Semaphore>,
    /// Devices with a push of a kind under way, and what waits for them (merged).
    busy: std::sync::Mutex<HashMap<(Uuid, &'static str), Option<Note>>>,
}

/// An event for one user's devices, as its commit left it.
struct Event {
    couple_id: Uuid,
    to: Uuid,
    /// Who it is by (the partner), when anyone.
    from: Option<Uuid>,
    what: What,
    committed: Instant,
}

/// A push for one device, waiting or under way.
struct Note {
    payload: message::Payload,
    /// The earliest event's commit: the push's latency counts from it.
    committed: Instant,
    urgency: &'static str,
}

impl Note {
    fn merge(&mut self, later: Note) {
        self.payload.merge(later.payload);
        self.urgency = later.urgency;
    }
}

/// Events for one user of one kind that leave as one push.
struct Burst {
    first_seq: Option<i64>,
    count: u32,
    /// The earliest event's: the push's latency counts from it.
    committed: Instant,
    /// The latest event: what a preview shows.
    last: Event,
}

impl Burst {
    fn of(event: Event) -> Burst {
        Burst {
            first_seq: event.what.seq(),
            count: 1,
            committed: event.committed,
            last: event,
        }
    }

    fn add(&mut self, event: Event) {
        self.count = self.count.saturating_add(1);
        self.first_seq = match (self.first_seq, event.what.seq()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = event;
    }
}

/// Bursts are per user and kind: a chat and the question it brought up are two pushes, each
/// with its own count, urgency and `Topic`.
type Stream = (Uuid, &'static str);

/// The node's way to push: cheap to clone, never waits.
#[derive(Clone)]
pub struct Pusher {
    queue: mpsc::Sender<Event>,
    shared: Arc<Shared>,
}

/// The loop that collapses bursts and starts pushes (`Worker::run`).
pub struct Worker {
    queue: mpsc::Receiver<Event>,
    shared: Arc<Shared>,
}

impl Pusher {
    pub fn new(
        config: &Config,
        db: DatabaseConnection,
        bus: Bus,
        metrics: Arc<Metrics>,
        vapid: Vapid,
    ) -> anyhow::Result<(Pusher, Worker)> {
        let mut client = reqwest::Client::builder()
            .timeout(config.push_timeout())
            .connect_timeout(config.push_timeout())
            // Push services answer at once; a redirect would only be somewhere else to send
            // the user's (encrypted) events.
            .redirect(reqwest::redirect::Policy::none());
        if !config.push_allow_http {
            // An endpoint's name is the client's choice: it must not lead to this machine or
            // its network (addresses written out are refused when the device subscribes).
            client = client.dns_resolver(Arc::new(resolve::PublicOnly));
        }
        let client = client.build()?;
        let (sender, queue) = mpsc::channel(config.push_queue.max(1));
        let shared = Arc::new(Shared {
            in_flight: Arc::new(Semaphore::new(config.push_in_flight.max(1))),
            busy: std::sync::Mutex::default(),
            config: config.clone(),
            db,
            bus,
            metrics,
            vapid,
            client,
        });
        let pusher = Pusher {
            queue: sender,
            shared: shared.clone(),
        };
        Ok((pusher, Worker { queue, shared }))
    }

    /// The VAPID public key clients subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        self.shared.vapid.public_key()
    }

    /// Pushes `what` to `to`'s devices unless a client of theirs is looking. Called by the
    /// node that committed it, after the commit.
    pub fn notify(&self, couple_id: Uuid, to: Uuid, from: Option<Uuid>, what: What) {
        // Looked at when it happened, on this node: seen, whatever the user does before the
        // push would leave (a tab hidden right after). Other nodes' sockets are asked then.
        if self.shared.bus.looking_here(to) {
            return;
        }
        let event = Event {
            couple_id,
            to,
            from,
            what,
            committed: Instant::now(),
        };
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.metrics.push_failed.inc();
                tracing::warn!(couple_id = %couple_id, user_id = %to, "push queue full; push dropped");
            }
            // The node is stopping: its last commits are not pushed.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.metrics.push_failed.inc();
                tracing::debug!(couple_id = %couple_id, user_id = %to, "node stopping; push dropped");
            }
        }
    }
}

/// A stream pushed to lately: what has come for it since, whether its push is still under
/// way, and whether its collapse window is over.
#[derive(Default)]
struct Recent {
    waiting: Option<Burst>,
    under_way: bool,
    window_over: bool,
}

impl Worker {
    /// Collapses and starts pushes until the node stops; then starts what was waiting (the
    /// node's stop does not wait for push services).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let window = self.shared.config.push_collapse();
        let mut recent: HashMap<Stream, Recent> = HashMap::new();
        let mut timers: DelayQueue<Stream> = DelayQueue::new();
        let (done_tx, mut done) = mpsc::unbounded_channel::<Stream>();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = self.queue.recv() => {
                    let Some(event) = event else { break };
                    let stream = (event.to, event.what.kind());
                    match recent.get_mut(&stream) {
                        Some(r) => match &mut r.waiting {
                            Some(burst) => burst.add(event),
                            None => r.waiting = Some(Burst::of(event)),
                        },
                        None => {
                            self.start(stream, Burst::of(event), &done_tx);
                            timers.insert(stream, window);
                            recent.insert(stream, Recent { under_way: true, ..Recent::default() });
                        }
                    }
                }
                Some(expired) = std::future::poll_fn(|cx| timers.poll_expired(cx)), if !timers.is_empty() => {
                    let stream = expired.into_inner();
                    if let Some(r) = recent.get_mut(&stream) {
                        r.window_over = true;
                    }
                    self.next(stream, &mut recent, &mut timers, window, &done_tx);
                }
                Some(stream) = done.recv() => {
                    if let Some(r) = recent.get_mut(&stream) {
                        r.under_way = false;
                    }
                    self.next(stream, &mut recent, &mut timers, window, &done_tx);
                }
            }
        }
        self.queue.close();
        while let Ok(event) = self.queue.try_recv() {
            let stream = (event.to, event.what.kind());
            match recent.get_mut(&stream).and_then(|r| r.waiting.as_mut()) {
                Some(burst) => burst.add(event),
                None => recent.entry(stream).or_default().waiting = Some(Burst::of(event)),
            }
        }
        for (stream, r) in recent {
            if let Some(burst) = r.waiting {
                self.start(stream, burst, &done_tx);
            }
        }
    }

    /// A stream's window ended or its push finished: once both, what waited leaves (and a new
    /// window starts), or, with nothing waiting, the stream is forgotten.
    fn next(
        &self,
        stream: Stream,
        recent: &mut HashMap<Stream, Recent>,
        timers: &mut DelayQueue<Stream>,
        window: std::time::Duration,
        done: &mpsc::UnboundedSender<Stream>,
    ) {
        let Some(r) = recent.get_mut(&stream) else {
            return;
        };
        if r.under_way || !r.window_over {
            return;
        }
        match r.waiting.take() {
            Some(burst) => {
                self.start(stream, burst, done);
                r.under_way = true;
                r.window_over = false;
                timers.insert(stream, window);
            }
            None => {
                recent.remove(&stream);
            }
        }
    }

    /// Hands a push to a task of its own, or drops it when too many are under way. One push
    /// per stream is under way at a time, so a push service that hangs holds one permit per
    /// user and kind, however much is sent to them.
    fn start(&self, stream: Stream, burst: Burst, done: &mpsc::UnboundedSender<Stream>) {
        let Ok(permit) = self.shared.in_flight.clone().try_acquire_owned() else {
            self.shared.metrics.push_failed.inc();
            tracing::warn!(couple_id = %burst.last.couple_id, user_id = %burst.last.to, "too many pushes under way; push dropped");
            let _ = done.send(stream);
            return;
        };
        let shared = self.shared.clone();
        let done = done.clone();
        // Not a task of the node's tracker: a stopping node does not wait for push services.
        tokio::spawn(async move {
            shared.push(burst).await;
            drop(permit);
            let _ = done.send(stream);
        });
    }
}

impl Shared {
    /// Delivers to one device, then whatever came for it (of this kind) meanwhile, until
    /// nothing waits.
    async fn deliver_all(&self, device: Subscription, key: (Uuid, &'static str), first: Note) {
        let mut note = first;
        loop {
            let body = serde_json::to_vec(&note.payload).unwrap_or_default();
            let outcome = sender::deliver(self, &device, &body, key.1, note.urgency).await;
            match outcome {
                sender::Outcome::Sent => {
                    self.metrics.push_sent.inc();
                    self.metrics
                        .push_seconds
                        .observe(note.committed.elapsed().as_secs_f64());
                }
                sender::Outcome::Pruned => {
                    self.metrics.push_pruned.inc();
                }
                sender::Outcome::Failed => {
                    self.metrics.push_failed.inc();
                }
            }
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            let next = busy.get_mut(&key).and_then(Option::take);
            match (next, outcome) {
                // A device that is gone gets nothing more.
                (Some(next), sender::Outcome::Sent | sender::Outcome::Failed) => note = next,
                _ => {
                    busy.remove(&key);
                    return;
                }
            }
        }
    }

    /// Pushes a burst to each of its user's devices, unless a client of theirs is looking: a
    /// task per device, so one whose service hangs holds up none of the others.
    async fn push(self: &Arc<Self>, burst: Burst) {
        let event = &burst.last;
        let (couple_id, to) = (event.couple_id, event.to);
        if self.bus.is_looking(couple_id, to).await {
            return;
        }
        let timeout = self.config.db_timeout();
        let devices = match tokio::time::timeout(timeout, store::push::of_user(&self.db, to)).await
        {
            Ok(Ok(devices)) => devices,
            Ok(Err(e)) => {
                tracing::warn!(couple_id = %couple_id, user_id = %to, error = %e, "reading push devices");
                self.metrics.push_failed.inc();
                return;
            }
            Err(_) => {
                tracing::warn!(couple_id = %couple_id, user_id = %to, "reading push devices timed out");
                self.metrics.push_failed.inc();
                return;
            }
        };
        if devices.is_empty() {
            return;
        }
        let unread = match event.what {
            What::Chat { .. } => {
                match tokio::time::timeout(
                    timeout,
                    store::push::unread_chats(&self.db, couple_id, to),
                )
                .await
                {
                    Ok(Ok(unread)) => Some(unread),
                    _ => None,
                }
            }
            _ => None,
        };
        let from = match event.from {
            Some(id) => {
                match tokio::time::timeout(timeout, store::users::by_id(&self.db, id)).await {
                    Ok(Ok(Some(user))) => Some(user.username),
                    _ => None,
                }
            }
            None => None,
        };
        let (kind, urgency) = (event.what.kind(), event.what.urgency());
        for device in devices {
            let payload = message::Payload::new(
                couple_id,
                &event.what,
                burst.first_seq,
                burst.count,
                unread,
                from.clone(),
                device.preview,
            );
            let note = Note {
                payload,
                committed: burst.committed,
                urgency,
            };
            // A device busy with an earlier push of this kind (its service slow, or
            // retrying) gets this one after it, merged with anything else that waits: one
            // dead device holds up none of the user's others, and nothing piles up for it.
            let key = (device.id, kind);
            {
                let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(waiting) = busy.get_mut(&key) {
                    match waiting {
                        Some(earlier) => earlier.merge(note),
                        None => *waiting = Some(note),
                    }
                    continue;
                }
                busy.insert(key, None);
            }
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                self.busy
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                self.metrics.push_failed.inc();
                tracing::warn!(couple_id = %couple_id, user_id = %to, "too many pushes under way; push dropped");
                continue;
            };
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                shared.deliver_all(device, key, note).await;
                drop(permit);
            });
        }
        tracing::debug!(couple_id = %couple_id, user_id = %to, count = burst.count, "pushing");
    }
}
