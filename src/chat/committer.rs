//! The group commit. Every socket of a node hands its sends (and read marks) to the node's
//! committer and goes back to its client at once; the committer persists what has arrived
//! together, many couples in one transaction, then answers each socket and tells each couple.
//!
//! - **Batches form by themselves.** A shard takes everything queued (up to
//!   `commit_max_batch`) and commits; sends that arrive meanwhile make the next batch. When
//!   the last batch held more than one send (`commit_window_after`: there is traffic), it
//!   also waits up to `commit_window` for more first. Under light load a batch is one send, committed at once;
//!   under heavy load one commit carries hundreds.
//! - **Shards keep each couple in order.** A couple always goes to the same shard, which
//!   commits its batches one after another, so one socket's sends take seqs in the order they
//!   were sent. Shards commit in parallel (different couples) and lock rows in id order.
//! - **Chats, replies, reactions and edits take one statement** on Postgres
//!   (`store::sends::append_plain`), a second one for couples the partner's node committed
//!   while the first waited; couples with questions open, files, keywords or retries take a
//!   transaction that applies the full rules (`plan`) to what it reads under the couples'
//!   locks. One send's refusal never fails
//!   the others; an ack leaves only after the commit that holds its chat.
//! - **After the commit**, in seq order per couple: the ack (or error) to the sending socket,
//!   then every event to the couple's sockets here and to the bus, one encoded frame each.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sea_orm::{DbBackend, TransactionTrait};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Gesture;
use super::plan::{self, Decision, Limits};
use crate::bus::{Delivery, Outbox};
use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::push::What;
use crate::question::Catalogue;
use crate::services::Services;
use crate::store;
use crate::store::questions::Trigger;
use crate::store::sends::{EditRule, Plain, PlainChat, PlainEdit, PlainReaction};
use crate::view::{ChatView, QuoteView};
use crate::words;

/// A send waiting for its commit.
pub struct PendingSend {
    pub me: Member,
    pub client_id: Uuid,
    /// A chat, a reaction or an edit.
    pub gesture: Gesture,
    /// The sender asked the partner's client not to notify (live frames only: a replay
    /// notifies nobody).
    pub silent: bool,
    /// What the node's catalogue found in the text (a chat's or an edit's).
    pub triggers: Vec<Trigger>,
    /// The sending socket's outbox: the ack or error goes there.
    pub reply: Arc<Outbox>,
    /// When the socket handed it over: it is answered within `DUET_DB_TIMEOUT_MS` of this.
    pub queued_at: tokio::time::Instant,
}

enum Job {
    Send(PendingSend),
    /// A read mark: how far this member has read.
    Read(Member, i64),
}

/// The node's committer: one queue per shard, and the catalogue sends are matched against
/// before they queue.
pub struct Committer {
    shards: Vec<mpsc::Sender<Job>>,
    catalogue: Arc<Catalogue>,
}

/// Jobs queued per shard before a send is refused with `unavailable` (the client retries).
const QUEUE: usize = 16 * 1024;

impl Committer {
    /// Starts one task per shard; they stop when the node does.
    pub fn spawn(
        services: &Services,
        catalogue: Arc<Catalogue>,
        shards: usize,
        depth: usize,
    ) -> Self {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards.max(1)).map(|_| mpsc::channel(QUEUE)).unzip();
        for queue in receivers {
            services.tasks.spawn(run(services.clone(), queue, depth));
        }
        Committer {
            shards: senders,
            catalogue,
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn shard(&self, couple_id: Uuid) -> &mpsc::Sender<Job> {
        let index = (couple_id.as_u128() % self.shards.len() as u128) as usize;
        &self.shards[index]
    }

    /// Queues a send; its ack or error reaches `send.reply` after the commit.
    pub fn send(&self, send: PendingSend) -> Result<()> {
        self.shard(send.me.couple_id)
            .try_send(Job::Send(send))
            .map_err(|_| Error::Unavailable("the server is busy, send again".into()))
    }

    /// Queues a read mark. Marks are coalesced per user and couple within a batch; a mark dropped
    /// because the queue is full is overtaken by the next one anyway.
    pub fn read(&self, me: Member, seq: i64) {
        let _ = self.shard(me.couple_id).try_send(Job::Read(me, seq));
    }
}

/// Stopping: a send already queued was handed over by a socket that may still be waiting for
/// its ack, so it is committed (the node's stop waits for this task); later ones are refused
/// with `unavailable`, and their clients send them again to another node. `waiting` is what
/// the loop had taken but not committed yet, older than anything still queued.
async fn drain(
    services: &Services,
    mut queue: mpsc::Receiver<Job>,
    waiting: VecDeque<Job>,
    max: usize,
) {
    queue.close();
    let mut jobs: Vec<Job> = waiting.into();
    while !jobs.is_empty() {
        let rest = jobs.split_off(jobs.len().min(max));
        commit(services, std::mem::replace(&mut jobs, rest)).await;
    }
    while queue.recv_many(&mut jobs, max).await > 0 {
        commit(services, std::mem::take(&mut jobs)).await;
    }
}

/// A shard's loop. Up to `depth` batches commit at once: the next one is built and sent
/// while the previous one is still committing (its WAL flush, its round trip), so a send
/// that arrives meanwhile does not wait for it. A couple is never in two batches under way:
/// its jobs wait for the one that holds it, so its seqs and announcements keep their order.
async fn run(services: Services, mut queue: mpsc::Receiver<Job>, depth: usize) {
    let max = services.config.commit_max_batch.max(1);
    let depth = depth.max(1);
    let window = services.config.commit_window();
    // Waiting for company only pays when sends arrive together: a lone send (light load)
    // is committed at once, and the window opens once batches show there is traffic.
    let window_after = services.config.commit_window_after.max(1);
    let mut busy = window_after == 1;
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut committing: HashSet<Uuid> = HashSet::new();
    let mut under_way = FuturesUnordered::new();
    let mut incoming = Vec::with_capacity(max);
    // Until when the next batch waits for company (the commit window), once it has a job.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let room = under_way.len() < depth;
        let wait_for_window = due.filter(|_| room && !waiting.is_empty());
        tokio::select! {
            biased;
            Some(couples) = under_way.next(), if !under_way.is_empty() => {
                for couple in couples {
                    committing.remove(&couple);
                }
            }
            () = services.shutdown.cancelled() => break,
            // Jobs of a couple under way wait here without holding up the others', so
            // the loop reads on past them; `QUEUE` more still bounds what it holds.
            received = queue.recv_many(&mut incoming, max), if waiting.len() < QUEUE => {
                if received == 0 {
                    break;
                }
                if waiting.is_empty() && busy && !window.is_zero() {
                    due = Some(tokio::time::Instant::now() + window);
                }
                waiting.extend(incoming.drain(..));
            }
            () = tokio::time::sleep_until(wait_for_window.unwrap_or_else(tokio::time::Instant::now)), if wait_for_window.is_some() => {
                due = None;
            }
        }
        while under_way.len() < depth && !waiting.is_empty() {
            let window_open = due.is_some_and(|at| tokio::time::Instant::now() < at);
            if window_open && waiting.len() < max {
                break;
            }
            let (batch, couples) = next_batch(&mut waiting, &committing, max);
            if batch.is_empty() {
                break;
            }
            busy = batch.len() >= window_after;
            due = (busy && !window.is_zero() && !waiting.is_empty())
                .then(|| tokio::time::Instant::now() + window);
            committing.extend(couples.iter().copied());
            let services = &services;
            under_way.push(async move {
                commit(services, batch).await;
                couples
            });
        }
    }
    // What is under way finishes first: a couple's later sends are behind it.
    while under_way.next().await.is_some() {}
    drain(&services, queue, waiting, max).await;
}

/// The next batch: the oldest waiting jobs of couples with no batch under way, up to `max`,
/// with the couples it holds. Jobs of a couple already committing stay waiting, in order.
fn next_batch(
    waiting: &mut VecDeque<Job>,
    committing: &HashSet<Uuid>,
    max: usize,
) -> (Vec<Job>, Vec<Uuid>) {
    let mut batch = Vec::new();
    let mut couples: HashSet<Uuid> = HashSet::new();
    let mut left = VecDeque::new();
    while batch.len() < max {
        let Some(job) = waiting.pop_front() else {
            break;
        };
        let couple = job.couple_id();
        if committing.contains(&couple) {
            left.push_back(job);
            continue;
        }
        couples.insert(couple);
        batch.push(job);
    }
    // A full batch leaves the rest unread: a backlog is not walked once per batch.
    left.append(waiting);
    *waiting = left;
    (batch, couples.into_iter().collect())
}

impl Job {
    fn couple_id(&self) -> Uuid {
        match self {
            Job::Send(send) => send.me.couple_id,
            Job::Read(me, _) => me.couple_id,
        }
    }
}

async fn commit(services: &Services, jobs: Vec<Job>) {
    let mut sends = Vec::new();
    let mut reads: HashMap<(Uuid, Uuid), (Member, i64)> = HashMap::new();
    for job in jobs {
        match job {
            Job::Send(send) => sends.push(send),
            Job::Read(me, seq) => {
                let mark = reads.entry((me.user_id, me.couple_id)).or_insert((me, seq));
                mark.1 = mark.1.max(seq);
            }
        }
    }
    // Read marks commit after the sends, within the same bound: a batch never holds its
    // couples past the first send's deadline, so a send queued behind it for one of them is
    // still answered within the timeout of its own arrival.
    let mut deadline = tokio::time::Instant::now() + services.config.db_timeout();
    if !sends.is_empty() {
        let started = Instant::now();
        for send in &sends {
            services
                .metrics
                .stages
                .queued
                .observe(send.queued_at.elapsed().as_secs_f64());
        }
        // A database that does not answer must not hold the sends: each is answered within
        // the timeout of its arrival (queued behind a stuck batch or not). Past it they are
        // answered `unavailable` and sent again with the same client_id, which finds the
        // chat if this commit did land after all (never a false ack).
        if let Some(oldest) = sends.iter().map(|s| s.queued_at).min() {
            deadline = oldest + services.config.db_timeout();
        }
        let decisions = match tokio::time::timeout_at(deadline, decide(services, &sends)).await {
            Ok(decisions) => decisions,
            Err(_) => {
                tracing::warn!(sends = sends.len(), "committing a batch timed out");
                // The commit may still land, and then nobody was told of its chats (a retry
                // is only acked): the couples' sessions read what they missed.
                let couples: HashSet<Uuid> = sends.iter().map(|s| s.me.couple_id).collect();
                for couple_id in couples {
                    publish::resync(&services.bus, couple_id);
                }
                sends
                    .iter()
                    .map(|_| {
                        Err(Error::Unavailable(
                            "the database did not answer in time, send again".into(),
                        ))
                    })
                    .collect()
            }
        };
        let took = started.elapsed().as_secs_f64();
        services.metrics.persist_seconds.observe(took);
        services.metrics.stages.commit.observe(took);
        services
            .metrics
            .commit_batch_size
            .observe(sends.len() as f64);
        for (send, decision) in sends.iter().zip(decisions) {
            announce(services, send, decision);
        }
    }
    if !reads.is_empty() {
        mark_read(services, reads.into_values().collect(), deadline).await;
    }
}

/// Persists the batch; one decision per send, in order.
async fn decide(services: &Services, sends: &[PendingSend]) -> Vec<Result<Decision>> {
    let mut decisions: Vec<Option<Result<Decision>>> = sends.iter().map(|_| None).collect();
    let mut rest: Vec<usize> = (0..sends.len()).collect();
    if services.db.get_database_backend() == DbBackend::Postgres {
        rest = append_plain(services, sends, &mut decisions).await;
        let by_statement = sends.len() - rest.len();
        services
            .metrics
            .sends_by_statement
            .inc_by(by_statement as u64);
    }
    if !rest.is_empty() {
        services.metrics.sends_by_rules.inc_by(rest.len() as u64);
        let batch: Vec<&PendingSend> = rest.iter().map(|&i| &sends[i]).collect();
        match with_rules(services, &batch).await {
            Ok(planned) => {
                for (i, decision) in rest.iter().zip(planned) {
                    decisions[*i] = Some(Ok(decision));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, sends = rest.len(), "committing a batch failed");
                for i in &rest {
                    decisions[*i] = Some(Err(unavailable(&e)));
                }
            }
        }
    }
    decisions
        .into_iter()
        .map(|d| {
            d.unwrap_or_else(|| Err(Error::Internal(anyhow::anyhow!("a send was not decided"))))
        })
        .collect()
}

/// The one-statement path for couples whose every send in the batch is a chat without file,
/// a reaction or an edit, none bringing up a question. Fills their decisions; returns the
/// indices of the sends left for the full rules.
async fn append_plain(
    services: &Services,
    sends: &[PendingSend],
    decisions: &mut [Option<Result<Decision>>],
) -> Vec<usize> {
    // A couple goes this way only if all its sends can: its order must not be split. A send
    // repeated within the batch (a retry, a second reaction to the same chat) is the rules',
    // and so is any send about a chat edited in the batch (the statement reads it as it was).
    let mut involved: HashSet<Uuid> = HashSet::new();
    let mut seen: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut reacting: HashSet<(Uuid, Uuid)> = HashSet::new();
    let edited: HashSet<Uuid> = sends
        .iter()
        .filter_map(|s| match &s.gesture {
            Gesture::Edit { chat_id, .. } => Some(*chat_id),
            _ => None,
        })
        .collect();
    let mut editing: HashSet<Uuid> = HashSet::new();
    for send in sends {
        let plain = send.triggers.is_empty()
            && match &send.gesture {
                Gesture::Chat {
                    file_id: None,
                    reply_to,
                    ..
                } => {
                    seen.insert((send.me.user_id, send.client_id))
                        && reply_to.is_none_or(|id| !edited.contains(&id))
                }
                Gesture::Chat { .. } => false,
                Gesture::React { chat_id, .. } => {
                    reacting.insert((*chat_id, send.me.user_id)) && !edited.contains(chat_id)
                }
                Gesture::Edit { chat_id, .. } => editing.insert(*chat_id),
            };
        if !plain {
            involved.insert(send.me.couple_id);
        }
    }
    let fast: Vec<usize> = (0..sends.len())
        .filter(|&i| !involved.contains(&sends[i].me.couple_id))
        .collect();
    let now = store::events::now_millis();
    // A couple the statement leaves undecided was most often committed meanwhile by its
    // partner's node (its checks, read before the couple's lock, are then not trusted):
    // once more in a fresh snapshot costs one round trip where the rules cost five or more.
    let (left, again) = statement(services, sends, &fast, now, decisions).await;
    if again {
        statement(services, sends, &left, now, decisions).await;
    }
    (0..sends.len())
        .filter(|&i| decisions[i].is_none())
        .collect()
}

/// One go of the one statement for the sends at `which`: fills the decisions of the couples
/// it committed (or of all, as `unavailable`, when the database failed) and returns the
/// indices it left undecided, and whether another go could take them.
async fn statement(
    services: &Services,
    sends: &[PendingSend],
    which: &[usize],
    now: chrono::DateTime<chrono::Utc>,
    decisions: &mut [Option<Result<Decision>>],
) -> (Vec<usize>, bool) {
    if which.is_empty() {
        return (Vec::new(), false);
    }
    let plain: Vec<Plain<'_>> = which.iter().map(|&i| plain_of(&sends[i])).collect();
    let limits = limits(services);
    let rule = EditRule {
        sent_since: now
            .checked_sub_signed(limits.edit_window)
            .unwrap_or(chrono::DateTime::UNIX_EPOCH)
            .max(chrono::DateTime::UNIX_EPOCH),
        max_edits: limits.max_edits,
    };
    let appended = match store::sends::append_plain(&services.db, &plain, now, rule).await {
        Ok(Some(appended)) => appended,
        // A retry among them: the full rules will recognize it.
        Ok(None) => return (which.to_vec(), false),
        Err(e) => {
            tracing::warn!(error = %e, sends = which.len(), "committing a batch failed");
            let error = Error::Db(e);
            for &i in which {
                decisions[i] = Some(Err(unavailable(&error)));
            }
            return (Vec::new(), false);
        }
    };
    // Seqs run up to each couple's new last seq, in the order the sends were given.
    let mut remaining: HashMap<Uuid, i64> = HashMap::new();
    for send in &plain {
        *remaining.entry(send.couple_id()).or_default() += 1;
    }
    let mut left = Vec::new();
    for (send, &i) in plain.iter().zip(which) {
        let couple_id = send.couple_id();
        let (Some(&last), Some(count)) = (
            appended.last_seqs.get(&couple_id),
            remaining.get_mut(&couple_id),
        ) else {
            left.push(i);
            continue;
        };
        *count -= 1;
        let seq = last - *count;
        decisions[i] = Some(Ok(match send {
            Plain::Chat(chat) => Decision::Sent {
                chat: entity::chats::Model {
                    id: chat.id,
                    couple_id,
                    seq,
                    sender_id: chat.sender_id,
                    client_id: chat.client_id,
                    text: chat.text.to_owned(),
                    sent_at: now,
                    deleted_at: None,
                    reply_to: chat.reply_to,
                    edits: 0,
                    edited_seq: None,
                    first_text: None,
                },
                file: None,
                quoted: chat.reply_to.and_then(|id| {
                    let (seq, sender_id, text) = appended.quoted.get(&id)?;
                    Some(QuoteView::live(id, *seq, *sender_id, text))
                }),
                asked: Vec::new(),
            },
            Plain::React(reaction) => Decision::Reacted {
                chat_id: reaction.chat_id,
                seq,
                emoji: reaction.emoji.map(str::to_owned),
            },
            Plain::Edit(edit) => Decision::Edited {
                chat_id: edit.chat_id,
                text: edit.text.to_owned(),
                seq,
                at: now,
                asked: Vec::new(),
            },
        }));
    }
    let again = !left.is_empty();
    (left, again)
}

/// A send the statement can take, as the statement takes it (a chat gets its id here).
fn plain_of(send: &PendingSend) -> Plain<'_> {
    match &send.gesture {
        Gesture::Chat { text, reply_to, .. } => Plain::Chat(PlainChat {
            id: Uuid::now_v7(),
            couple_id: send.me.couple_id,
            sender_id: send.me.user_id,
            client_id: send.client_id,
            text,
            reply_to: *reply_to,
        }),
        Gesture::React { chat_id, emoji } => Plain::React(PlainReaction {
            couple_id: send.me.couple_id,
            user_id: send.me.user_id,
            chat_id: *chat_id,
            emoji: emoji.as_deref(),
        }),
        Gesture::Edit { chat_id, text } => Plain::Edit(PlainEdit {
            couple_id: send.me.couple_id,
            user_id: send.me.user_id,
            chat_id: *chat_id,
            text,
        }),
    }
}

/// The full rules in one transaction: lock the couples, read what the rules need, decide,
/// write.
async fn with_rules(services: &Services, sends: &[&PendingSend]) -> Result<Vec<Decision>> {
    let couple_ids: Vec<Uuid> = sends.iter().map(|s| s.me.couple_id).collect();
    let mut pairs: Vec<(Uuid, Uuid)> = Vec::new();
    let mut wanted = store::sends::Wanted::default();
    for send in sends {
        wanted
            .question_ids
            .extend(send.triggers.iter().map(|t| t.question_id));
        match &send.gesture {
            Gesture::Chat {
                file_id, reply_to, ..
            } => {
                pairs.push((send.me.user_id, send.client_id));
                wanted.file_ids.extend(*file_id);
                wanted.target_ids.extend(*reply_to);
            }
            Gesture::React { chat_id, .. } => {
                wanted.target_ids.push(*chat_id);
                wanted.reactors.push(send.me.user_id);
            }
            Gesture::Edit { chat_id, .. } => wanted.target_ids.push(*chat_id),
        }
    }
    let txn = services.db.begin().await?;
    let couples = store::sends::lock_couples(&txn, couple_ids.clone()).await?;
    wanted.owing = couples.iter().any(|c| c.open_questions > 0);
    let loaded = store::sends::load(&txn, &couple_ids, &pairs, wanted).await?;
    let rules: Vec<plan::Send<'_>> = sends
        .iter()
        .map(|s| plan::Send {
            couple_id: s.me.couple_id,
            sender_id: s.me.user_id,
            client_id: s.client_id,
            gesture: &s.gesture,
            triggers: &s.triggers,
        })
        .collect();
    let now = store::events::now_millis();
    let (decisions, writes) = plan::plan(&couples, loaded, &rules, limits(services), now);
    store::sends::write(&txn, writes, words::words_of).await?;
    txn.commit().await?;
    Ok(decisions)
}

/// How far edits go (`DUET_EDIT_WINDOW_SECS`, `DUET_MAX_EDITS`).
fn limits(services: &Services) -> Limits {
    Limits {
        edit_window: i64::try_from(services.config.edit_window_secs)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .unwrap_or(chrono::TimeDelta::MAX),
        max_edits: i32::try_from(services.config.max_edits).unwrap_or(i32::MAX),
    }
}

/// A batch that could not be committed: the client may send again (same client_id).
fn unavailable(e: &Error) -> Error {
    match e.code() {
        "unavailable" => Error::Unavailable("the database is unavailable, send again".into()),
        _ => Error::Internal(anyhow::anyhow!("{e}")),
    }
}

/// Answers the sending socket, then tells the couple.
fn announce(services: &Services, send: &PendingSend, decision: Result<Decision>) {
    let me = &send.me;
    let client_id = send.client_id;
    match decision {
        Ok(Decision::Sent {
            chat,
            file,
            quoted,
            asked,
        }) => {
            reply(
                &send.reply,
                &ServerFrame::Ack {
                    client_id,
                    id: chat.id,
                    seq: chat.seq,
                },
            );
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq = chat.seq, "chat sent");
            let seq = chat.seq;
            if !send.silent {
                let what = What::Chat {
                    seq,
                    text: chat.text.clone(),
                    file: file.is_some(),
                };
                services
                    .push
                    .notify(me.couple_id, me.partner_id, Some(me.user_id), what);
            }
            let view = ChatView {
                silent: send.silent,
                reply_to: quoted,
                ..ChatView::new(chat, file)
            };
            publish::persisted(
                &services.bus,
                me.couple_id,
                seq,
                Some(me.user_id),
                &ServerFrame::Chat(view),
            );
            ask(services, me, asked);
        }
        Ok(Decision::Reacted {
            chat_id,
            seq,
            emoji,
        }) => {
            reply(
                &send.reply,
                &ServerFrame::Ack {
                    client_id,
                    id: chat_id,
                    seq,
                },
            );
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq, "reacted");
            let frame = ServerFrame::Reacted {
                seq,
                chat_id,
                user_id: me.user_id,
                emoji,
            };
            publish::persisted(&services.bus, me.couple_id, seq, Some(me.user_id), &frame);
        }
        Ok(Decision::Edited {
            chat_id,
            text,
            seq,
            at,
            asked,
        }) => {
            reply(
                &send.reply,
                &ServerFrame::Ack {
                    client_id,
                    id: chat_id,
                    seq,
                },
            );
            tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, seq, "chat edited");
            let frame = ServerFrame::Edited {
                seq,
                chat_id,
                user_id: me.user_id,
                text,
                edited_at: at,
            };
            publish::persisted(&services.bus, me.couple_id, seq, Some(me.user_id), &frame);
            ask(services, me, asked);
        }
        Ok(Decision::Unchanged { id, seq }) => {
            reply(&send.reply, &ServerFrame::Ack { client_id, id, seq });
        }
        Ok(Decision::Again { id, seq }) => {
            reply(&send.reply, &ServerFrame::Ack { client_id, id, seq });
            // A retry: the first attempt's commit may never have been announced (it timed
            // out, or its node died right after committing). The couple's sessions check.
            publish::resync(&services.bus, me.couple_id);
        }
        Ok(Decision::Refused(err)) | Err(err) => {
            reply(
                &send.reply,
                &ServerFrame::error(&err, Some(client_id.to_string())),
            );
        }
    }
}

/// Tells both partners of the questions a chat or an edit asked.
fn ask(services: &Services, me: &Member, asked: Vec<crate::store::questions::Asked>) {
    for asked in asked {
        tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, question_id = asked.question_id, seq = asked.seq, "question asked");
        let seq = asked.seq;
        for to in [me.partner_id, me.user_id] {
            let what = What::Question {
                seq,
                text: asked.text.clone(),
            };
            services.push.notify(me.couple_id, to, None, what);
        }
        publish::persisted(
            &services.bus,
            me.couple_id,
            seq,
            None,
            &ServerFrame::Question(asked.into()),
        );
    }
}

fn reply(outbox: &Outbox, frame: &ServerFrame) {
    // A socket that closed meanwhile needs no answer: its client resends with the same
    // client_id and gets the ack then.
    outbox.push(Delivery::Reply(frame.to_text()));
}

/// Stores read marks (the furthest per user in this batch) with one statement and tells the
/// partners whose marks moved.
async fn mark_read(services: &Services, marks: Vec<(Member, i64)>, deadline: tokio::time::Instant) {
    let pairs: Vec<(Uuid, Uuid, i64)> = marks
        .iter()
        .map(|(me, seq)| (me.user_id, me.couple_id, *seq))
        .collect();
    let marked = tokio::time::timeout_at(deadline, store::sends::mark_read(&services.db, &pairs));
    match marked.await {
        Err(_) => tracing::warn!(marks = pairs.len(), "storing read marks timed out"),
        Ok(Err(e)) => tracing::warn!(error = %e, marks = pairs.len(), "storing read marks"),
        Ok(Ok(moved)) => {
            for (user_id, couple_id, seq) in moved {
                let frame = ServerFrame::Read { user_id, seq };
                publish::to_partner(&services.bus, couple_id, user_id, &frame);
            }
        }
    }
}
