//! The one task that writes to a socket. Replies, fan-out and pings all reach it through one
//! bounded queue; a burst is fed frame by frame and flushed once, so it costs one write.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};

/// A peer that takes longer than this to accept a burst is gone or hopelessly slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written between two flushes at most, so one busy couple cannot starve the flush.
const MAX_BURST: usize = 64;
/// After refusing an oversized frame its unread bytes are still in the kernel's buffer, and
/// closing the TCP socket at once would send a reset that can overtake our close frame. We
/// hold the socket this long so the client reads the 1009 first.
const LINGER_AFTER_TOO_BIG: Duration = Duration::from_millis(500);

pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<CloseFrame>,
) {
    loop {
        tokio::select! {
            biased;
            frame = &mut close => {
                // A close jumps the queue: a slow client's queue is full by definition.
                if let Ok(frame) = frame {
                    let linger = frame.code == super::session::close::TOO_BIG;
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                    if linger {
                        tokio::time::sleep(LINGER_AFTER_TOO_BIG).await;
                    }
                }
                break;
            }
            message = queue.recv() => {
                let Some(message) = message else { break };
                let burst = async {
                    sink.feed(message).await?;
                    for _ in 1..MAX_BURST {
                        match queue.try_recv() {
                            Ok(message) => sink.feed(message).await?,
                            Err(_) => break,
                        }
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, burst).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
    }
}
