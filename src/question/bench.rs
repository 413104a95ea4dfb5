//! `duet questions bench`: how many chats per second the matcher takes through a large
//! catalogue. A benchmark, not a test: it reports numbers and asserts nothing.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::matcher::Matcher;

/// What `duet bench-questions` measured: how long the matcher took to build for this many
/// keywords and how many chats per second it scanned.
pub struct Report {
    /// Keywords in the generated catalogue.
    pub keywords: usize,
    /// Generated chats scanned.
    pub chats: usize,
    /// Time to build the matcher, in milliseconds.
    pub build_ms: f64,
    /// Chats scanned per second.
    pub chats_per_sec: f64,
    /// Questions the chats brought up, in all.
    pub triggers: usize,
}

const SYLLABLES: &[&str] = &[
    "여", "행", "사", "랑", "친", "구", "가", "족", "미", "래", "영", "화", "바", "다", "산", "책",
    "꽃", "별", "달", "빵",
];
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// Builds a catalogue of `keywords` random keywords (half Korean, half Latin) and runs
/// `chats` random chats of everyday length through it.
pub fn run(keywords: usize, chats: usize) -> Report {
    let mut rng = StdRng::seed_from_u64(7);
    let pairs: Vec<(i64, String)> = (0..keywords)
        .map(|i| {
            let word = if i % 2 == 0 {
                korean_word(&mut rng, 2..=3)
            } else {
                latin_word(&mut rng, 4..=9)
            };
            (i64::try_from(i / 2).unwrap_or(i64::MAX), word)
        })
        .collect();
    let texts: Vec<String> = (0..chats.clamp(1, 10_000))
        .map(|_| {
            let words: Vec<String> = (0..rng.random_range(4..=20))
                .map(|_| {
                    if rng.random_bool(0.5) {
                        korean_word(&mut rng, 1..=4)
                    } else {
                        latin_word(&mut rng, 2..=8)
                    }
                })
                .collect();
            words.join(" ")
        })
        .collect();

    let started = Instant::now();
    let matcher = Matcher::new(pairs);
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;

    let started = Instant::now();
    let mut triggers = 0;
    for i in 0..chats {
        triggers += matcher.find(&texts[i % texts.len()]).len();
    }
    let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
    Report {
        keywords: matcher.len(),
        chats,
        build_ms,
        chats_per_sec: chats as f64 / secs,
        triggers,
    }
}

fn korean_word(rng: &mut StdRng, len: std::ops::RangeInclusive<usize>) -> String {
    (0..rng.random_range(len))
        .filter_map(|_| SYLLABLES.choose(rng).copied())
        .collect()
}

fn latin_word(rng: &mut StdRng, len: std::ops::RangeInclusive<usize>) -> String {
    (0..rng.random_range(len))
        .filter_map(|_| LETTERS.choose(rng).map(|&b| char::from(b)))
        .collect()
}
