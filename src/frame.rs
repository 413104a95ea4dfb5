//! The WebSocket frames of the contract (docs/PROTOCOL.md, docs/asyncapi.yaml), one JSON
//! text message each.
//! Server frames are serialized once per event and shared by every socket that gets them.

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;
use crate::view::{AnniversariesView, ChatView, QuestionView};

// One frame per event, serialized once and dropped: boxing the chat would cost an allocation
// per chat on the hot path for no saving.
#[allow(clippy::large_enum_variant)]
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
    /// A partner reacted to a chat (`emoji`), or took their reaction away (`None`).
    Reacted {
        seq: i64,
        chat_id: Uuid,
        user_id: Uuid,
        emoji: Option<String>,
    },
    /// The sender changed a chat's text.
    Edited {
        seq: i64,
        chat_id: Uuid,
        user_id: Uuid,
        text: String,
        #[serde(serialize_with = "crate::view::rfc3339")]
        edited_at: chrono::DateTime<chrono::Utc>,
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
    /// The partner is thinking of you (live only).
    Nudge {
        user_id: Uuid,
    },
    Read {
        user_id: Uuid,
        seq: i64,
    },
    /// A break-up was scheduled (`delete_at`, RFC 3339) or taken back (`null`).
    Couple {
        delete_at: Option<String>,
    },
    /// The couple's calendar changed (day one, time zone, own dates): the whole of it.
    Anniversaries(AnniversariesView),
    /// The words the couple leaves out of its most used words changed: all of them.
    ExcludedWords {
        words: Vec<String>,
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
        /// The partner's client should not notify for this chat.
        #[serde(default)]
        silent: bool,
        /// The earlier chat of the couple this one answers (quotes).
        #[serde(default)]
        reply_to: Option<Uuid>,
    },
    /// Puts my reaction on a chat of ours, replacing my earlier one; `None` (or `""`) takes it
    /// away.
    React {
        client_id: Uuid,
        chat_id: Uuid,
        #[serde(default)]
        emoji: Option<String>,
    },
    /// Changes the text of a chat of mine.
    Edit {
        client_id: Uuid,
        chat_id: Uuid,
        text: String,
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
    /// Whether the client shows the conversation now (a tab shown or hidden): pushes go to
    /// the user's devices only while none of their clients does.
    Looking {
        looking: bool,
    },
    /// "Thinking of you": a nudge to the partner.
    Nudge,
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
            "send"
                | "answer"
                | "delete"
                | "typing"
                | "read"
                | "looking"
                | "nudge"
                | "react"
                | "edit"
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

#[cfg(test)]
mod tests {
    //! Properties of the parser: whatever a client sends (any text, any JSON, frames with
    //! fields of the wrong shape) is parsed or refused with `invalid_input`, never a panic;
    //! and every well-formed frame of the contract parses back to exactly what was sent.

    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    /// The contract's client frames, as a test can build and compare them.
    #[derive(Clone, Debug, PartialEq)]
    enum Model {
        Send {
            client_id: Uuid,
            text: String,
            file_id: Option<Uuid>,
            reply_to: Option<Uuid>,
        },
        Answer {
            question_id: i64,
            text: String,
        },
        Delete {
            chat_id: Uuid,
        },
        React {
            client_id: Uuid,
            chat_id: Uuid,
            emoji: Option<String>,
        },
        Edit {
            client_id: Uuid,
            chat_id: Uuid,
            text: String,
        },
        Typing,
        Read {
            seq: i64,
        },
        Looking {
            looking: bool,
        },
        Nudge,
    }

    impl From<ClientFrame> for Model {
        fn from(frame: ClientFrame) -> Self {
            match frame {
                ClientFrame::Send {
                    client_id,
                    text,
                    file_id,
                    reply_to,
                    ..
                } => Model::Send {
                    client_id,
                    text,
                    file_id,
                    reply_to,
                },
                ClientFrame::React {
                    client_id,
                    chat_id,
                    emoji,
                } => Model::React {
                    client_id,
                    chat_id,
                    emoji,
                },
                ClientFrame::Edit {
                    client_id,
                    chat_id,
                    text,
                } => Model::Edit {
                    client_id,
                    chat_id,
                    text,
                },
                ClientFrame::Answer { question_id, text } => Model::Answer { question_id, text },
                ClientFrame::Delete { chat_id } => Model::Delete { chat_id },
                ClientFrame::Typing => Model::Typing,
                ClientFrame::Read { seq } => Model::Read { seq },
                ClientFrame::Looking { looking } => Model::Looking { looking },
                ClientFrame::Nudge => Model::Nudge,
            }
        }
    }

    /// The frame as a client writes it: optional fields left out when empty, and sometimes
    /// a field this server does not know (a newer client's), which it must ignore.
    fn wire(model: &Model, extra: Option<(String, Value)>) -> Value {
        let mut frame = match model {
            Model::Send {
                client_id,
                text,
                file_id,
                reply_to,
            } => {
                let mut f = json!({ "type": "send", "client_id": client_id });
                if !text.is_empty() {
                    f["text"] = json!(text);
                }
                if let Some(file_id) = file_id {
                    f["file_id"] = json!(file_id);
                }
                if let Some(reply_to) = reply_to {
                    f["reply_to"] = json!(reply_to);
                }
                f
            }
            Model::React {
                client_id,
                chat_id,
                emoji,
            } => {
                let mut f = json!({ "type": "react", "client_id": client_id, "chat_id": chat_id });
                if let Some(emoji) = emoji {
                    f["emoji"] = json!(emoji);
                }
                f
            }
            Model::Edit {
                client_id,
                chat_id,
                text,
            } => {
                json!({ "type": "edit", "client_id": client_id, "chat_id": chat_id, "text": text })
            }
            Model::Answer { question_id, text } => {
                json!({ "type": "answer", "question_id": question_id, "text": text })
            }
            Model::Delete { chat_id } => json!({ "type": "delete", "chat_id": chat_id }),
            Model::Typing => json!({ "type": "typing" }),
            Model::Read { seq } => json!({ "type": "read", "seq": seq }),
            Model::Looking { looking } => json!({ "type": "looking", "looking": looking }),
            Model::Nudge => json!({ "type": "nudge" }),
        };
        if let (Some((key, value)), Some(object)) = (extra, frame.as_object_mut())
            && !object.contains_key(&key)
        {
            object.insert(key, value);
        }
        frame
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn model() -> impl Strategy<Value = Model> {
        prop_oneof![
            (
                uuid(),
                any::<String>(),
                proptest::option::of(uuid()),
                proptest::option::of(uuid())
            )
                .prop_map(|(client_id, text, file_id, reply_to)| Model::Send {
                    client_id,
                    text,
                    file_id,
                    reply_to
                }),
            (uuid(), uuid(), proptest::option::of(any::<String>())).prop_map(
                |(client_id, chat_id, emoji)| Model::React {
                    client_id,
                    chat_id,
                    emoji
                }
            ),
            (uuid(), uuid(), any::<String>()).prop_map(|(client_id, chat_id, text)| {
                Model::Edit {
                    client_id,
                    chat_id,
                    text,
                }
            }),
            (any::<i64>(), any::<String>())
                .prop_map(|(question_id, text)| Model::Answer { question_id, text }),
            uuid().prop_map(|chat_id| Model::Delete { chat_id }),
            Just(Model::Typing),
            any::<i64>().prop_map(|seq| Model::Read { seq }),
            any::<bool>().prop_map(|looking| Model::Looking { looking }),
            Just(Model::Nudge),
        ]
    }

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            uuid().prop_map(|u| Value::String(u.to_string())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// Objects that nearly are frames: a known type (or not), the known field names with
    /// values of any shape, and other fields.
    fn frame_like() -> impl Strategy<Value = Value> {
        let kind = prop_oneof![
            4 => prop_oneof![
                Just("send"),
                Just("answer"),
                Just("delete"),
                Just("typing"),
                Just("read"),
                Just("react"),
                Just("edit")
            ]
            .prop_map(Value::from),
            1 => json_value(),
        ];
        let key = prop_oneof![
            4 => prop_oneof![
                Just("client_id"),
                Just("text"),
                Just("file_id"),
                Just("question_id"),
                Just("chat_id"),
                Just("seq"),
                Just("emoji"),
                Just("reply_to"),
            ]
            .prop_map(str::to_owned),
            1 => any::<String>(),
        ];
        (
            proptest::option::weighted(0.9, kind),
            proptest::collection::vec((key, json_value()), 0..5),
        )
            .prop_map(|(kind, fields)| {
                let mut object: Map<String, Value> = fields.into_iter().collect();
                if let Some(kind) = kind {
                    object.insert("type".to_owned(), kind);
                }
                Value::Object(object)
            })
    }

    /// A refusal is `invalid_input`, names the send by a short client_id at most, and
    /// becomes an `error` frame that is valid JSON.
    fn refused_well(
        err: &Error,
        client_id: &Option<String>,
    ) -> std::result::Result<(), TestCaseError> {
        prop_assert_eq!(err.code(), "invalid_input");
        if let Some(client_id) = client_id {
            prop_assert!(client_id.chars().count() <= 64);
        }
        let text = ServerFrame::error(err, client_id.clone()).to_text();
        let frame: Value = serde_json::from_str(text.as_str()).expect("an error frame is JSON");
        prop_assert_eq!(&frame["type"], "error");
        Ok(())
    }

    proptest! {
        // No regressions file (the repository's layout is fixed): a failure prints its
        // minimal input, to be kept as a plain test.
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_text_is_parsed_or_refused_never_a_panic(text in any::<String>()) {
            if let Err((err, client_id)) = ClientFrame::parse(&text) {
                refused_well(&err, &client_id)?;
            }
        }

        #[test]
        fn any_json_is_parsed_or_refused_never_a_panic(value in json_value()) {
            if let Err((err, client_id)) = ClientFrame::parse(&value.to_string()) {
                refused_well(&err, &client_id)?;
            }
        }

        #[test]
        fn frames_with_fields_of_any_shape_are_parsed_or_refused(value in frame_like()) {
            if let Err((err, client_id)) = ClientFrame::parse(&value.to_string()) {
                refused_well(&err, &client_id)?;
            }
        }

        #[test]
        fn well_formed_frames_parse_back_to_what_was_sent(
            sent in model(),
            extra in proptest::option::of(("x_[a-z_]{0,10}", json_value())),
        ) {
            let text = wire(&sent, extra).to_string();
            let parsed = ClientFrame::parse(&text).map_err(|(e, _)| {
                TestCaseError::fail(format!("{text} was refused: {}", e.public_message()))
            })?;
            prop_assert_eq!(Model::from(parsed), sent);
        }

        #[test]
        fn a_broken_send_is_refused_naming_its_client_id(
            client_id in uuid(),
            text in json_value().prop_filter("not a string", |v| !v.is_string() && !v.is_null()),
        ) {
            let frame = json!({ "type": "send", "client_id": client_id.to_string(), "text": text });
            let refused = ClientFrame::parse(&frame.to_string());
            let Err((err, named)) = refused else {
                return Err(TestCaseError::fail(format!("{frame} was accepted")));
            };
            refused_well(&err, &named)?;
            prop_assert_eq!(named, Some(client_id.to_string()));
        }
    }
}
