//! Finds the catalogue's keywords in a chat in one pass over its text, whatever the size of
//! the catalogue: an Aho-Corasick automaton over every keyword, built once per catalogue
//! version.
//!
//! Matching ignores case (both sides are lowercased). A keyword written in a script that does
//! not put spaces between words (Hangul, Han, Hiragana, Katakana) matches inside words, as
//! Korean particles attach to nouns ("여행" in "여행을"); any other keyword matches whole words
//! only ("art" in "art!" but not in "party").

use aho_corasick::{AhoCorasick, MatchKind};
use unicode_script::{Script, UnicodeScript};

use crate::store::questions::Trigger;

/// Finds the catalogue's keywords in a chat in one pass (Aho-Corasick): whole words, except a
/// keyword in a script without spaces between words (Hangul, Han, kana), found inside words.
pub struct Matcher {
    automaton: Option<AhoCorasick>,
    /// Per automaton pattern: the question it asks, its keyword, and whether it may match
    /// inside a word.
    patterns: Vec<Pattern>,
}

struct Pattern {
    question_id: i64,
    keyword: String,
    inside_words: bool,
}

impl Matcher {
    /// Builds the automaton over `(question_id, keyword)` pairs; keywords are lowercased.
    pub fn new(keywords: Vec<(i64, String)>) -> Self {
        let patterns: Vec<Pattern> = keywords
            .into_iter()
            .map(|(question_id, keyword)| {
                let keyword = keyword.to_lowercase();
                Pattern {
                    question_id,
                    inside_words: is_unspaced(&keyword),
                    keyword,
                }
            })
            .filter(|p| !p.keyword.is_empty())
            .collect();
        // Overlapping search needs the standard match semantics; it reports every keyword
        // occurrence, so a whole-word keyword is not hidden by a longer one that fails its
        // boundary check.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|p| p.keyword.as_str()))
            .inspect_err(|e| tracing::error!(error = %e, "building the keyword matcher"))
            .ok();
        Matcher {
            automaton,
            patterns,
        }
    }

    pub fn empty() -> Self {
        Matcher::new(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// The questions `text` brings up, in the order their keywords first appear, each once.
    pub fn find(&self, text: &str) -> Vec<Trigger> {
        let Some(automaton) = &self.automaton else {
            return Vec::new();
        };
        let text = text.to_lowercase();
        let mut hits: Vec<(usize, usize, usize)> = automaton
            .find_overlapping_iter(&text)
            .filter(|m| {
                let pattern = &self.patterns[m.pattern().as_usize()];
                pattern.inside_words || is_whole_word(&text, m.start(), m.end())
            })
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect();
        // Overlapping matches come by end position; the contract orders by appearance.
        hits.sort_unstable();
        let mut found: Vec<Trigger> = Vec::new();
        for (_, _, index) in hits {
            let pattern = &self.patterns[index];
            if !found.iter().any(|t| t.question_id == pattern.question_id) {
                found.push(Trigger {
                    question_id: pattern.question_id,
                    keyword: pattern.keyword.clone(),
                });
            }
        }
        found
    }
}

/// Whether every letter of the keyword is in a script written without spaces between words.
fn is_unspaced(keyword: &str) -> bool {
    let mut letters = keyword.chars().filter(|c| c.is_alphanumeric()).peekable();
    letters.peek().is_some()
        && letters.all(|c| {
            matches!(
                c.script(),
                Script::Hangul | Script::Han | Script::Hiragana | Script::Katakana
            )
        })
}

fn is_whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pairs: &[(i64, &str)]) -> Matcher {
        Matcher::new(pairs.iter().map(|(id, k)| (*id, k.to_string())).collect())
    }

    fn ids(m: &Matcher, text: &str) -> Vec<i64> {
        m.find(text).into_iter().map(|t| t.question_id).collect()
    }

    #[test]
    fn korean_keywords_match_inside_words() {
        let m = matcher(&[(1, "여행")]);
        assert_eq!(ids(&m, "이번 여행을 어디로 갈까"), vec![1]);
        assert_eq!(ids(&m, "해외여행"), vec![1]);
        assert_eq!(ids(&m, "여름 휴가"), Vec::<i64>::new());
    }

    #[test]
    fn other_keywords_match_whole_words_only_and_ignore_case() {
        let m = matcher(&[(1, "art"), (2, "Travel")]);
        assert_eq!(ids(&m, "let's go to the party"), Vec::<i64>::new());
        assert_eq!(ids(&m, "Art!"), vec![1]);
        assert_eq!(ids(&m, "TRAVEL plans"), vec![2]);
        assert_eq!(ids(&m, "travelling"), Vec::<i64>::new());
        assert_eq!(ids(&m, "여행travel여행"), Vec::<i64>::new());
    }

    #[test]
    fn several_keywords_give_several_questions_in_order_each_once() {
        let m = matcher(&[(1, "money"), (2, "여행"), (3, "trip"), (1, "salary")]);
        assert_eq!(ids(&m, "trip money 여행 salary money"), vec![3, 1, 2]);
    }

    #[test]
    fn a_longer_keyword_does_not_hide_a_shorter_whole_word() {
        let m = matcher(&[(1, "date"), (2, "date night")]);
        assert_eq!(ids(&m, "date nights are fun"), vec![1]);
        assert_eq!(ids(&m, "date night!"), vec![1, 2]);
    }
}
