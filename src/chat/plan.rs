//! The rules of a send, applied to a whole batch at once, with no I/O: given where each
//! couple stands (read under its row lock) and the sends in the order they arrived, decide
//! what each send becomes and what must be written. Sends of one couple are taken one after
//! another, so a chat that brings up a question gates a later send of the same batch exactly
//! as if the two had been committed apart.
//!
//! For each send, in order: a `(sender, client_id)` seen before is a retry and gets the first
//! chat's ack; a sender who owes an answer is refused (`answer_required`); a file that is not
//! the sender's own unsent upload is `not_found`; otherwise the chat takes the couple's next
//! seq and every question its keywords bring up that the couple was never asked takes the
//! seqs after it. One send's refusal never touches the others.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{chats, couple_questions, events, files};
use uuid::Uuid;

use crate::error::Error;
use crate::store::events::EventKind;
use crate::store::questions::{Asked, Trigger};
use crate::store::sends::{Couple, Loaded, Writes};

/// A send as the rules see it.
pub struct Send<'a> {
    pub couple_id: Uuid,
    pub sender_id: Uuid,
    pub client_id: Uuid,
    pub text: &'a str,
    pub file_id: Option<Uuid>,
    pub triggers: &'a [Trigger],
}

/// What a send became.
// Short-lived, one per send of a batch: boxing the big variant would cost an allocation per chat.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Decision {
    /// Persisted with this seq, carrying this file, asking these questions.
    Sent {
        chat: chats::Model,
        file: Option<files::Model>,
        asked: Vec<Asked>,
    },
    /// A retry of a chat persisted before: its ack again, nothing new.
    Again {
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
    let mut earlier: HashMap<(Uuid, Uuid), (Uuid, i64)> = loaded
        .earlier
        .iter()
        .map(|c| ((c.sender_id, c.client_id), (c.id, c.seq)))
        .collect();
    let mut files: HashMap<Uuid, files::Model> =
        loaded.files.into_iter().map(|f| (f.id, f)).collect();

    let mut writes = Writes::default();
    let decisions = sends
        .iter()
        .map(|send| {
            let Some(couple) = services.get_mut(&send.couple_id) else {
                // The couple is gone (its break-up fell due); its sockets are closing.
                return Decision::Refused(Error::NotPaired);
            };
            if let Some(&(id, seq)) = earlier.get(&(send.sender_id, send.client_id)) {
                return Decision::Again { id, seq };
            }
            if let Some(question_id) = couple.owed_by(send.sender_id) {
                return Decision::Refused(Error::AnswerRequired(question_id));
            }
            let file = match send.file_id {
                None => None,
                Some(file_id) => match files.remove(&file_id) {
                    Some(file) if sendable(&file, send) => Some(file),
                    // Not mine, sent already, swept, or no such file: as if it did not exist.
                    _ => return Decision::Refused(Error::NotFound),
                },
            };
            couple.last_seq += 1;
            let chat = chats::Model {
                id: Uuid::now_v7(),
                couple_id: send.couple_id,
                seq: couple.last_seq,
                sender_id: send.sender_id,
                client_id: send.client_id,
                text: send.text.to_owned(),
                sent_at: now,
                deleted_at: None,
            };
            earlier.insert((send.sender_id, send.client_id), (chat.id, chat.seq));
            // A chat is its own entry in the couple's log (its seq); `events` holds the rest.
            writes.chats.push(chat.clone());
            let file = file.map(|mut file| {
                writes.attach.push((file.id, chat.id));
                file.chat_id = Some(chat.id);
                file
            });
            let mut asked = Vec::new();
            for trigger in send.triggers {
                let Some(text) = loaded.questions.get(&trigger.question_id) else {
                    continue;
                };
                if !couple.asked.insert(trigger.question_id) {
                    continue;
                }
                couple.last_seq += 1;
                couple.opened += 1;
                couple.open.push((trigger.question_id, Vec::new()));
                writes.asked.push(couple_questions::Model {
                    couple_id: send.couple_id,
                    question_id: trigger.question_id,
                    keyword: trigger.keyword.clone(),
                    seq: couple.last_seq,
                    asked_at: now,
                });
                writes.events.push(question_event(
                    send.couple_id,
                    couple.last_seq,
                    trigger.question_id,
                    now,
                ));
                asked.push(Asked {
                    seq: couple.last_seq,
                    question_id: trigger.question_id,
                    text: text.clone(),
                    keyword: trigger.keyword.clone(),
                    asked_at: now,
                });
            }
            Decision::Sent { chat, file, asked }
        })
        .collect();
    for (id, couple) in services {
        if couple.last_seq != couple.locked_seq {
            writes.couples.push((id, couple.last_seq, couple.opened));
        }
    }
    (decisions, writes)
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

    fn send<'a>(sender: Uuid, client: u128, text: &'a str, triggers: &'a [Trigger]) -> Send<'a> {
        Send {
            couple_id: COUPLE,
            sender_id: sender,
            client_id: Uuid::from_u128(client),
            text,
            file_id: None,
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
        let (decisions, writes) = plan(&[couple(4)], Loaded::default(), &sends, Utc::now());
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
        let (decisions, writes) = plan(&[couple(0)], loaded_with_question(), &sends, Utc::now());
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
        let (decisions, writes) = plan(&[couple(0)], loaded_with_question(), &sends, Utc::now());
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
        let (decisions, writes) = plan(&[couple(3)], loaded, &sends, Utc::now());
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
        };
        loaded.earlier.push(first);
        let sends = [
            send(MINA, 1, "a", &[]),
            send(JOON, 5, "b", &[]),
            send(JOON, 5, "b", &[]),
        ];
        let (decisions, writes) = plan(&[couple(3)], loaded, &sends, Utc::now());
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
        };
        let loaded = Loaded {
            files: vec![upload],
            ..Loaded::default()
        };
        let mut stolen = send(MINA, 1, "", &[]);
        stolen.file_id = Some(Uuid::from_u128(50));
        let sends = [stolen, send(MINA, 2, "fine", &[])];
        let (decisions, writes) = plan(&[couple(0)], loaded, &sends, Utc::now());
        assert!(matches!(decisions[0], Decision::Refused(Error::NotFound)));
        assert_eq!(seqs(&decisions)[1], Some(1));
        assert!(writes.attach.is_empty());
    }

    #[test]
    fn a_send_to_a_couple_that_is_gone_is_refused() {
        let sends = [send(MINA, 1, "a", &[])];
        let (decisions, writes) = plan(&[], Loaded::default(), &sends, Utc::now());
        assert!(matches!(decisions[0], Decision::Refused(Error::NotPaired)));
        assert!(writes.chats.is_empty());
    }
}
