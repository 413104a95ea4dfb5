//! One socket's whole life, top to bottom, in one task: `hello`, replay, `synced`, then one
//! `select!` over "frames from the client", "deliveries for the client" (the couple's events
//! and the answers to this socket's sends), "the timer" (ping, idle, session expiry, a gap
//! that did not fill) and "the node is stopping". The task owns the socket and is its only
//! writer: everything that is ready is fed, then flushed once, so a burst costs one write.
//!
//! The session never waits on its own sends: it hands them to the node's committer and reads
//! on; the ack arrives later like any other delivery. Others push into the socket's outbox;
//! one that fills up means the client does not keep up, and it is closed (it resumes with
//! `after=`), never buffered without bound.
//!
//! Delivery: every persisted event has the couple's `seq`; `delivery::Order` decides what of
//! it to write and when a gap has waited long enough that the session must read what it
//! missed from the database. The bus says `Resync` when it knows it lost something, and on
//! every ping tick the session compares its cursor with the couple's last seq, in case the
//! lost event was the last one. So the client sees every seq exactly once, in order, whatever
//! the bus did.
//!
//! Revocation does not ride on the bus alone either: the read of the last seq at every
//! catch-up also finds out whether the socket's login, its account and its couple are still
//! there (`pairing::socket_standing`, one statement), so a socket whose "session ended" or
//! "couple deleted" message was lost still closes (4001 / 4002) within one ping interval.

mod delivery;

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::bus::{BusEvent, Delivery, Outbox};
use crate::chat;
use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::{ClientFrame, ServerFrame};
use crate::nudge;
use crate::pairing::{self, SocketStanding};
use crate::question;
use crate::state::AppState;
use delivery::Order;

/// Chats replayed to a client that connects without `after`.
const LATEST_CHATS: u64 = 50;
/// Events read from the database per page when replaying or catching up.
const PAGE: u64 = 1000;
/// How long an event that arrived ahead of its turn waits for the ones before it.
const REORDER_WAIT: Duration = Duration::from_millis(100);
/// Events held back waiting for a gap to fill; beyond, the session catches up at once.
const REORDER_LIMIT: usize = 256;
/// A flood of frames other than sends is told `rate_limited` at most this often.
const RATE_NOTICE_EVERY: Duration = Duration::from_secs(1);
/// After refusing an oversized frame its unread bytes are still in the kernel's buffer, and
/// closing the TCP socket at once would send a reset that can overtake our close frame. We
/// hold the socket this long so the client reads the 1009 first.
const LINGER_AFTER_TOO_BIG: Duration = Duration::from_millis(500);

/// Close codes: 1007 a text frame that is not UTF-8, 1009 too big, 1012 service restart, 1013 try again later (slow client),
/// 1001 no answer to pings, 4001 the session ended (logged out or expired: sign in again),
/// 4002 the couple was deleted (its break-up fell due: pair again).
pub mod close {
    pub const NOT_UTF8: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTART: u16 = 1012;
    pub const SLOW: u16 = 1013;
    pub const IDLE: u16 = 1001;
    pub const SESSION_ENDED: u16 = 4001;
    pub const COUPLE_DELETED: u16 = 4002;
    pub const INTERNAL: u16 = 1011;
}

/// Why a session ends: with a close frame, or silently because the peer is gone.
enum Ending {
    Close(u16, &'static str),
    Gone,
}

type Step = std::result::Result<(), Ending>;

/// One WebSocket of a member: replays what was missed, then writes the couple's events in seq
/// order and reads the client's frames, until the client leaves, its login ends or the node
/// stops.
pub struct Session {
    state: AppState,
    me: Member,
    after: Option<i64>,
    /// When the login behind this socket expires.
    expires_at: Instant,
    /// What of the couple's events to write, in seq order; holds `(sender, frame)`.
    order: Order<(Option<uuid::Uuid>, Utf8Bytes)>,
    /// The highest seq given to this socket of an event not by this user: how far a read
    /// mark may go (marking one's own chats read tells nobody anything).
    readable: i64,
    /// The last read mark handed to the committer.
    read_sent: i64,
    /// The client shows the conversation (it says so with `looking` frames): while it does,
    /// its user's devices get no push.
    looking: bool,
    outbox: Arc<Outbox>,
    limiter: DefaultDirectRateLimiter,
    /// When this socket was last told `rate_limited` for a frame that is not a send.
    told_rate_limited: Option<Instant>,
    /// Last time the client sent anything (a frame or a pong).
    last_heard: Instant,
    next_ping: Instant,
    /// Bytes fed since the last flush (replays and catch-ups write in chunks).
    unflushed: usize,
    /// Live frames decided in this wake-up, written together at its end.
    out: Vec<Message>,
    /// Events were lost or are overdue: read them from the database before writing on.
    behind: bool,
    /// A write to the client ran past the write timeout: it is closed as slow.
    write_timed_out: bool,
}

impl Session {
    pub fn new(
        state: AppState,
        me: Member,
        expires_at: chrono::DateTime<chrono::Utc>,
        after: Option<i64>,
    ) -> Self {
        let rate = NonZeroU32::new(state.config.frame_rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(state.config.frame_burst).unwrap_or(rate);
        let now = Instant::now();
        let lifetime = (expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        Session {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            told_rate_limited: None,
            outbox: Arc::new(Outbox::new(state.config.socket_queue)),
            next_ping: now + state.config.ping_interval(),
            state,
            me,
            after,
            expires_at: now + lifetime,
            order: Order::new(REORDER_WAIT, REORDER_LIMIT),
            readable: 0,
            read_sent: 0,
            looking: true,
            last_heard: now,
            unflushed: 0,
            out: Vec::new(),
            behind: false,
            write_timed_out: false,
        }
    }

    /// The socket's life. The session is lent to `live` rather than moved: an `async fn`
    /// keeps its arguments twice (as passed and as bound), which for the session would be
    /// 360 bytes more in the future every open socket holds.
    pub fn run(self, socket: WebSocket) -> impl Future<Output = ()> + Send {
        let mut parts = (self, socket);
        async move {
            let (session, socket) = &mut parts;
            session.live(socket).await;
        }
    }

    async fn live(&mut self, socket: &mut WebSocket) {
        // Listen before reading where the couple stands, so nothing falls between the two.
        // The presence round trip goes meanwhile: with a Redis that hangs, the client waits for
        // the longer of the two bounds, not their sum.
        // Rare, large futures (Redis round trips, database reads) are boxed so that the
        // future every idle socket holds for its whole life stays small.
        let (subscription, (first, partner_online)) = Box::pin(async {
            tokio::join!(
                self.state.bus.subscribe(
                    self.me.couple_id,
                    self.me.user_id,
                    Arc::clone(&self.outbox)
                ),
                self.state.bus.socket_opened(
                    self.me.user_id,
                    self.me.couple_id,
                    self.me.partner_id
                ),
            )
        })
        .await;
        self.state.metrics.sockets_open.inc();
        if first {
            chat::presence(&self.state, &self.me, true);
        }
        tracing::debug!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "socket open");

        let handshake = Box::pin(self.handshake(socket, partner_online)).await;
        let ending = match handshake {
            Ok(()) => self.serve(socket).await,
            Err(_) if self.write_timed_out => self.too_slow(),
            Err(e) => {
                tracing::warn!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, error = %e, "handshake failed");
                Ending::Close(close::INTERNAL, "try again")
            }
        };
        drop(subscription);
        if let Ending::Close(code, reason) = ending {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            // Sending it first finishes the frame a timed-out write left half written (the
            // socket keeps it whole in its buffer), so a slow client that reads again in
            // time finds whole frames, then the close. One that does not is dropped.
            let write_timeout = self.state.config.socket_write_timeout();
            let _ =
                tokio::time::timeout(write_timeout, socket.send(Message::Close(Some(frame)))).await;
            if code == close::TOO_BIG {
                tokio::time::sleep(LINGER_AFTER_TOO_BIG).await;
            }
        }
        self.state.metrics.sockets_open.dec();
        if Box::pin(
            self.state
                .bus
                .socket_closed(self.me.user_id, self.me.couple_id, self.looking),
        )
        .await
        {
            chat::presence(&self.state, &self.me, false);
        }
        tracing::debug!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "socket closed");
    }

    /// `hello`, the replay, `synced`, then every question still owed.
    async fn handshake(&mut self, socket: &mut WebSocket, partner_online: bool) -> Result<()> {
        let standing = pairing::standing(&self.state, &self.me)
            .await?
            .ok_or(Error::NotPaired)?;
        let last_seq = standing.last_seq;
        let hello = ServerFrame::Hello {
            user_id: self.me.user_id,
            partner_id: self.me.partner_id,
            couple_id: self.me.couple_id,
            last_seq,
            partner_online,
            partner_read_seq: standing.partner_read_seq,
        };
        self.feed(socket, hello.to_text()).await?;
        match self.after {
            Some(after) => {
                self.order.advance_to(after.min(last_seq));
                self.catch_up_to(socket, last_seq).await?;
            }
            None => {
                let mut latest = chat::history(
                    &self.state,
                    self.me.couple_id,
                    Some(last_seq + 1),
                    LATEST_CHATS,
                )
                .await?;
                latest.reverse();
                for view in latest {
                    if view.sender_id != self.me.user_id {
                        self.readable = self.readable.max(view.seq);
                    }
                    self.feed(socket, ServerFrame::Chat(view).to_text()).await?;
                }
            }
        }
        self.order.advance_to(last_seq);
        self.feed(socket, ServerFrame::Synced { last_seq }.to_text())
            .await?;
        // Every question still owed, even if the replay just showed it: the client needs them
        // to know it is gated, whatever it remembered. None are open: nothing to read.
        if standing.open_questions > 0 {
            for question in question::owed(&self.state, &self.me, last_seq).await? {
                self.feed(socket, ServerFrame::Question(question).to_text())
                    .await?;
            }
        }
        self.flush(socket).await
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> Ending {
        let shutdown = self.state.shutdown.clone();
        let outbox = Arc::clone(&self.outbox);
        let mut delivered = VecDeque::new();
        let timer = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(timer);
        loop {
            let mut took_deliveries = None;
            // Handlers only decide what to write (into `self.out`); writing happens below,
            // once per wake-up: every frame fed, then one flush.
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => Err(Ending::Close(close::RESTART, "server restarting")),
                taken = outbox.take(&mut delivered) => match taken {
                    Ok(since) => {
                        let now = std::time::Instant::now();
                        let stages = &self.state.metrics.stages;
                        stages.outbox.observe(now.duration_since(since).as_secs_f64());
                        took_deliveries = Some(now);
                        self.on_deliveries(&mut delivered)
                    }
                    Err(_) => Err(self.too_slow()),
                },
                // The socket is not split: it is read only here and written only after the
                // `select!`, so one owner needs no lock between two halves. Boxed, as the
                // writes below: what a frame or a write needs lives only while it runs, not in
                // the future every idle socket holds.
                message = socket.next() => Box::pin(self.on_message(message)).await,
                () = &mut timer => self.on_timer(),
            };
            let step = match step {
                Ok(()) if self.behind || self.order.behind() => self.catch_up(socket).await,
                step => step,
            };
            let step = match step {
                // Nothing to write: no box to allocate.
                Ok(()) if self.out.is_empty() => Ok(()),
                Ok(()) => Box::pin(self.write_out(socket)).await,
                Err(ending) => Err(ending),
            };
            if let Some(took) = took_deliveries {
                let stages = &self.state.metrics.stages;
                stages.socket.observe(took.elapsed().as_secs_f64());
            }
            if let Err(ending) = step {
                return ending;
            }
            let deadline = self.next_deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut next = self.next_ping.min(self.expires_at);
        if let Some(gap) = self.order.deadline() {
            next = next.min(gap);
        }
        next
    }

    fn on_deliveries(&mut self, delivered: &mut VecDeque<Delivery>) -> Step {
        while let Some(delivery) = delivered.pop_front() {
            match delivery {
                Delivery::Reply(json) => self.write(json),
                Delivery::Event(event) => self.on_event(event)?,
            }
        }
        if delivered.capacity() > 16 {
            delivered.shrink_to(16);
        }
        Ok(())
    }

    fn on_event(&mut self, event: BusEvent) -> Step {
        match event {
            BusEvent::Frame {
                seq, from, json, ..
            } => {
                let released = self.order.arrive(seq, (from, json));
                give(
                    &mut self.out,
                    &mut self.readable,
                    &self.me,
                    &self.state,
                    released,
                );
            }
            BusEvent::SessionEnded { session_id } if session_id == self.me.session_id => {
                return Err(Ending::Close(close::SESSION_ENDED, "signed out"));
            }
            BusEvent::SessionEnded { .. } | BusEvent::Presence { .. } => {}
            BusEvent::Resync => self.behind = true,
            BusEvent::CoupleDeleted => {
                return Err(Ending::Close(close::COUPLE_DELETED, "couple deleted"));
            }
        }
        Ok(())
    }

    async fn on_message(
        &mut self,
        message: Option<std::result::Result<Message, axum::Error>>,
    ) -> Step {
        let message = match message {
            None | Some(Ok(Message::Close(_))) => return Err(Ending::Gone),
            Some(Err(e)) => return Err(read_failed(e)),
            Some(Ok(message)) => message,
        };
        self.last_heard = Instant::now();
        self.state.metrics.frames_received.inc();
        let reply = match message {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(_) => {
                let err = Error::BadRequest("frames are JSON text messages".into());
                Some(ServerFrame::error(&err, None))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => None,
        };
        if let Some(frame) = reply {
            self.write(frame.to_text());
        }
        Ok(())
    }

    /// Carries out one client frame; returns what answers it on this socket now, if anything.
    async fn on_text(&mut self, text: &str) -> Option<ServerFrame> {
        let parsed = ClientFrame::parse(text);
        let client_id = match &parsed {
            Ok(
                ClientFrame::Send { client_id, .. }
                | ClientFrame::React { client_id, .. }
                | ClientFrame::Edit { client_id, .. },
            ) => Some(client_id.to_string()),
            Ok(_) => None,
            Err((_, client_id)) => client_id.clone(),
        };
        // Bad frames count too: answering each of a flood of them costs as much as a good one.
        if self.limiter.check().is_err() {
            return self.rate_limited(client_id);
        }
        let frame = match parsed {
            Ok(frame) => frame,
            Err((err, client_id)) => return Some(ServerFrame::error(&err, client_id)),
        };
        match self.apply(frame).await {
            Ok(reply) => reply,
            Err(err) => Some(ServerFrame::error(&err, client_id)),
        }
    }

    /// A refused `send` is always answered, with its client_id: its client must learn to send
    /// it again. Anything else is told once per `RATE_NOTICE_EVERY`, so a flood is not
    /// answered by a flood.
    fn rate_limited(&mut self, client_id: Option<String>) -> Option<ServerFrame> {
        if client_id.is_none() {
            let now = Instant::now();
            if self
                .told_rate_limited
                .is_some_and(|t| now < t + RATE_NOTICE_EVERY)
            {
                return None;
            }
            self.told_rate_limited = Some(now);
        }
        Some(ServerFrame::error(&Error::RateLimited, client_id))
    }

    async fn apply(&mut self, frame: ClientFrame) -> Result<Option<ServerFrame>> {
        let (state, me) = (&self.state, &self.me);
        match frame {
            // Answered later, through the outbox, once committed.
            ClientFrame::Send {
                client_id,
                text,
                file_id,
                silent,
                reply_to,
            } => {
                let new = chat::NewChat {
                    text: &text,
                    file_id,
                    reply_to,
                    silent,
                };
                let outbox = Arc::clone(&self.outbox);
                chat::send(&state.committer, me, client_id, new, outbox)?;
                Ok(None)
            }
            ClientFrame::React {
                client_id,
                chat_id,
                emoji,
            } => {
                let outbox = Arc::clone(&self.outbox);
                let emoji = emoji.as_deref();
                chat::react(&state.committer, me, client_id, chat_id, emoji, outbox)?;
                Ok(None)
            }
            ClientFrame::Edit {
                client_id,
                chat_id,
                text,
            } => {
                let outbox = Arc::clone(&self.outbox);
                chat::edit(&state.committer, me, client_id, chat_id, &text, outbox)?;
                Ok(None)
            }
            // Rare, and their futures are large (a transaction): boxed, so that the future
            // every idle socket holds for its whole life stays small.
            ClientFrame::Answer { question_id, text } => {
                bounded(state, question::answer(state, me, question_id, &text)).await
            }
            ClientFrame::Delete { chat_id } => {
                bounded(state, chat::delete(state, me, chat_id)).await?;
                Ok(None)
            }
            ClientFrame::Typing => {
                chat::typing(state, me);
                Ok(None)
            }
            ClientFrame::Nudge => {
                nudge::send(state, &state.nudges, me)?;
                Ok(None)
            }
            ClientFrame::Looking { looking } => {
                if looking != self.looking {
                    self.looking = looking;
                    state.bus.looking(me.user_id, me.couple_id, looking);
                }
                Ok(None)
            }
            ClientFrame::Read { seq } => {
                let cursor = self.order.cursor();
                if seq < 0 || seq > cursor {
                    return Err(Error::InvalidInput(format!(
                        "read seq must be between 0 and {cursor}"
                    )));
                }
                // Only events by the partner (and questions) need marking; one's own chats
                // after them change nothing for anyone.
                let seq = seq.min(self.readable);
                if seq > self.read_sent {
                    self.read_sent = seq;
                    chat::read(&self.state.committer, &self.me, seq);
                }
                Ok(None)
            }
        }
    }

    fn on_timer(&mut self) -> Step {
        let now = Instant::now();
        if now >= self.expires_at {
            return Err(Ending::Close(close::SESSION_ENDED, "session expired"));
        }
        if now >= self.next_ping {
            if self.last_heard.elapsed() > self.state.config.idle_timeout() {
                return Err(Ending::Close(close::IDLE, "no answer to ping"));
            }
            self.next_ping = now + self.state.config.ping_interval();
            self.out.push(Message::Ping(Default::default()));
            // The backstop for a lost doorbell: a gap shows only when a later event arrives,
            // so the last event of a conversation could wait forever. Comparing with the
            // couple's last seq now and then costs one statement of primary-key reads, which
            // also tells whether the session and the couple still stand.
            self.behind = true;
        }
        Ok(())
    }

    fn too_slow(&self) -> Ending {
        self.state.metrics.slow_client_disconnects.inc();
        tracing::info!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "slow client disconnected");
        Ending::Close(close::SLOW, "too slow, reconnect")
    }

    /// Reads what this socket missed from the database, up to the couple's latest seq.
    async fn catch_up(&mut self, socket: &mut WebSocket) -> Step {
        Box::pin(self.catch_up_now(socket)).await
    }

    async fn catch_up_now(&mut self, socket: &mut WebSocket) -> Step {
        self.behind = false;
        // What is already decided goes first: it is older than what the database adds.
        self.write_out(socket).await?;
        let result = async {
            // The same read tells whether the socket may go on: the bus message that ends a
            // session or a couple can be lost, and this is the backstop (within one ping).
            let last = match pairing::socket_standing(&self.state, &self.me).await? {
                SocketStanding::Paired { last_seq } => last_seq,
                SocketStanding::SessionEnded => {
                    tracing::info!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "session found ended at catch-up");
                    return Ok(Err(Ending::Close(close::SESSION_ENDED, "signed out")));
                }
                SocketStanding::CoupleGone => {
                    tracing::info!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "couple found gone at catch-up");
                    return Ok(Err(Ending::Close(close::COUPLE_DELETED, "couple deleted")));
                }
            };
            self.catch_up_to(socket, last).await?;
            self.flush(socket).await?;
            Ok(Ok(()))
        }
        .await;
        // What waited for the gap is in the database too; what waited beyond it may go now.
        let upto = self.order.cursor();
        let released = self.order.caught_up(upto);
        give(
            &mut self.out,
            &mut self.readable,
            &self.me,
            &self.state,
            released,
        );
        if result.is_err() && self.write_timed_out {
            return Err(self.too_slow());
        }
        result.unwrap_or_else(|e: Error| {
            tracing::warn!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, error = %e, "catch-up failed");
            Err(Ending::Close(close::RESTART, "please reconnect"))
        })
    }

    async fn catch_up_to(&mut self, socket: &mut WebSocket, upto: i64) -> Result<()> {
        while self.order.cursor() < upto {
            let after = self.order.cursor();
            let page =
                chat::events_between(&self.state, self.me.couple_id, after, upto, PAGE).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            for event in page {
                if event.from != Some(self.me.user_id) {
                    self.readable = event.seq;
                }
                self.feed(socket, event.frame.to_text()).await?;
            }
            self.order.advance_to(last);
        }
        self.order.advance_to(upto);
        Ok(())
    }

    /// Feeds a frame of the replay or a catch-up, writing out every `socket_flush_bytes`.
    async fn feed(&mut self, socket: &mut WebSocket, json: Utf8Bytes) -> Result<()> {
        let len = json.len();
        let fed = tokio::time::timeout(
            self.state.config.socket_write_timeout(),
            socket.feed(Message::Text(json)),
        )
        .await;
        self.written(fed)?;
        self.state.metrics.frames_sent.inc();
        self.unflushed += len;
        if self.unflushed >= self.state.config.socket_flush_bytes {
            self.flush(socket).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, socket: &mut WebSocket) -> Result<()> {
        self.unflushed = 0;
        let flushed =
            tokio::time::timeout(self.state.config.socket_write_timeout(), socket.flush()).await;
        self.written(flushed)
    }

    /// How a replay or catch-up write went; a timeout marks the client as slow.
    fn written(
        &mut self,
        outcome: std::result::Result<
            std::result::Result<(), axum::Error>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<()> {
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Unavailable("the client is gone".into())),
            Err(_) => {
                self.write_timed_out = true;
                Err(Error::Unavailable("the client is too slow".into()))
            }
        }
    }

    /// Queues a live frame for this wake-up's write.
    fn write(&mut self, json: Utf8Bytes) {
        self.state.metrics.frames_sent.inc();
        self.out.push(Message::Text(json));
    }

    /// Feeds what this wake-up decided to write, then flushes once.
    async fn write_out(&mut self, socket: &mut WebSocket) -> Step {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = &mut self.out;
        let written = tokio::time::timeout(self.state.config.socket_write_timeout(), async {
            for message in out.drain(..) {
                socket.feed(message).await?;
            }
            socket.flush().await
        })
        .await;
        if self.out.capacity() > 8 {
            self.out.shrink_to(8);
        }
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Gone),
            // What was not fed yet is dropped; the client resumes from its last seq.
            Err(_) => Err(self.too_slow()),
        }
    }
}

/// Runs a frame's database work for at most the database timeout: the socket loop waits on
/// it, and nothing may hold a socket deaf for longer. Cut short, its transaction rolls back
/// (or, cut after its commit, the event comes by the ping tick's catch-up); the client is
/// told `unavailable` and sends again.
///
/// Not an `async fn`: one would hold `work` unboxed in its own future until its first poll, so
/// the socket's future (which every idle socket keeps for its whole life) would have room for
/// the largest of them. Boxed here, before any future around it exists.
fn bounded<'a, T>(
    state: &AppState,
    work: impl Future<Output = Result<T>> + Send + 'a,
) -> impl Future<Output = Result<T>> + Send + 'a {
    let work = tokio::time::timeout(state.config.db_timeout(), Box::pin(work));
    async move {
        work.await
            .map_err(|_| Error::Unavailable("the database is slow; send it again".into()))?
    }
}

/// Queues the live frames the order released; marks how far a read mark may go.
fn give(
    out: &mut Vec<Message>,
    readable: &mut i64,
    me: &Member,
    state: &AppState,
    released: impl Iterator<Item = (Option<i64>, (Option<uuid::Uuid>, Utf8Bytes))>,
) {
    for (seq, (from, json)) in released {
        if let Some(seq) = seq
            && from != Some(me.user_id)
        {
            *readable = seq;
        }
        state.metrics.frames_sent.inc();
        out.push(Message::Text(json));
    }
}

/// How a failed read ends the socket: the client broke a rule we can name (a message over the
/// limit, a text frame that is not UTF-8) and gets its close code, or the connection is gone.
fn read_failed(err: axum::Error) -> Ending {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match err.into_inner().downcast::<WsError>().map(|e| *e) {
        Ok(WsError::Capacity(_)) => Ending::Close(close::TOO_BIG, "frame too large"),
        Ok(WsError::Utf8(_)) => Ending::Close(close::NOT_UTF8, "text frames must be UTF-8"),
        _ => Ending::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open socket keeps this future for its whole life, so 10,000 idle sockets pay for
    /// each of its bytes 10,000 times. What a frame, a write or a catch-up needs while it runs
    /// is boxed then; a large future awaited in place (such as a transaction's) would make
    /// every socket carry room for it: that once made it 8.6 KB.
    #[test]
    fn an_idle_socket_holds_a_small_future() {
        let size = returned_size(Session::run);
        assert!(size <= 1536, "a socket's future is {size} bytes");
    }
}
