//! The WebSocket frames of the contract (`PROTOCOL.md`), one JSON text message each.
//! Server frames are serialized once per event and shared by every socket that gets them.

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chat::ChatView;
use crate::error::Error;
use crate::question::QuestionView;

#[derive(Serialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        user_id: Uuid,
        partner_id: Uuid,
        couple_id: Uuid,
        last_seq: i64,
        partner_online: bool,
        /// Extension: how far the partner has read, so read marks show right away.
        partner_read_seq: i64,
    },
    Chat(ChatView),
    Deleted {
        seq: i64,
        chat_id: Uuid,
    },
    Question(QuestionView),
    Answered {
        seq: i64,
        question_id: i64,
        user_id: Uuid,
    },
    Synced {
        last_seq: i64,
    },
    Ack {
        client_id: Uuid,
        id: Uuid,
        seq: i64,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        question_id: Option<i64>,
    },
    Presence {
        user_id: Uuid,
        online: bool,
    },
    Typing {
        user_id: Uuid,
    },
    Read {
        user_id: Uuid,
        seq: i64,
    },
}

impl ServerFrame {
    pub fn error(err: &Error, client_id: Option<String>) -> Self {
        err.log();
        ServerFrame::Error {
            code: err.code(),
            message: err.public_message(),
            client_id,
            question_id: match err {
                Error::AnswerRequired(question_id) => Some(*question_id),
                _ => None,
            },
        }
    }

    pub fn to_text(&self) -> Utf8Bytes {
        // Serializing these plain structs cannot fail; an empty object is a safe fallback.
        serde_json::to_string(self)
            .unwrap_or_else(|_| "{}".to_owned())
            .into()
    }
}

/// What a client may send. Unknown types and malformed fields become `invalid_input`.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        client_id: Uuid,
        #[serde(default)]
        text: String,
        #[serde(default)]
        file_id: Option<Uuid>,
    },
    Answer {
        question_id: i64,
        text: String,
    },
    Delete {
        chat_id: Uuid,
    },
    Typing,
    Read {
        seq: i64,
    },
}

impl ClientFrame {
    /// Parses a text frame. On failure returns the error to send back, with the frame's
    /// `client_id` when it had one, so the client can tell which send failed.
    pub fn parse(text: &str) -> Result<ClientFrame, (Error, Option<String>)> {
        // A well-formed frame parses in one pass; only a bad one is looked at again, to say
        // what is wrong with it and which send it was.
        if let Ok(frame) = serde_json::from_str(text) {
            return Ok(frame);
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
            (
                Error::BadRequest("a frame must be a JSON object".into()),
                None,
            )
        })?;
        let client_id = value
            .get("client_id")
            .and_then(|v| v.as_str())
            .map(|s| s.chars().take(64).collect::<String>());
        let kind = value
            .get("type")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        if !matches!(
            kind.as_str(),
            "send" | "answer" | "delete" | "typing" | "read"
        ) {
            let message = if kind.is_empty() {
                "a frame needs a \"type\"".to_owned()
            } else {
                format!(
                    "unknown frame type {:?}",
                    kind.chars().take(32).collect::<String>()
                )
            };
            return Err((Error::BadRequest(message), client_id));
        }
        serde_json::from_value(value).map_err(|e| {
            (
                Error::BadRequest(format!("invalid {kind} frame: {}", brief(&e))),
                client_id,
            )
        })
    }
}

/// serde's message without the line/column noise of a value we parsed ourselves.
fn brief(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_owned()
}
