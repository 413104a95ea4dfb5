//! A WebSocket client that speaks the contract's frames.

use super::*;

/// How long a test waits for a frame it expects before failing (not a speed assertion:
/// only a bound on how long a broken test hangs).
const PATIENCE: Duration = Duration::from_secs(10);

pub struct Socket {
    pub(super) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
    pub replay: Vec<Value>,
    pub synced: Value,
}

impl Socket {
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("sending a frame");
    }

    /// Queues a frame without flushing, so many leave back to back.
    pub async fn feed(&mut self, frame: Value) {
        self.ws
            .feed(Message::text(frame.to_string()))
            .await
            .expect("feeding a frame");
    }

    pub async fn flush(&mut self) {
        self.ws.flush().await.expect("flushing frames");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("sending a message");
    }

    /// Sends a chat; returns its client_id.
    pub async fn say(&mut self, text: &str) -> Uuid {
        let client_id = Uuid::new_v4();
        self.send(json!({ "type": "send", "client_id": client_id, "text": text }))
            .await;
        client_id
    }

    /// The next JSON frame (pings and pongs are skipped); fails on close or silence.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Close(frame) => panic!("socket closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame, which must be of this type.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Skips frames until one of this type arrives (presence, typing and the like).
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the socket closes in time");
            match message {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }
}

impl Socket {
    /// Skips frames until one of these types arrives.
    pub async fn until_any(&mut self, kinds: &[&str]) -> Value {
        loop {
            let frame = self.next().await;
            if kinds.iter().any(|k| frame["type"] == *k) {
                return frame;
            }
        }
    }
}

impl Socket {
    /// Sends a chat and returns what answers it: its `ack`, or the `error` carrying its
    /// client_id (frames in between are skipped).
    /// Sends a chat and waits for its ack (failing on an error); returns the ack.
    pub async fn acked(&mut self, text: &str) -> Value {
        let ack = self.outcome(text).await;
        assert_eq!(ack["type"], "ack", "{text}: {ack}");
        ack
    }

    pub async fn outcome(&mut self, text: &str) -> Value {
        let client_id = self.say(text).await.to_string();
        loop {
            let frame = self.until_any(&["ack", "error"]).await;
            if frame["client_id"] == client_id.as_str() {
                return frame;
            }
        }
    }

    /// Skips frames until the chat with this text arrives.
    pub async fn until_text(&mut self, text: &str) -> Value {
        loop {
            let frame = self.until("chat").await;
            if frame["text"] == text {
                return frame;
            }
        }
    }
}

impl Socket {
    /// Waits for the server to close the socket, failing if it is still open at `deadline`;
    /// returns the close code and every JSON frame that came before the close.
    pub async fn closed_by(&mut self, deadline: tokio::time::Instant) -> (u16, Vec<Value>) {
        let mut frames = Vec::new();
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the socket is closed in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), frames),
                Some(Ok(Message::Text(text))) => {
                    frames.push(serde_json::from_str(&text).expect("JSON frame"));
                }
                Some(Ok(_)) => continue,
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    }
}
