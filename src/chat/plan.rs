//! The rules of a send, applied to a whole batch at once, with no I/O: given where each
//! couple stands (read under its row lock) and the sends in the order they arrived, decide
//! what each send becomes and what must be written. Sends of one couple are taken one after
//! another, so a chat (or an edit) that brings up a question gates a later send of the same
//! batch exactly as if the two had been committed apart.
//!
//! A send is a chat, a reaction or an edit (`Gesture`). For each, in order:
//! - a chat: a `(sender, client_id)` seen before is a retry and gets the first chat's ack; a
//!   sender who owes an answer is refused (`answer_required`); a file that is not the
//!   sender's own unsent upload, or a `reply_to` that is not a live chat of the couple, is
//!   `not_found`; otherwise the chat takes the couple's next seq and every question its
//!   keywords bring up that the couple was never asked takes the seqs after it.
//! - a reaction: to a live chat of the couple (else `not_found`), not gated (it says
//!   nothing new); the same reaction again changes nothing and is acked with the seq that
//!   set it.
//! - an edit: of one's own live text chat (`not_found`, `forbidden`), gated like a chat,
//!   within the window and the count (`forbidden`); the same text again changes nothing;
//!   otherwise it takes the next seq and asks what its keywords bring up, like a chat.
//!
//! One send's refusal never touches the others.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{chats, couple_questions, events, files, reactions};
use uuid::Uuid;

use super::Gesture;
use crate::error::Error;
use crate::store::events::EventKind;
use crate::store::questions::{Asked, Trigger};
use crate::store::sends::{Couple, Edit, Loaded, ReactionWrite, Writes};
use crate::view::QuoteView;

/// A send as the rules see it.
pub struct Send<'a> {
    pub couple_id: Uuid,
    pub sender_id: Uuid,
    pub client_id: Uuid,
    pub gesture: &'a Gesture,
    pub triggers: &'a [Trigger],
}

/// How far edits go.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long after sending a chat can be edited.
    pub edit_window: chrono::Duration,
    /// How many times one chat can be edited.
    pub max_edits: i32,
}

/// What a send became.
// Short-lived, one per send of a batch: boxing the big variant would cost an allocation per chat.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Persisted with this seq, carrying this file, quoting this chat, asking these questions.
    Sent {
        chat: chats::Model,
        file: Option<files::Model>,
        quoted: Option<QuoteView>,
        asked: Vec<Asked>,
    },
    /// A reaction put on (`emoji`) or taken away (`None`) at this seq.
    Reacted {
        chat_id: Uuid,
        seq: i64,
        emoji: Option<String>,
    },
    /// The chat's new text at this seq and instant, and the questions it asks.
    Edited {
        chat_id: Uuid,
        text: String,
        seq: i64,
        at: DateTime<Utc>,
        asked: Vec<Asked>,
    },
    /// A retry of a chat persisted before: its ack again, nothing new.
    Again {
        id: Uuid,
        seq: i64,
    },
    /// A reaction or an edit that changes nothing (the same again): acked with the seq that
    /// made it so, nothing new.
    Unchanged {
        id: Uuid,
        seq: i64,
    },
    Refused(Error),
}

/// Decides every send of a batch. `couples` are the locked rows; `now` stamps the chats.
pub fn plan(
    couples: &[Couple],
    loaded: Loaded,
    sends: &[Send<'_>],
    limits: Limits,
    now: DateTime<Utc>,
) -> (Vec<Decision>, Writes) {
    let mut services: HashMap<Uuid, CoupleNow> =
        couples.iter().map(|c| (c.id, CoupleNow::new(c))).collect();
    for asked in &loaded.asked {
        if let Some(couple) = services.get_mut(&asked.couple_id) {
            couple.asked.insert(asked.question_id);
            couple
                .open
                .push((asked.question_id, asked.answered_by.clone()));
        }
    }
    let mut batch = Batch {
        earlier: loaded
            .earlier
            .iter()
            .map(|c| ((c.sender_id, c.client_id), (c.id, c.seq)))
            .collect(),
        files: loaded.files.into_iter().map(|f| (f.id, f)).collect(),
        targets: loaded.targets.into_iter().map(|c| (c.id, c)).collect(),
        reactions: loaded
            .reactions
            .into_iter()
            .map(|r| ((r.chat_id, r.user_id), r))
            .collect(),
        questions: loaded.questions,
        limits,
        now,
        writes: Writes::default(),
    };
    let decisions = sends
        .iter()
        .map(|send| {
            let Some(couple) = services.get_mut(&send.couple_id) else {
                // The couple is gone (its break-up fell due); its sockets are closing.
                return Decision::Refused(Error::NotPaired);
            };
            let decided = match send.gesture {
                Gesture::Chat {
                    text,
                    file_id,
                    reply_to,
                } => batch.chat(couple, send, text, *file_id, *reply_to),
                Gesture::React { chat_id, emoji } => batch.react(couple, send, *chat_id, emoji),
                Gesture::Edit { chat_id, text } => batch.edit(couple, send, *chat_id, text),
            };
            decided.unwrap_or_else(Decision::Refused)
        })
        .collect();
    let mut writes = batch.writes;
    for (id, couple) in services {
        if couple.last_seq != couple.locked_seq {
            writes.couples.push((id, couple.last_seq, couple.opened));
        }
    }
    (decisions, writes)
}

/// What the batch knows and has decided so far.
struct Batch {
    /// (sender, client_id) -> (chat, seq) of chats sent before or earlier in the batch.
    earlier: HashMap<(Uuid, Uuid), (Uuid, i64)>,
    files: HashMap<Uuid, files::Model>,
    /// The chats replied to, reacted to and edited, as this batch has left them.
    targets: HashMap<Uuid, chats::Model>,
    /// (chat, user) -> their reaction now.
    reactions: HashMap<(Uuid, Uuid), reactions::Model>,
    questions: HashMap<i64, String>,
    limits: Limits,
    now: DateTime<Utc>,
    writes: Writes,
}

impl Batch {
    /// A live chat of the send's couple.
    fn target(&self, send: &Send<'_>, chat_id: Uuid) -> Result<&chats::Model, Error> {
        self.targets
            .get(&chat_id)
            .filter(|c| c.couple_id == send.couple_id && c.deleted_at.is_none())
            .ok_or(Error::NotFound)
    }

    fn chat(
        &mut self,
        couple: &mut CoupleNow,
        send: &Send<'_>,
        text: &str,
        file_id: Option<Uuid>,
        reply_to: Option<Uuid>,
    ) -> Result<Decision, Error> {
        if let Some(&(id, seq)) = self.earlier.get(&(send.sender_id, send.client_id)) {
            return Ok(Decision::Again { id, seq });
        }
        if let Some(question_id) = couple.owed_by(send.sender_id) {
            return Err(Error::AnswerRequired(question_id));
        }
        let quoted = match reply_to {
            None => None,
            Some(chat_id) => Some(QuoteView::from(self.target(send, chat_id)?)),
        };
        let file = match file_id {
            None => None,
            Some(file_id) => match self.files.remove(&file_id) {
                Some(file) if sendable(&file, send) => Some(file),
                // Not mine, sent already, swept, or no such file: as if it did not exist.
                _ => return Err(Error::NotFound),
            },
        };
        couple.last_seq += 1;
        let chat = chats::Model {
            id: Uuid::now_v7(),
            couple_id: send.couple_id,
            seq: couple.last_seq,
            sender_id: send.sender_id,
            client_id: send.client_id,
            text: text.to_owned(),
            sent_at: self.now,
            deleted_at: None,
            reply_to,
            edits: 0,
            edited_seq: None,
            first_text: None,
        };
        self.earlier
            .insert((send.sender_id, send.client_id), (chat.id, chat.seq));
        // A chat is its own entry in the couple's log (its seq); `events` holds the rest.
        self.writes.chats.push(chat.clone());
        let file = file.map(|mut file| {
            self.writes.attach.push((file.id, chat.id));
            file.chat_id = Some(chat.id);
            file
        });
        let asked = self.ask(couple, send);
        Ok(Decision::Sent {
            chat,
            file,
            quoted,
            asked,
        })
    }

    fn react(
        &mut self,
        couple: &mut CoupleNow,
        send: &Send<'_>,
        chat_id: Uuid,
        emoji: &Option<String>,
    ) -> Result<Decision, Error> {
        let chat_seq = self.target(send, chat_id)?.seq;
        let key = (chat_id, send.sender_id);
        let now = self.reactions.get(&key);
        if now.map(|r| &r.emoji) == emoji.as_ref() {
            return Ok(Decision::Unchanged {
                id: chat_id,
                seq: now.map_or(chat_seq, |r| r.seq),
            });
        }
        couple.last_seq += 1;
        let seq = couple.last_seq;
        self.writes.events.push(gesture_event(
            send,
            seq,
            EventKind::Reacted,
            chat_id,
            emoji.clone(),
            self.now,
        ));
        let reaction = emoji.as_ref().map(|emoji| reactions::Model {
            chat_id,
            user_id: send.sender_id,
            couple_id: send.couple_id,
            emoji: emoji.clone(),
            seq,
            reacted_at: self.now,
        });
        self.writes.reactions.push(ReactionWrite {
            chat_id,
            user_id: send.sender_id,
            set: reaction.clone(),
        });
        match reaction {
            Some(reaction) => self.reactions.insert(key, reaction),
            None => self.reactions.remove(&key),
        };
        Ok(Decision::Reacted {
            chat_id,
            seq,
            emoji: emoji.clone(),
        })
    }

    fn edit(
        &mut self,
        couple: &mut CoupleNow,
        send: &Send<'_>,
        chat_id: Uuid,
        text: &str,
    ) -> Result<Decision, Error> {
        let (limits, now) = (self.limits, self.now);
        let chat = self.target(send, chat_id)?;
        if chat.sender_id != send.sender_id {
            return Err(Error::Forbidden("only the sender may edit a chat"));
        }
        if chat.text.is_empty() {
            return Err(Error::InvalidInput(
                "only a chat with text can be edited".into(),
            ));
        }
        // The same text again (a retry whose ack was lost) is answered like the first, even
        // when the edit's question gates the editor by now.
        if chat.text == text {
            return Ok(Decision::Unchanged {
                id: chat_id,
                seq: chat.edited_seq.unwrap_or(chat.seq),
            });
        }
        if let Some(question_id) = couple.owed_by(send.sender_id) {
            return Err(Error::AnswerRequired(question_id));
        }
        if now - chat.sent_at > limits.edit_window {
            return Err(Error::Forbidden("the time to edit this chat is over"));
        }
        if chat.edits >= limits.max_edits {
            return Err(Error::Forbidden("this chat cannot be edited again"));
        }
        couple.last_seq += 1;
        let seq = couple.last_seq;
        let before = chat.text.clone();
        let edited = chats::Model {
            text: text.to_owned(),
            edits: chat.edits + 1,
            edited_seq: Some(seq),
            first_text: chat.first_text.clone().or_else(|| Some(before.clone())),
            ..chat.clone()
        };
        self.writes.events.push(gesture_event(
            send,
            seq,
            EventKind::Edited,
            chat_id,
            Some(text.to_owned()),
            now,
        ));
        self.writes.edits.push(Edit {
            chat: edited.clone(),
            before,
        });
        self.targets.insert(chat_id, edited);
        let asked = self.ask(couple, send);
        Ok(Decision::Edited {
            chat_id,
            text: text.to_owned(),
            seq,
            at: now,
            asked,
        })
    }

    /// Asks the questions the send's keywords bring up that the couple was never asked,
    /// each at the next seq.
    fn ask(&mut self, couple: &mut CoupleNow, send: &Send<'_>) -> Vec<Asked> {
        let mut asked = Vec::new();
        for trigger in send.triggers {
            let Some(text) = self.questions.get(&trigger.question_id) else {
                continue;
            };
            if !couple.asked.insert(trigger.question_id) {
                continue;
            }
            couple.last_seq += 1;
            couple.opened += 1;
            couple.open.push((trigger.question_id, Vec::new()));
            self.writes.asked.push(couple_questions::Model {
                couple_id: send.couple_id,
                question_id: trigger.question_id,
                keyword: trigger.keyword.clone(),
                seq: couple.last_seq,
                asked_at: self.now,
            });
            self.writes.events.push(question_event(
                send.couple_id,
                couple.last_seq,
                trigger.question_id,
                self.now,
            ));
            asked.push(Asked {
                seq: couple.last_seq,
                question_id: trigger.question_id,
                text: text.clone(),
                keyword: trigger.keyword.clone(),
                asked_at: self.now,
            });
        }
        asked
    }
}

/// A couple while its sends are being decided.
struct CoupleNow {
    locked_seq: i64,
    last_seq: i64,
    asked: HashSet<i64>,
    /// Every question asked, oldest first, with who answered it.
    open: Vec<(i64, Vec<Uuid>)>,
    /// Questions asked by this batch.
    opened: i32,
}

impl CoupleNow {
    fn new(couple: &Couple) -> Self {
        CoupleNow {
            locked_seq: couple.last_seq,
            last_seq: couple.last_seq,
            asked: HashSet::new(),
            open: Vec::new(),
            opened: 0,
        }
    }

    /// The oldest question this member has not answered.
    fn owed_by(&self, user_id: Uuid) -> Option<i64> {
        self.open
            .iter()
            .find(|(_, answered_by)| !answered_by.contains(&user_id))
            .map(|(question_id, _)| *question_id)
    }
}

fn sendable(file: &files::Model, send: &Send<'_>) -> bool {
    file.owner_id == send.sender_id
        && file.couple_id == send.couple_id
        && file.chat_id.is_none()
        && file.deleted_at.is_none()
}

/// The log entry of a reaction or an edit: who did it to which chat, and what it set.
fn gesture_event(
    send: &Send<'_>,
    seq: i64,
    kind: EventKind,
    chat_id: Uuid,
    text: Option<String>,
    now: DateTime<Utc>,
) -> events::Model {
    events::Model {
        couple_id: send.couple_id,
        seq,
        kind: kind.as_str().to_owned(),
        chat_id: Some(chat_id),
        question_id: None,
        user_id: Some(send.sender_id),
        created_at: now,
        text,
    }
}

fn question_event(
    couple_id: Uuid,
    seq: i64,
    question_id: i64,
    now: DateTime<Utc>,
) -> events::Model {
    events::Model {
        couple_id,
        seq,
        kind: EventKind::Question.as_str().to_owned(),
        chat_id: None,
        question_id: Some(question_id),
        user_id: None,
        created_at: now,
        text: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::sends::AskedBefore;

    const MINA: Uuid = Uuid::from_u128(1);
    const JOON: Uuid = Uuid::from_u128(2);
    const COUPLE: Uuid = Uuid::from_u128(10);

    fn couple(last_seq: i64) -> Couple {
        Couple {
            id: COUPLE,
            since: Utc::now(),
            last_seq,
            delete_at: None,
            open_questions: 0,
            started_on: None,
            time_zone: None,
        }
    }

    const LIMITS: Limits = Limits {
        edit_window: chrono::Duration::hours(24),
        max_edits: 10,
    };

    fn send<'a>(sender: Uuid, client: u128, text: &str, triggers: &'a [Trigger]) -> Send<'a> {
        let chat = Gesture::Chat {
            text: text.to_owned(),
            file_id: None,
            reply_to: None,
        };
        gesture(sender, client, chat, triggers)
    }

    fn gesture<'a>(sender: Uuid, client: u128, what: Gesture, triggers: &'a [Trigger]) -> Send<'a> {
        Send {
            couple_id: COUPLE,
            sender_id: sender,
            client_id: Uuid::from_u128(client),
            // A test's few gestures live as long as it does.
            gesture: Box::leak(Box::new(what)),
            triggers,
        }
    }

    fn travel() -> Vec<Trigger> {
        vec![Trigger {
            question_id: 7,
            keyword: "여행".into(),
        }]
    }

    fn loaded_with_question() -> Loaded {
        Loaded {
            questions: HashMap::from([(7, "어디 가고 싶어?".to_owned())]),
            ..Loaded::default()
        }
    }

    fn seqs(decisions: &[Decision]) -> Vec<Option<i64>> {
        decisions
            .iter()
            .map(|d| match d {
                Decision::Sent { chat, .. } => Some(chat.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn chats_take_consecutive_seqs_in_arrival_order() {
        let sends = [
            send(MINA, 1, "a", &[]),
            send(JOON, 2, "b", &[]),
            send(MINA, 3, "c", &[]),
        ];
        let (decisions, writes) = plan(&[couple(4)], Loaded::default(), &sends, LIMITS, Utc::now());
        assert_eq!(seqs(&decisions), vec![Some(5), Some(6), Some(7)]);
        assert_eq!(writes.couples, vec![(COUPLE, 7, 0)]);
        assert_eq!(writes.chats.len(), 3);
        assert!(writes.events.is_empty(), "chats are their own log entries");
    }

    #[test]
    fn a_question_asked_in_the_batch_gates_both_partners_later_sends() {
        let travel = travel();
        let sends = [
            send(MINA, 1, "여행 가자", &travel),
            send(JOON, 2, "좋아", &[]),
            send(MINA, 3, "언제?", &[]),
        ];
        let (decisions, writes) = plan(
            &[couple(0)],
            loaded_with_question(),
            &sends,
            LIMITS,
            Utc::now(),
        );
        match &decisions[0] {
            Decision::Sent { chat, asked, .. } => {
                assert_eq!(chat.seq, 1);
                assert_eq!(asked.len(), 1);
                assert_eq!(asked[0].seq, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decisions[1],
            Decision::Refused(Error::AnswerRequired(7))
        ));
        assert!(matches!(
            decisions[2],
            Decision::Refused(Error::AnswerRequired(7))
        ));
        assert_eq!(writes.couples, vec![(COUPLE, 2, 1)]);
    }

    #[test]
    fn a_question_is_asked_once_even_when_two_chats_of_one_batch_bring_it_up() {
        let travel = travel();
        let sends = [
            send(MINA, 1, "여행", &travel),
            send(JOON, 2, "여행", &travel),
        ];
        let (decisions, writes) = plan(
            &[couple(0)],
            loaded_with_question(),
            &sends,
            LIMITS,
            Utc::now(),
        );
        assert_eq!(writes.asked.len(), 1);
        assert!(matches!(
            decisions[1],
            Decision::Refused(Error::AnswerRequired(7))
        ));
    }

    #[test]
    fn a_question_asked_before_is_not_asked_again_and_gates_only_who_owes_it() {
        let travel = travel();
        let mut loaded = loaded_with_question();
        loaded.asked.push(AskedBefore {
            couple_id: COUPLE,
            question_id: 7,
            answered_by: vec![MINA],
        });
        let sends = [send(MINA, 1, "또 여행", &travel), send(JOON, 2, "hi", &[])];
        let (decisions, writes) = plan(&[couple(3)], loaded, &sends, LIMITS, Utc::now());
        assert!(writes.asked.is_empty());
        assert_eq!(seqs(&decisions)[0], Some(4));
        assert!(matches!(
            decisions[1],
            Decision::Refused(Error::AnswerRequired(7))
        ));
    }

    #[test]
    fn a_retry_gets_the_first_chats_ack_in_and_across_batches() {
        let mut loaded = Loaded::default();
        let first = chats::Model {
            id: Uuid::from_u128(99),
            couple_id: COUPLE,
            seq: 3,
            sender_id: MINA,
            client_id: Uuid::from_u128(1),
            text: "a".into(),
            sent_at: Utc::now(),
            deleted_at: None,
            reply_to: None,
            edits: 0,
            edited_seq: None,
            first_text: None,
        };
        loaded.earlier.push(first);
        let sends = [
            send(MINA, 1, "a", &[]),
            send(JOON, 5, "b", &[]),
            send(JOON, 5, "b", &[]),
        ];
        let (decisions, writes) = plan(&[couple(3)], loaded, &sends, LIMITS, Utc::now());
        assert!(matches!(decisions[0], Decision::Again { seq: 3, .. }));
        let Decision::Sent { chat, .. } = &decisions[1] else {
            panic!("{:?}", decisions[1])
        };
        assert!(matches!(&decisions[2], Decision::Again { id, seq: 4 } if *id == chat.id));
        assert_eq!(writes.chats.len(), 1);
    }

    #[test]
    fn a_foreign_file_refuses_only_its_own_send() {
        let upload = files::Model {
            id: Uuid::from_u128(50),
            couple_id: COUPLE,
            owner_id: JOON,
            name: "x.png".into(),
            size: 1,
            content_type: "image/png".into(),
            width: None,
            height: None,
            blob: "b".into(),
            chat_id: None,
            created_at: Utc::now(),
            deleted_at: None,
            thumb_blob: None,
            thumb_width: None,
            thumb_height: None,
            duration_ms: None,
        };
        let loaded = Loaded {
            files: vec![upload],
            ..Loaded::default()
        };
        let with_file = Gesture::Chat {
            text: String::new(),
            file_id: Some(Uuid::from_u128(50)),
            reply_to: None,
        };
        let stolen = gesture(MINA, 1, with_file, &[]);
        let sends = [stolen, send(MINA, 2, "fine", &[])];
        let (decisions, writes) = plan(&[couple(0)], loaded, &sends, LIMITS, Utc::now());
        assert!(matches!(decisions[0], Decision::Refused(Error::NotFound)));
        assert_eq!(seqs(&decisions)[1], Some(1));
        assert!(writes.attach.is_empty());
    }

    #[test]
    fn a_send_to_a_couple_that_is_gone_is_refused() {
        let sends = [send(MINA, 1, "a", &[])];
        let (decisions, writes) = plan(&[], Loaded::default(), &sends, LIMITS, Utc::now());
        assert!(matches!(decisions[0], Decision::Refused(Error::NotPaired)));
        assert!(writes.chats.is_empty());
    }

    fn sent_chat(seq: i64, sender: Uuid, text: &str) -> chats::Model {
        chats::Model {
            id: Uuid::from_u128(500 + seq as u128),
            couple_id: COUPLE,
            seq,
            sender_id: sender,
            client_id: Uuid::from_u128(900 + seq as u128),
            text: text.into(),
            sent_at: Utc::now(),
            deleted_at: None,
            reply_to: None,
            edits: 0,
            edited_seq: None,
            first_text: None,
        }
    }

    #[test]
    fn an_edits_question_gates_a_later_send_of_the_same_batch() {
        let original = sent_chat(1, MINA, "주말에 뭐 해?");
        let loaded = Loaded {
            targets: vec![original.clone()],
            ..loaded_with_question()
        };
        let travel = travel();
        let edit = Gesture::Edit {
            chat_id: original.id,
            text: "주말에 여행 갈까?".into(),
        };
        let sends = [gesture(MINA, 1, edit, &travel), send(JOON, 2, "좋아", &[])];
        let (decisions, writes) = plan(&[couple(1)], loaded, &sends, LIMITS, Utc::now());
        match &decisions[0] {
            Decision::Edited {
                text, seq, asked, ..
            } => {
                assert_eq!((*seq, text.as_str()), (2, "주말에 여행 갈까?"));
                assert_eq!(asked[0].seq, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decisions[1],
            Decision::Refused(Error::AnswerRequired(7))
        ));
        assert_eq!(writes.edits.len(), 1);
        let edited = &writes.edits[0].chat;
        assert_eq!(
            (edited.seq, edited.edits, edited.edited_seq),
            (1, 1, Some(2))
        );
        assert_eq!(edited.first_text.as_deref(), Some("주말에 뭐 해?"));
        assert_eq!(writes.couples, vec![(COUPLE, 3, 1)]);
    }

    #[test]
    fn a_second_reaction_in_a_batch_replaces_the_first_and_the_same_again_is_nothing() {
        let chat = sent_chat(1, MINA, "hi");
        let loaded = Loaded {
            targets: vec![chat.clone()],
            ..Loaded::default()
        };
        let react = |emoji: &str| Gesture::React {
            chat_id: chat.id,
            emoji: Some(emoji.into()),
        };
        let sends = [
            gesture(JOON, 1, react("❤️"), &[]),
            gesture(JOON, 2, react("😂"), &[]),
            gesture(JOON, 3, react("😂"), &[]),
        ];
        let (decisions, writes) = plan(&[couple(1)], loaded, &sends, LIMITS, Utc::now());
        assert!(matches!(decisions[0], Decision::Reacted { seq: 2, .. }));
        assert!(matches!(decisions[1], Decision::Reacted { seq: 3, .. }));
        assert!(matches!(decisions[2], Decision::Unchanged { seq: 3, .. }));
        assert_eq!(writes.events.len(), 2);
        assert_eq!(writes.couples, vec![(COUPLE, 3, 0)]);
    }
}
