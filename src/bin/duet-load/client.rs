//! The client half of Duet's wire contract (`../shared/PROTOCOL.md`), as every mode speaks it:
//! dialing a node (TCP, optionally from a rotating loopback source address, then the WebSocket
//! upgrade with `Authorization: Bearer`), reading `hello` .. replay .. `synced`, the one
//! borrowed frame type all incoming traffic is parsed into, and client_ids that carry
//! (run nonce, sender, k) so an `ack`, `error` or `chat` maps back to its send by arithmetic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use uuid::Uuid;

pub type Ws = WebSocketStream<TcpStream>;

/// A node as the user named it (kept for messages and the `Host` header) and where it resolved.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
}

impl Node {
    /// Resolves `H:P` once, up front, so a typo fails before any socket is opened.
    pub async fn resolve(name: &str) -> Result<Node> {
        let mut found = tokio::net::lookup_host(name).await.with_context(|| {
            format!("cannot resolve node address {name:?} (expected HOST:PORT)")
        })?;
        // IPv4 first: the source-address rotation below is for 127.0.0.0/8.
        let all: Vec<SocketAddr> = found.by_ref().collect();
        let addr = all
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| all.first())
            .copied()
            .with_context(|| format!("{name:?} resolved to no address"))?;
        Ok(Node {
            name: name.to_owned(),
            addr,
        })
    }

    pub async fn resolve_all(names: &[String]) -> Result<Vec<Node>> {
        if names.is_empty() {
            bail!("no node given");
        }
        let mut nodes = Vec::with_capacity(names.len());
        for name in names {
            nodes.push(Node::resolve(name.trim()).await?);
        }
        Ok(nodes)
    }
}

/// Why a socket could not be opened. Kept apart from anyhow because `storm` retries some
/// kinds (node down, node full) and gives up on others (bad token, not paired), and every mode
/// counts failures by `kind()`.
#[derive(Debug)]
pub enum DialError {
    /// The TCP connect itself failed (refused, unreachable, out of ports or descriptors).
    Connect {
        node: String,
        error: std::io::Error,
    },
    /// The node answered the upgrade with an HTTP error (`code` from the contract's error body).
    Status {
        status: u16,
        code: String,
    },
    /// Anything else in the WebSocket handshake.
    Handshake(String),
    /// The socket ended before `synced`.
    Closed(String),
    Timeout(&'static str),
}

impl DialError {
    /// Worth another try later: the node is down, restarting, full, or shedding load.
    pub fn retriable(&self) -> bool {
        match self {
            DialError::Connect { .. }
            | DialError::Handshake(_)
            | DialError::Closed(_)
            | DialError::Timeout(_) => true,
            DialError::Status { status, .. } => matches!(status, 429 | 500..=599),
        }
    }

    /// A short stable label to count failures by.
    pub fn kind(&self) -> String {
        match self {
            DialError::Connect { error, .. } => format!("connect: {}", error.kind()),
            DialError::Status { status, code } => format!("http {status} {code}"),
            DialError::Handshake(_) => "handshake".to_owned(),
            DialError::Closed(_) => "closed before synced".to_owned(),
            DialError::Timeout(stage) => format!("timeout {stage}"),
        }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Connect { node, error } => write!(f, "cannot connect to {node}: {error}"),
            DialError::Status { status, code } => {
                write!(f, "the node refused the WebSocket: HTTP {status} {code}")?;
                match (status, code.as_str()) {
                    (429, _) => write!(
                        f,
                        " (per-user socket limits: raise DUET_MAX_SOCKETS_PER_USER, and set \
                         DUET_SOCKET_RATE_PER_USER=0 for runs that open or reopen many sockets \
                         per user)"
                    ),
                    (503, _) => write!(f, " (node full or draining: DUET_MAX_SOCKETS)"),
                    (401, _) => write!(f, " (token unknown to this deployment: run setup again)"),
                    (409, "not_paired") => write!(f, " (user has no couple)"),
                    _ => Ok(()),
                }
            }
            DialError::Handshake(why) => write!(f, "WebSocket handshake failed: {why}"),
            DialError::Closed(why) => write!(f, "socket closed before synced: {why}"),
            DialError::Timeout(stage) => write!(f, "timed out {stage}"),
        }
    }
}

impl std::error::Error for DialError {}

/// How a mode opens many sockets (`idle`, `storm`).
#[derive(clap::Args, Debug)]
pub struct Opening {
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Loopback source addresses to rotate over (127.0.0.2 ...); 0 lets the kernel choose.
    #[arg(long, default_value_t = 200)]
    pub sources: u32,
    /// Read buffer of each of the generator's sockets, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
}

impl Opening {
    /// A dialer for idle sockets: every message written at once.
    pub fn dialer(&self, timeout: Duration) -> Dialer {
        Dialer::new(self.read_buffer, 0, timeout, self.sources)
    }
}

/// Opens sockets. Holds what every socket of a run shares: the buffer sizes, the timeout and
/// the source-address rotation.
pub struct Dialer {
    config: WebSocketConfig,
    timeout: Duration,
    /// How many loopback source addresses to rotate over (0: let the kernel choose).
    sources: u32,
    next_source: AtomicUsize,
}

impl Dialer {
    /// `read_buffer` is what tungstenite allocates per socket up front (128 KiB by default, far
    /// too much for 100,000 idle sockets). `write_buffer` 0 writes every message at once;
    /// larger lets a writer feed a burst and send it with one flush.
    pub fn new(read_buffer: usize, write_buffer: usize, timeout: Duration, sources: u32) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(read_buffer)
            .write_buffer_size(write_buffer)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(1 << 20));
        Dialer {
            config,
            timeout,
            sources,
            next_source: AtomicUsize::new(0),
        }
    }

    /// Loopback has ~28k ephemeral ports per source address; 100,000 sockets (and the
    /// TIME_WAIT left by earlier runs) need many. Every 127.0.0.0/8 address is local on Linux,
    /// so sockets to a loopback node are bound to 127.0.0.2, .3, ... in turn.
    async fn tcp(&self, node: &Node) -> Result<TcpStream, DialError> {
        let err = |error| DialError::Connect {
            node: node.name.clone(),
            error,
        };
        let socket = match node.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(err)?;
        if self.sources > 0 && node.addr.ip().is_loopback() && node.addr.is_ipv4() {
            let n = self.next_source.fetch_add(1, Ordering::Relaxed) as u32 % self.sources;
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + n);
            socket
                .bind(SocketAddr::new(IpAddr::V4(ip), 0))
                .map_err(err)?;
        }
        let stream = socket.connect(node.addr).await.map_err(err)?;
        // Chat frames are small and latency is what we measure.
        stream.set_nodelay(true).map_err(err)?;
        Ok(stream)
    }

    /// TCP connect plus the upgrade, within the dialer's timeout. `after` resumes.
    pub async fn open(
        &self,
        node: &Node,
        token: &str,
        after: Option<i64>,
    ) -> Result<Ws, DialError> {
        tokio::time::timeout(self.timeout, self.open_inner(node, token, after))
            .await
            .map_err(|_| DialError::Timeout("connecting"))?
    }

    async fn open_inner(
        &self,
        node: &Node,
        token: &str,
        after: Option<i64>,
    ) -> Result<Ws, DialError> {
        let url = match after {
            Some(n) => format!("ws://{}/ws?after={n}", node.name),
            None => format!("ws://{}/ws", node.name),
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| DialError::Handshake(e.to_string()))?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| DialError::Handshake("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        let stream = self.tcp(node).await?;
        match client_async_with_config(request, stream, Some(self.config)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => {
                let code = response
                    .body()
                    .as_deref()
                    .and_then(|body| serde_json::from_slice::<ErrorBody>(body).ok())
                    .map(|b| b.error.code)
                    .unwrap_or_default();
                Err(DialError::Status {
                    status: response.status().as_u16(),
                    code,
                })
            }
            Err(e) => Err(DialError::Handshake(e.to_string())),
        }
    }

    /// Opens a socket and reads it up to `synced`; `on_frame` sees every frame of the replay.
    pub async fn open_synced(
        &self,
        node: &Node,
        token: &str,
        after: Option<i64>,
        on_frame: impl FnMut(&Frame<'_>),
    ) -> Result<(Ws, Synced), DialError> {
        let mut ws = self.open(node, token, after).await?;
        let synced = tokio::time::timeout(self.timeout, until_synced(&mut ws, on_frame))
            .await
            .map_err(|_| DialError::Timeout("waiting for synced"))??;
        Ok((ws, synced))
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorCode,
}

#[derive(Deserialize)]
struct ErrorCode {
    code: String,
}

/// What a socket learned by `synced`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Synced {
    /// The couple's last seq as `synced` stated it: what a later `?after=` resumes from.
    pub last_seq: i64,
    /// Frames between `hello` and `synced` (the replay and anything live in between).
    pub frames: u64,
    /// Frames that were not JSON of the contract's shape.
    pub unreadable: u64,
}

async fn until_synced(
    ws: &mut Ws,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<Synced, DialError> {
    let mut synced = Synced::default();
    let mut hello = false;
    while let Some(message) = ws.next().await {
        let message = message.map_err(|e| DialError::Closed(error_label(&e)))?;
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Close(frame) => return Err(DialError::Closed(close_label(frame.as_ref()))),
            Message::Binary(_) => {
                synced.unreadable += 1;
                continue;
            }
            _ => continue,
        };
        let Some(frame) = Frame::parse(text) else {
            synced.unreadable += 1;
            continue;
        };
        match frame.kind {
            "hello" => hello = true,
            "synced" if hello => {
                synced.last_seq = frame.last_seq.unwrap_or(0);
                return Ok(synced);
            }
            _ => {
                synced.frames += 1;
                on_frame(&frame);
            }
        }
    }
    Err(DialError::Closed("end of stream".into()))
}

/// Reads a socket until it ends, answering the node's pings on the way (tungstenite replies
/// while reading); returns how it ended. With `last_seq`, keeps the last event seq seen, for
/// a later `?after=`.
pub async fn hold(ws: &mut Ws, mut last_seq: Option<&mut i64>) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Some(last) = last_seq.as_deref_mut()
                    && let Some(seq) = Frame::parse(text.as_str()).and_then(|f| f.event_seq())
                {
                    *last = (*last).max(seq);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return close_label(frame.as_ref());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return error_label(&e),
            None => return "eof".to_owned(),
        }
    }
}

/// How a socket failed, as a short label to count ("reset", "io: broken pipe", ...).
pub fn error_label(e: &tungstenite::Error) -> String {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => "reset".into(),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => "closed".into(),
        tungstenite::Error::Io(io) => format!("io: {}", io.kind()),
        tungstenite::Error::Capacity(_) => "frame too large".into(),
        tungstenite::Error::Protocol(p) => format!("protocol: {p}"),
        other => other.to_string(),
    }
}

/// A close frame as a label to count: `close 1012`, or `close` without a code.
pub fn close_label(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("close {}", u16::from(frame.code)),
        None => "close".to_owned(),
    }
}

/// Every server frame, parsed without copying: only the fields some mode reads, the rest
/// (texts, file objects, times) skipped. The fields read are UUIDs, integers and fixed codes,
/// which never need JSON escapes, so `&str` borrows always work; a frame that did escape one
/// fails to parse and is counted as unreadable rather than misread.
#[derive(Deserialize, Debug)]
pub struct Frame<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub client_id: Option<&'a str>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub last_seq: Option<i64>,
    #[serde(default)]
    pub code: Option<&'a str>,
    /// An `ack`'s chat id (what the next reaction, reply or edit of a mixed load targets).
    #[serde(default)]
    pub id: Option<&'a str>,
    /// An `edited` frame's new text, which names its send like a chat's text does (borrowed
    /// unless it has escapes).
    #[serde(default, borrow)]
    pub text: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Frame<'a> {
    pub fn parse(text: &'a str) -> Option<Frame<'a>> {
        serde_json::from_str(text).ok()
    }

    /// The seq of a persisted couple event, the thing `?after=` counts in. `read` also carries a
    /// `seq`, but it is a read mark, not an event.
    pub fn event_seq(&self) -> Option<i64> {
        match self.kind {
            "chat" | "deleted" | "question" | "answered" | "reacted" | "edited" => self.seq,
            _ => None,
        }
    }
}

/// The random half of client_ids, one per run (or step), so ids never collide with an earlier
/// run's on the server's `(sender, client_id)` idempotency key and late frames of an earlier
/// step are recognised as such.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nonce(u64);

impl Nonce {
    pub fn random() -> Nonce {
        // The UUID version nibble (4) lives in this half; set it so ids are well-formed v4.
        Nonce((rand::random::<u64>() & !0xF000) | 0x4000)
    }

    /// A client_id holding (this nonce, sender, k): the upper 64 bits are the nonce, the lower
    /// carry the RFC 4122 variant bits, 30 bits of sender and 32 of k.
    pub fn client_id(self, sender: u32, k: u32) -> Uuid {
        let low = (0b10u64 << 62) | (u64::from(sender & 0x3FFF_FFFF) << 32) | u64::from(k);
        Uuid::from_u128((u128::from(self.0) << 64) | u128::from(low))
    }

    /// The (sender, k) of a client_id made by this nonce; None for anything else.
    pub fn decode(self, client_id: &str) -> Option<(u32, u32)> {
        let bits = Uuid::try_parse(client_id).ok()?.as_u128();
        if (bits >> 64) as u64 != self.0 {
            return None;
        }
        let low = bits as u64;
        Some((((low >> 32) & 0x3FFF_FFFF) as u32, low as u32))
    }
}

/// A `send` frame. The text is only a letter, digits and spaces so that it can never contain a
/// keyword of the question catalogue (which would block the couple behind a question).
pub fn send_frame(id: Uuid, sender: u32, k: u32, scheduled_us: u64) -> Message {
    Message::text(format!(
        r#"{{"type":"send","client_id":"{id}","text":"m {sender} {k} {scheduled_us}"}}"#
    ))
}

/// A `send` that replies to an earlier chat.
pub fn reply_frame(id: Uuid, sender: u32, k: u32, scheduled_us: u64, to: &str) -> Message {
    Message::text(format!(
        r#"{{"type":"send","client_id":"{id}","text":"m {sender} {k} {scheduled_us}","reply_to":"{to}"}}"#
    ))
}

/// An `edit` whose new text names the send like a chat's does (and so always differs).
pub fn edit_frame(id: Uuid, sender: u32, k: u32, scheduled_us: u64, chat: &str) -> Message {
    Message::text(format!(
        r#"{{"type":"edit","client_id":"{id}","chat_id":"{chat}","text":"m {sender} {k} {scheduled_us}"}}"#
    ))
}

/// A `react`; `nth` alternates the emoji so that no reaction repeats the one before it.
pub fn react_frame(id: Uuid, chat: &str, nth: u32) -> Message {
    let emoji = if nth.is_multiple_of(2) {
        "❤️"
    } else {
        "😂"
    };
    Message::text(format!(
        r#"{{"type":"react","client_id":"{id}","chat_id":"{chat}","emoji":"{emoji}"}}"#
    ))
}

/// The (sender, k) a load text `m {sender} {k} {at}` names.
pub fn named_by(text: &str) -> Option<(u32, u32)> {
    let mut words = text.strip_prefix("m ")?.split(' ');
    let sender = words.next()?.parse().ok()?;
    let k = words.next()?.parse().ok()?;
    Some((sender, k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip_and_are_v4() {
        let nonce = Nonce::random();
        let id = nonce.client_id(123_456, 4_000_000_000);
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            nonce.decode(&id.to_string()),
            Some((123_456, 4_000_000_000))
        );
        assert_eq!(Nonce::random().decode(&id.to_string()), None);
    }

    #[test]
    fn frames_parse_borrowed_and_bad_ones_are_none() {
        let text = r#"{"type":"chat","seq":7,"id":"x","text":"a \"q\"","client_id":null}"#;
        let frame = Frame::parse(text);
        assert!(matches!(
            frame,
            Some(Frame {
                kind: "chat",
                seq: Some(7),
                client_id: None,
                ..
            })
        ));
        assert!(Frame::parse("not json").is_none());
        assert!(Frame::parse(r#"{"seq":1}"#).is_none());
    }
}
