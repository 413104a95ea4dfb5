//! One socket's whole life, top to bottom: `hello`, replay, `synced`, then one `select!` over
//! "frame from the client", "event from the couple's channel", "ping tick", "session expired"
//! and "node shutting down". The session never writes to the socket itself: everything goes
//! through the writer's bounded queue, and a client that lets it fill up is disconnected
//! (it resumes with `after=`), never buffered without bound.
//!
//! Delivery: every persisted event has the couple's `seq`. `cursor` is the highest seq this
//! socket has been given. A live event at or below it is a duplicate and dropped; one above
//! `cursor + 1` means something was missed (lost publish, lagging channel), and the session
//! catches up from the database before going on. So the client sees every seq exactly once,
//! in order, whatever the bus did.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::writer::write_loop;
use crate::bus::{BusEvent, Subscription};
use crate::chat::{self, Member};
use crate::error::{Error, Result};
use crate::frame::{ClientFrame, ServerFrame};
use crate::question;
use crate::state::AppState;
use crate::store;

/// Chats replayed to a client that connects without `after`.
const LATEST_CHATS: u64 = 50;
/// Events read from the database per page when replaying or catching up.
const PAGE: u64 = 500;
/// How long a replay or catch-up waits for room in a full queue before calling the client slow.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Close codes: 1009 too big, 1012 service restart, 1013 try again later (slow client),
/// 4001 the session ended (logged out or expired: sign in again), 4002 the couple was deleted
/// (its break-up fell due: pair again).
pub mod close {
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

pub struct Session {
    state: AppState,
    me: Member,
    expires_at: DateTime<Utc>,
    after: Option<i64>,
    /// Highest seq given to this socket; see the module docs.
    cursor: i64,
    queue: Option<mpsc::Sender<Message>>,
    limiter: DefaultDirectRateLimiter,
    /// Last time the client sent anything (a frame or a pong): silence past the idle
    /// timeout closes the socket.
    last_heard: Instant,
}

impl Session {
    pub fn new(state: AppState, me: Member, expires_at: DateTime<Utc>, after: Option<i64>) -> Self {
        let rate = NonZeroU32::new(state.config.frame_rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(state.config.frame_burst).unwrap_or(rate);
        Session {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            state,
            me,
            expires_at,
            after,
            cursor: 0,
            queue: None,
            last_heard: Instant::now(),
        }
    }

    pub async fn run(mut self, socket: WebSocket) {
        let (sink, mut stream) = socket.split();
        let (queue, outgoing) = mpsc::channel(self.state.config.socket_queue.max(8));
        let (close_tx, close_rx) = oneshot::channel();
        self.queue = Some(queue);
        self.state.tasks.spawn(write_loop(sink, outgoing, close_rx));

        // Subscribe before reading where the couple stands, so nothing falls between the two.
        let mut subscription = self.state.bus.subscribe(self.me.couple_id).await;
        self.state.metrics.sockets_open.inc();
        let first = self
            .state
            .bus
            .socket_opened(self.me.user_id, self.me.couple_id, self.me.partner_id)
            .await;
        if first {
            chat::presence(&self.state, &self.me, true).await;
        }
        tracing::debug!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "socket open");

        let ending = match self.handshake().await {
            Ok(()) => self.serve(&mut stream, &mut subscription).await,
            Err(e) => {
                tracing::warn!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, error = %e, "handshake failed");
                Ending::Close(close::INTERNAL, "try again")
            }
        };
        if let Ending::Close(code, reason) = ending {
            let _ = close_tx.send(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            });
        }
        drop(subscription);
        self.state.metrics.sockets_open.dec();
        if self.state.bus.socket_closed(self.me.user_id).await {
            chat::presence(&self.state, &self.me, false).await;
        }
        tracing::debug!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "socket closed");
    }

    /// `hello`, the replay, `synced`.
    async fn handshake(&mut self) -> Result<()> {
        let membership = store::couples::membership(&self.state.db, self.me.user_id)
            .await?
            .ok_or(Error::NotPaired)?;
        let last_seq = membership.couple.last_seq;
        let hello = ServerFrame::Hello {
            user_id: self.me.user_id,
            partner_id: self.me.partner_id,
            couple_id: self.me.couple_id,
            last_seq,
            partner_online: self.state.bus.is_online(self.me.partner_id).await,
            partner_read_seq: membership.partner_read_seq,
        };
        self.push_waiting(hello.to_text()).await?;
        match self.after {
            Some(after) => {
                self.cursor = after.min(last_seq);
                self.catch_up_to(last_seq).await?;
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
                    self.push_waiting(ServerFrame::Chat(view).to_text()).await?;
                }
            }
        }
        self.cursor = last_seq;
        self.push_waiting(ServerFrame::Synced { last_seq }.to_text())
            .await?;
        // Every question still owed, even if the replay just showed it: the client needs them
        // to know it is gated, whatever it remembered.
        for question in question::owed(&self.state, &self.me, last_seq).await? {
            self.push_waiting(ServerFrame::Question(question).to_text())
                .await?;
        }
        Ok(())
    }

    async fn serve(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        subscription: &mut Subscription,
    ) -> Ending {
        let shutdown = self.state.shutdown.clone();
        let period = self.state.config.ping_interval();
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        let expiry = (self.expires_at - Utc::now()).to_std().unwrap_or_default();
        let expired = tokio::time::sleep(expiry);
        tokio::pin!(expired);
        let Some(queue) = self.queue.clone() else {
            return Ending::Gone;
        };

        loop {
            let step = tokio::select! {
                message = stream.next() => self.on_message(message).await,
                event = subscription.rx.recv() => self.on_event(event).await,
                _ = ping.tick() => self.on_ping_tick(),
                () = &mut expired => Err(Ending::Close(close::SESSION_ENDED, "session expired")),
                () = shutdown.cancelled() => Err(Ending::Close(close::RESTART, "server restarting")),
                () = queue.closed() => Err(Ending::Gone),
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    async fn on_message(
        &mut self,
        message: Option<std::result::Result<Message, axum::Error>>,
    ) -> std::result::Result<(), Ending> {
        let message = match message {
            None | Some(Ok(Message::Close(_))) => return Err(Ending::Gone),
            Some(Err(e)) => {
                return Err(if is_too_big(e) {
                    Ending::Close(close::TOO_BIG, "frame too large")
                } else {
                    Ending::Gone
                });
            }
            Some(Ok(message)) => message,
        };
        self.last_heard = Instant::now();
        self.state.metrics.frames_received.inc();
        match message {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(_) => {
                let err = Error::BadRequest("frames are JSON text messages".into());
                self.push(ServerFrame::error(&err, None).to_text())
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> std::result::Result<(), Ending> {
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err((err, client_id)) => {
                return self.push(ServerFrame::error(&err, client_id).to_text());
            }
        };
        let client_id = match &frame {
            ClientFrame::Send { client_id, .. } => Some(client_id.to_string()),
            _ => None,
        };
        if self.limiter.check().is_err() {
            return self.push(ServerFrame::error(&Error::RateLimited, client_id).to_text());
        }
        match self.apply(frame).await {
            Ok(Some(reply)) => self.push(reply.to_text()),
            Ok(None) => Ok(()),
            Err(err) => self.push(ServerFrame::error(&err, client_id).to_text()),
        }
    }

    /// Carries out one client frame; returns the reply meant for this socket only.
    async fn apply(&mut self, frame: ClientFrame) -> Result<Option<ServerFrame>> {
        let (state, me) = (&self.state, &self.me);
        match frame {
            ClientFrame::Send {
                client_id,
                text,
                file_id,
            } => {
                let chat = chat::send(state, me, client_id, &text, file_id).await?;
                Ok(Some(ServerFrame::Ack {
                    client_id,
                    id: chat.id,
                    seq: chat.seq,
                }))
            }
            ClientFrame::Answer { question_id, text } => {
                question::answer(state, me, question_id, &text).await
            }
            ClientFrame::Delete { chat_id } => {
                chat::delete(state, me, chat_id).await?;
                Ok(None)
            }
            ClientFrame::Typing => {
                chat::typing(state, me).await;
                Ok(None)
            }
            ClientFrame::Read { seq } => {
                chat::read(state, me, seq).await?;
                Ok(None)
            }
        }
    }

    async fn on_event(
        &mut self,
        event: std::result::Result<BusEvent, RecvError>,
    ) -> std::result::Result<(), Ending> {
        match event {
            Ok(BusEvent::Frame {
                seq,
                skip_user,
                json,
            }) => {
                if skip_user == Some(self.me.user_id) {
                    return Ok(());
                }
                match seq {
                    None => self.push(json),
                    Some(seq) if seq <= self.cursor => Ok(()),
                    Some(seq) if seq == self.cursor + 1 => {
                        self.cursor = seq;
                        self.push(json)
                    }
                    Some(_) => self.catch_up().await,
                }
            }
            Ok(BusEvent::SessionEnded { session_id }) if session_id == self.me.session_id => {
                Err(Ending::Close(close::SESSION_ENDED, "signed out"))
            }
            Ok(BusEvent::SessionEnded { .. } | BusEvent::Presence { .. }) => Ok(()),
            Ok(BusEvent::Resync) => self.catch_up().await,
            Ok(BusEvent::CoupleDeleted) => {
                Err(Ending::Close(close::COUPLE_DELETED, "couple deleted"))
            }
            Err(RecvError::Lagged(_)) => self.catch_up().await,
            Err(RecvError::Closed) => Err(Ending::Close(close::RESTART, "server restarting")),
        }
    }

    fn on_ping_tick(&mut self) -> std::result::Result<(), Ending> {
        if self.last_heard.elapsed() > self.state.config.idle_timeout() {
            return Err(Ending::Close(close::IDLE, "no answer to ping"));
        }
        self.push_message(Message::Ping(Default::default()))
    }

    /// Reads what this socket missed from the database, up to the couple's latest seq.
    async fn catch_up(&mut self) -> std::result::Result<(), Ending> {
        let result = async {
            let last = store::couples::last_seq(&self.state.db, self.me.couple_id).await?;
            self.catch_up_to(last).await
        }
        .await;
        result.map_err(|e| {
            tracing::warn!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, error = %e, "catch-up failed");
            Ending::Close(close::RESTART, "please reconnect")
        })
    }

    async fn catch_up_to(&mut self, upto: i64) -> Result<()> {
        while self.cursor < upto {
            let page =
                chat::events_between(&self.state, self.me.couple_id, self.cursor, upto, PAGE)
                    .await?;
            let Some(&(last, _)) = page.last() else {
                break;
            };
            for (_, frame) in page {
                self.push_waiting(frame.to_text()).await?;
            }
            self.cursor = last;
        }
        self.cursor = self.cursor.max(upto);
        Ok(())
    }

    /// Queues a live frame. A full queue means the client does not keep up: close it.
    fn push(&self, json: Utf8Bytes) -> std::result::Result<(), Ending> {
        self.push_message(Message::Text(json))
    }

    fn push_message(&self, message: Message) -> std::result::Result<(), Ending> {
        let Some(queue) = &self.queue else {
            return Err(Ending::Gone);
        };
        match queue.try_send(message) {
            Ok(()) => {
                self.state.metrics.frames_sent.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.state.metrics.slow_client_disconnects.inc();
                tracing::info!(couple_id = %self.me.couple_id, user_id = %self.me.user_id, "slow client disconnected");
                Err(Ending::Close(close::SLOW, "too slow, reconnect"))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Ending::Gone),
        }
    }

    /// Queues a replayed frame, waiting for room: a replay may be longer than the queue.
    async fn push_waiting(&self, json: Utf8Bytes) -> Result<()> {
        let queue = self
            .queue
            .as_ref()
            .ok_or(Error::Unavailable("socket closed".into()))?;
        match tokio::time::timeout(QUEUE_WAIT, queue.send(Message::Text(json))).await {
            Ok(Ok(())) => {
                self.state.metrics.frames_sent.inc();
                Ok(())
            }
            _ => Err(Error::Unavailable("client too slow for the replay".into())),
        }
    }
}

/// tungstenite reports a message over the configured limit as a capacity error.
fn is_too_big(err: axum::Error) -> bool {
    err.into_inner()
        .downcast::<tokio_tungstenite::tungstenite::Error>()
        .is_ok_and(|e| matches!(*e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}
