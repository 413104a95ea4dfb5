//! The question catalogue's file format, shared by the seeding migration and
//! `duet questions import`:
//!
//! ```toml
//! [[question]]
//! key = "travel-dream"
//! text = "우리가 함께 꼭 가보고 싶은 곳은 어디야?"
//! keywords = ["여행", "travel"]
//! ```
//!
//! JSON of the same shape (`{"question": [{"key", "text", "keywords"}]}`) works too.

use serde::Deserialize;

/// The catalogue every new database starts with.
pub const DEFAULT_TOML: &str = include_str!("seed/questions.toml");

/// Longest question text and keyword a catalogue may hold, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
pub const MAX_KEYWORD_CHARS: usize = 64;
pub const MAX_KEY_CHARS: usize = 64;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CatalogueFile {
    #[serde(default)]
    pub question: Vec<Entry>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub key: String,
    pub text: String,
    pub keywords: Vec<String>,
}

#[derive(Debug)]
pub struct CatalogueError(pub String);

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CatalogueError {}

/// Parses TOML, or JSON when the text starts with `{`, and normalizes every entry.
pub fn parse(source: &str) -> Result<Vec<Entry>, CatalogueError> {
    let file: CatalogueFile = if source.trim_start().starts_with('{') {
        serde_json::from_str(source).map_err(|e| CatalogueError(format!("invalid JSON: {e}")))?
    } else {
        toml::from_str(source).map_err(|e| CatalogueError(format!("invalid TOML: {e}")))?
    };
    let mut seen = std::collections::HashSet::new();
    file.question
        .into_iter()
        .map(|entry| {
            let entry = normalize(entry)?;
            if !seen.insert(entry.key.clone()) {
                return Err(CatalogueError(format!("key {:?} appears twice", entry.key)));
            }
            Ok(entry)
        })
        .collect()
}

/// Trims everything and lowercases keywords (matching ignores case); refuses what the matcher
/// could not use.
fn normalize(entry: Entry) -> Result<Entry, CatalogueError> {
    let key = entry.key.trim().to_owned();
    let text = entry.text.trim().to_owned();
    let fail = |why: &str| CatalogueError(format!("question {key:?}: {why}"));
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(fail("key must be 1-64 characters"));
    }
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(fail("text must be 1-500 characters"));
    }
    let mut keywords: Vec<String> = Vec::new();
    for keyword in entry.keywords {
        let keyword = keyword.trim().to_lowercase();
        if keyword.is_empty() || keyword.chars().count() > MAX_KEYWORD_CHARS {
            return Err(fail("keywords must be 1-64 characters"));
        }
        if !keywords.contains(&keyword) {
            keywords.push(keyword);
        }
    }
    if keywords.is_empty() {
        return Err(fail("needs at least one keyword"));
    }
    Ok(Entry {
        key,
        text,
        keywords,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_is_valid_and_bilingual() {
        let entries = parse(DEFAULT_TOML).unwrap_or_default();
        let korean = entries.iter().filter(|e| e.key.starts_with("ko-")).count();
        let english = entries.iter().filter(|e| e.key.starts_with("en-")).count();
        assert!(korean >= 40, "{korean} Korean questions");
        assert!(english >= 40, "{english} English questions");
    }

    #[test]
    fn keywords_are_trimmed_lowercased_and_deduplicated() {
        let entries = parse(
            r#"{"question": [{"key": " k ", "text": " t ", "keywords": [" Travel", "travel", "여행"]}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            entries,
            vec![Entry {
                key: "k".into(),
                text: "t".into(),
                keywords: vec!["travel".into(), "여행".into()],
            }]
        );
    }

    #[test]
    fn a_key_twice_or_without_keywords_is_refused() {
        let twice = "[[question]]\nkey='a'\ntext='t'\nkeywords=['x']\n[[question]]\nkey='a'\ntext='u'\nkeywords=['y']";
        assert!(parse(twice).is_err());
        assert!(parse("[[question]]\nkey='a'\ntext='t'\nkeywords=[]").is_err());
    }
}
