//! Our words: the couple's most used words with each partner's count, and the words the
//! couple leaves out (shared by both, live on either's screen).
//!
//! A word is a run of letters and digits, lowercased; Korean words lose their particles
//! (`korean`); numbers, one-character words and a short list of English function words are
//! not counted. Counting is incremental (`store::words`): each look counts only the chats
//! since the last one, in batches of at most `words_batch` chats and `words_batch_bytes` of
//! text, so a couple with a million chats pays once, and the send path pays nothing.

pub mod korean;

use std::time::{Duration, Instant};

use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::services::Services;
use crate::store;

/// Longest word counted, in characters: longer runs are not words people reuse.
pub const MAX_WORD_CHARS: usize = 30;
/// How long one look may spend catching up before answering with what is counted so far.
const CATCH_UP_BUDGET: Duration = Duration::from_secs(2);

/// Sorted: looked up by binary search, a few times per word of every chat counted.
const ENGLISH_FUNCTION_WORDS: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can",
    "did", "do", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
    "is", "it", "its", "just", "me", "my", "not", "of", "on", "or", "our", "she", "so", "than",
    "that", "the", "them", "then", "there", "they", "this", "to", "up", "us", "was", "we", "were",
    "what", "when", "where", "while", "who", "will", "with", "would", "you", "your",
];

/// The words of a text, in order, as they are counted.
pub fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter_map(normalize)
        .collect()
}

/// One written word as it is counted and left out: lowercased, without its Korean
/// particle; `None` for what is not counted.
pub fn normalize(written: &str) -> Option<String> {
    let lower = written.to_lowercase();
    let word = korean::strip_particle(&lower);
    let chars = word.chars().count();
    let counted = (2..=MAX_WORD_CHARS).contains(&chars)
        && !word.chars().all(|c| c.is_numeric())
        && ENGLISH_FUNCTION_WORDS.binary_search(&word).is_err();
    counted.then(|| word.to_owned())
}

/// One of our words as I see it.
pub struct OurWord {
    pub word: String,
    pub count: i64,
    pub mine: i64,
    pub partner: i64,
}

/// "Our words": the couple's most used words, each with who said it how often.
pub struct OurWords {
    pub words: Vec<OurWord>,
    pub excluded: Vec<String>,
    /// Whether every chat is counted (a long history may take a few looks).
    pub complete: bool,
}

/// The couple's `limit` most used words, after counting what was said since the last look.
/// The caller holds the member's heavy-read turn (`crate::heavy`).
pub async fn ours(services: &Services, me: &Member, limit: u64) -> Result<OurWords> {
    let started = Instant::now();
    let mut complete = false;
    while !complete && started.elapsed() < CATCH_UP_BUDGET {
        complete = count_more(services, me.couple_id).await?;
    }
    let top = store::words::top(&services.reads, me.couple_id, limit).await?;
    let words = top
        .into_iter()
        .map(|counted| {
            let of = |user: Uuid| {
                counted
                    .by_user
                    .iter()
                    .filter(|(u, _)| *u == user)
                    .map(|(_, n)| n)
                    .sum()
            };
            OurWord {
                mine: of(me.user_id),
                partner: of(me.partner_id),
                count: counted.total,
                word: counted.word,
            }
        })
        .collect();
    let excluded = store::words::excluded(&services.db, me.couple_id).await?;
    Ok(OurWords {
        words,
        excluded,
        complete,
    })
}

/// Counts one batch of chats past the couple's mark: read on the read pool, counted on a
/// blocking thread (splitting 20,000 chats into words takes long enough to stall an async
/// worker), then recorded in one short transaction. Returns whether the counts caught up.
async fn count_more(services: &Services, couple_id: Uuid) -> Result<bool> {
    let config = &services.config;
    let Some(batch) = store::words::next_batch(
        &services.reads,
        couple_id,
        config.words_batch.max(1),
        config.words_batch_bytes.max(1),
    )
    .await?
    else {
        return Ok(true);
    };
    let (batch, counts) = tokio::task::spawn_blocking(move || {
        let counts = store::words::tally(&batch.chats, words_of);
        (batch, counts)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    let recorded = store::words::record(&services.db, couple_id, &batch, counts, words_of).await?;
    // When another look recorded first, this one reads again from where that one stopped.
    Ok(recorded && batch.last)
}

/// The word as it is stored: what a chat with it would be counted as.
fn stored_form(word: &str) -> Result<String> {
    let mut written = word
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty());
    match (written.next(), written.next()) {
        (Some(one), None) => normalize(one)
            .ok_or_else(|| Error::InvalidInput("this is not a word that is counted".into())),
        _ => Err(Error::InvalidInput("give one word".into())),
    }
}

/// Leaves a word out of our words, for both of us; returns the words left out.
pub async fn exclude(services: &Services, me: &Member, word: &str) -> Result<Vec<String>> {
    let word = stored_form(word)?;
    let max = services.config.max_excluded_words;
    // Counted and added under the couple's lock: two at once cannot both pass the count.
    let txn = services.db.begin().await?;
    if !store::couples::lock(&txn, me.couple_id).await? {
        return Err(Error::NotPaired);
    }
    if store::words::excluded_count(&txn, me.couple_id).await? >= max {
        return Err(Error::InvalidInput(format!(
            "at most {max} words can be left out"
        )));
    }
    store::words::exclude(&txn, me.couple_id, &word).await?;
    txn.commit().await?;
    changed(services, me).await
}

/// Takes a word back into our words; returns the words left out.
pub async fn include(services: &Services, me: &Member, word: &str) -> Result<Vec<String>> {
    let word = stored_form(word)?;
    if !store::words::include(&services.db, me.couple_id, &word).await? {
        return Err(Error::NotFound);
    }
    changed(services, me).await
}

async fn changed(services: &Services, me: &Member) -> Result<Vec<String>> {
    let words = store::words::excluded(&services.db, me.couple_id).await?;
    tracing::debug!(couple_id = %me.couple_id, user_id = %me.user_id, excluded = words.len(), "excluded words changed");
    let frame = ServerFrame::ExcludedWords {
        words: words.clone(),
    };
    publish::to_both(&services.bus, me.couple_id, &frame);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::words_of;

    #[test]
    fn words_are_lowercased_and_lose_their_particles() {
        assert_eq!(
            words_of("여행을 가자! Travel, TRAVEL 여행이 좋아"),
            ["여행", "가자", "travel", "travel", "여행", "좋아"]
        );
    }

    #[test]
    fn the_function_words_are_sorted_for_their_binary_search() {
        assert!(super::ENGLISH_FUNCTION_WORDS.is_sorted());
    }

    #[test]
    fn numbers_single_letters_and_function_words_are_not_counted() {
        assert_eq!(words_of("I saw 2 of the 100 cats x"), ["saw", "cats"]);
    }
}
