//! Questions: a keyword the couple was never asked brings its question to both, and each must
//! answer before chatting on, decided by the server from the database.

use tokio::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_keyword_brings_one_question_to_both_partners_after_the_chat,
    the_gate_refuses_send_until_that_user_answers_while_the_partner_stays_gated,
    unanswered_questions_come_back_on_reconnect_oldest_first,
    both_partners_triggering_a_keyword_at_once_get_exactly_one_question,
    a_chat_never_lands_after_a_question_its_sender_owes,
    korean_keywords_match_inside_words_and_english_only_whole_words,
    the_partners_answer_stays_hidden_until_i_answer,
    answering_an_unknown_or_another_couples_question_is_not_found,
    importing_the_catalogue_twice_changes_nothing_and_running_nodes_pick_it_up,
    the_rules_read_only_open_questions_and_those_brought_up_again,
);

const TRAVEL: &str = "우리가 함께 꼭 가보고 싶은 곳은 어디야?";

/// Keywords of twenty different questions of the default catalogue.
const KEYWORDS: [&str; 20] = [
    "여행",
    "맛집",
    "요리",
    "저축",
    "가족",
    "명절",
    "이사",
    "미래",
    "친구",
    "회사",
    "기념일",
    "생일",
    "선물",
    "영화",
    "노래",
    "주말",
    "커피",
    "운동",
    "강아지",
    "결혼",
];

async fn answer(socket: &mut Socket, question_id: &Value, text: &str) {
    socket
        .send(json!({ "type": "answer", "question_id": question_id, "text": text }))
        .await;
}

async fn a_keyword_brings_one_question_to_both_partners_after_the_chat(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;

    mine.say("이번 여행은 어디로 갈까?").await;
    for socket in [&mut mine, &mut theirs] {
        let chat = socket.until("chat").await;
        assert_eq!(chat["seq"], 1);
        let question = socket.until("question").await;
        assert_eq!(question["seq"], 2);
        assert_eq!(question["text"], TRAVEL);
        assert_eq!(question["keyword"], "여행");
        assert!(question["question_id"].is_i64());
        assert!(
            question["asked_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    let (_, page) = joon.get("/api/answers").await;
    assert_eq!(page["answers"].as_array().map(Vec::len), Some(1));
}

async fn the_gate_refuses_send_until_that_user_answers_while_the_partner_stays_gated(
    backend: Backend,
) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    mine.say("여행 가자").await;
    let question = mine.until("question").await;
    let question_id = question["question_id"].clone();
    theirs.until("question").await;

    let refused = mine.outcome("can I still talk?").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "answer_required");
    assert_eq!(refused["question_id"], question_id);

    answer(&mut mine, &question_id, "제주도!").await;
    for socket in [&mut mine, &mut theirs] {
        let answered = socket.until("answered").await;
        assert_eq!(answered["question_id"], question_id);
        assert_eq!(answered["user_id"], mina.id.to_string());
        assert_eq!(answered["seq"], 3);
    }
    assert_eq!(mine.outcome("now I can").await["type"], "ack");

    let still = theirs.outcome("me too?").await;
    assert_eq!(still["code"], "answer_required");
    assert_eq!(still["question_id"], question_id);
}

async fn unanswered_questions_come_back_on_reconnect_oldest_first(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    mine.say("travel money").await;
    let first = mine.until("question").await;
    let second = mine.until("question").await;
    assert_eq!(
        (first["keyword"].as_str(), second["keyword"].as_str()),
        (Some("travel"), Some("money"))
    );
    answer(&mut mine, &first["question_id"], "Lisbon").await;
    mine.until("answered").await;

    // Joon was away: after synced he is given both, oldest first, on a fresh connect ...
    let mut theirs = joon.socket().await;
    let owed = [
        theirs.expect("question").await,
        theirs.expect("question").await,
    ];
    assert_eq!(owed[0]["question_id"], first["question_id"]);
    assert_eq!(owed[1]["question_id"], second["question_id"]);
    // ... and on a resume that had seen them already.
    let mut resumed = joon.socket_at("/ws?after=4").await;
    assert_eq!(
        resumed.expect("question").await["question_id"],
        first["question_id"]
    );
    assert_eq!(
        resumed.expect("question").await["question_id"],
        second["question_id"]
    );

    // Mina answered the first one only: she owes just the second.
    let mut again = mina.socket().await;
    assert_eq!(
        again.expect("question").await["question_id"],
        second["question_id"]
    );
    again.send(json!({ "type": "typing" })).await;
    assert_eq!(
        again.outcome("hello?").await["question_id"],
        second["question_id"]
    );
}

async fn both_partners_triggering_a_keyword_at_once_get_exactly_one_question(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let mut watcher = joon.socket().await;

    for keyword in KEYWORDS {
        let questions = both_say_at_once(&mut mine, &mut theirs, &mut watcher, keyword).await;
        assert_eq!(questions.len(), 1, "{keyword}: {questions:?}");
        assert_eq!(questions[0]["keyword"], keyword);
        let question_id = questions[0]["question_id"].clone();
        both_answer(&mut mine, &mut theirs, &mut watcher, &question_id).await;
    }
    let (_, page) = mina.get("/api/answers").await;
    assert_eq!(
        page["answers"].as_array().map(Vec::len),
        Some(KEYWORDS.len())
    );
}

/// The gate is decided in the transaction that commits the send, after the couple's row is
/// locked: when Mina's chat asks a question at the very moment Joon sends, Joon's chat either
/// lands before the question or is refused; it never lands after a question he owes.
async fn a_chat_never_lands_after_a_question_its_sender_owes(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    let mut watcher = mina.socket().await;

    let (mut before, mut refused) = (0, 0);
    for keyword in KEYWORDS {
        let asking = format!("{keyword} 얘기 좀 하자");
        let (asked, plain) = tokio::join!(mine.outcome(&asking), theirs.outcome("응 좋아"));
        assert_eq!(asked["type"], "ack", "{keyword}: {asked}");
        let question = watcher.until("question").await;
        assert_eq!(
            question["seq"],
            asked["seq"].as_i64().unwrap() + 1,
            "{keyword}"
        );
        if plain["type"] == "ack" {
            assert!(
                plain["seq"].as_i64() < question["seq"].as_i64(),
                "{keyword}: Joon's chat (seq {}) landed after the question he owed (seq {})",
                plain["seq"],
                question["seq"]
            );
            before += 1;
        } else {
            assert_eq!(plain["code"], "answer_required", "{keyword}: {plain}");
            refused += 1;
        }
        let question_id = question["question_id"].clone();
        both_answer(&mut mine, &mut theirs, &mut watcher, &question_id).await;
    }
    assert_eq!(before + refused, KEYWORDS.len());
}

async fn korean_keywords_match_inside_words_and_english_only_whole_words(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, _joon) = couple(&node).await;
    let mut mine = mina.socket().await;

    // "party" holds "art" but is not the word "art"; a chat without a keyword asks nothing,
    // so the next frame after each chat is the next chat.
    for text in [
        "what a party",
        "departure at noon",
        "smart artisans at the depart",
    ] {
        mine.say(text).await;
        assert_eq!(mine.until("chat").await["text"], text);
    }
    mine.say("sentinel").await;
    assert_eq!(
        mine.until_any(&["chat", "question"]).await["text"],
        "sentinel"
    );

    mine.say("Art, maybe?").await;
    mine.until("chat").await;
    let question = mine.until_any(&["chat", "question"]).await;
    assert_eq!(question["type"], "question");
    assert_eq!(question["keyword"], "art");
    answer(&mut mine, &question["question_id"], "the Louvre").await;
    mine.until("answered").await;

    mine.say("해외여행을 가고 싶어").await;
    mine.until("chat").await;
    let question = mine.until_any(&["chat", "question"]).await;
    assert_eq!(question["keyword"], "여행");
    assert_eq!(question["text"], TRAVEL);
}

async fn the_partners_answer_stays_hidden_until_i_answer(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let mut mine = mina.socket().await;
    let mut theirs = joon.socket().await;
    mine.say("여행").await;
    let question_id = mine.until("question").await["question_id"].clone();
    answer(&mut mine, &question_id, "제주도").await;
    theirs.until("answered").await;

    let (status, page) = joon.get("/api/answers").await;
    assert_eq!(status, StatusCode::OK);
    let row = &page["answers"][0];
    assert_eq!(row["question_id"], question_id);
    assert_eq!(row["question"], TRAVEL);
    assert_eq!(row["keyword"], "여행");
    assert_eq!(row["mine"], Value::Null);
    assert_eq!(
        row["partner"],
        Value::Null,
        "Mina's answer must stay hidden from Joon"
    );

    let (_, page) = mina.get("/api/answers").await;
    assert_eq!(page["answers"][0]["mine"]["text"], "제주도");
    assert_eq!(page["answers"][0]["partner"], Value::Null);

    answer(&mut theirs, &question_id, "파리").await;
    theirs.until("answered").await;
    let (_, page) = joon.get("/api/answers").await;
    assert_eq!(page["answers"][0]["mine"]["text"], "파리");
    assert_eq!(page["answers"][0]["partner"]["text"], "제주도");
    assert!(page["answers"][0]["partner"]["answered_at"].is_string());
    let (_, page) = mina.get("/api/answers").await;
    assert_eq!(page["answers"][0]["partner"]["text"], "파리");
}

async fn answering_an_unknown_or_another_couples_question_is_not_found(backend: Backend) {
    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let other = User::signup(&node, "sora").await;
    let friend = User::signup(&node, "hyun").await;
    pair(&other, &friend).await;

    let mut theirs = other.socket().await;
    theirs.say("여행").await;
    let question_id = theirs.until("question").await["question_id"].clone();

    let mut mine = mina.socket().await;
    answer(&mut mine, &question_id, "not ours").await;
    assert_eq!(mine.until("error").await["code"], "not_found");
    answer(&mut mine, &json!(999_999), "nothing").await;
    assert_eq!(mine.until("error").await["code"], "not_found");
    answer(&mut mine, &json!("seven"), "bad id").await;
    assert_eq!(mine.until("error").await["code"], "invalid_input");
    // None of that gated or unblocked anyone.
    assert_eq!(mine.outcome("still free").await["type"], "ack");
    let (_, page) = joon.get("/api/answers").await;
    assert_eq!(page["answers"], json!([]));
}

async fn importing_the_catalogue_twice_changes_nothing_and_running_nodes_pick_it_up(
    backend: Backend,
) {
    let node = spawn_node_with(backend, &["--catalogue-refresh-secs=1"]).await;
    let (mina, _joon) = couple(&node).await;
    let mut mine = mina.socket().await;

    let file = node.db.data_dir().join("extra.toml");
    std::fs::write(
        &file,
        "[[question]]\nkey = \"zoo-day\"\ntext = \"Which animal are we?\"\nkeywords = [\"Zebra\", \"얼룩말\"]\n\n\
         [[question]]\nkey = \"en-art\"\ntext = \"Which painting would you hang at home?\"\nkeywords = [\"art\", \"painting\"]\n",
    )
    .expect("writing the catalogue file");
    // The CLI runs as a child process without blocking the runtime the node serves on.
    let import = async || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_duet"));
        without_node_env(&mut command);
        let output = command
            .args(db_args(&node))
            .args(["questions", "import"])
            .arg(&file)
            .output()
            .await
            .expect("running duet questions import");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(
        import()
            .await
            .starts_with("1 added, 1 updated, 0 unchanged")
    );
    assert!(
        import()
            .await
            .starts_with("0 added, 0 updated, 2 unchanged")
    );

    let mut command = Command::new(env!("CARGO_BIN_EXE_duet"));
    without_node_env(&mut command);
    let list = command
        .args(db_args(&node))
        .args(["questions", "list"])
        .output()
        .await
        .expect("running duet questions list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.lines().filter(|l| l.contains("zoo-day")).count(), 1);
    assert!(list.contains("Which painting would you hang at home?"));
    assert!(list.contains("[zebra, 얼룩말]"));

    // The node picks the new keyword up without a restart.
    let mut question = Value::Null;
    for attempt in 0..20 {
        mine.say(&format!("a zebra, take {attempt}")).await;
        mine.until("chat").await;
        mine.say("sentinel").await;
        let next = mine.until_any(&["chat", "question"]).await;
        if next["type"] == "question" {
            question = next;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(question["text"], "Which animal are we?");
    assert_eq!(question["keyword"], "zebra");
}

fn db_args(node: &TestNode) -> Vec<String> {
    vec![
        format!("--database-url={}", node.db.url),
        format!("--data-dir={}", node.db.data_dir().display()),
    ]
}

/// A send's rules need the questions still open (they gate) and, of those its keywords bring
/// up, whether they were asked before; a long story's answered questions are neither, so they
/// are not read under the couple's lock.
async fn the_rules_read_only_open_questions_and_those_brought_up_again(backend: Backend) {
    use entity::{answers, couple_questions};
    use sea_orm::{ActiveModelTrait, Set, TransactionTrait};

    let node = spawn_node(backend).await;
    let (mina, joon) = couple(&node).await;
    let couple_id = mina.couple_id().await;
    let db = sea_orm::Database::connect(&node.db.url)
        .await
        .expect("the test database");
    let catalogue = duet::store::questions::list(&db)
        .await
        .expect("the catalogue");
    let ids: Vec<i64> = catalogue.iter().take(4).map(|(q, _)| q.id).collect();
    // Asked in this order; answered by both, by mina only, by nobody, by both.
    let answered_by = [
        vec![mina.id, joon.id],
        vec![mina.id],
        vec![],
        vec![mina.id, joon.id],
    ];
    for (i, (id, by)) in ids.iter().zip(&answered_by).enumerate() {
        let seq = 10 * (i as i64 + 1);
        couple_questions::ActiveModel {
            couple_id: Set(couple_id),
            question_id: Set(*id),
            keyword: Set("kw".into()),
            seq: Set(seq),
            asked_at: Set(chrono::Utc::now()),
        }
        .insert(&db)
        .await
        .expect("a question asked");
        for user in by {
            answers::ActiveModel {
                couple_id: Set(couple_id),
                question_id: Set(*id),
                user_id: Set(*user),
                text: Set("an answer".into()),
                seq: Set(seq + 1),
                answered_at: Set(chrono::Utc::now()),
            }
            .insert(&db)
            .await
            .expect("an answer");
        }
    }

    let txn = db.begin().await.expect("a transaction");
    // A send whose keyword brings up the last one (answered) again.
    let wanted = duet::store::sends::Wanted {
        question_ids: vec![ids[3]],
        ..Default::default()
    };
    let loaded = duet::store::sends::load(&txn, &[couple_id], &[], wanted)
        .await
        .expect("the rules' reads");
    let read: Vec<(i64, usize)> = loaded
        .asked
        .iter()
        .map(|a| (a.question_id, a.answered_by.len()))
        .collect();
    assert_eq!(
        read,
        vec![(ids[1], 1), (ids[2], 0), (ids[3], 2)],
        "the open ones and the one brought up again, nothing answered by both besides"
    );
}
