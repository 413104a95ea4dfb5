//! What a reaction may be: any single emoji of Unicode's list (skin tones, flags and
//! ZWJ sequences included), and nothing else: a reaction is a face, not a message.

use crate::error::{Error, Result};

/// `emoji` if it is one emoji, else `invalid_input`.
pub fn checked(emoji: &str) -> Result<&str> {
    match emojis::get(emoji) {
        Some(_) => Ok(emoji),
        None => Err(Error::InvalidInput(
            "a reaction is a single emoji".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji_of_any_kind() {
        // The client's offered six, and others.
        let offered = ["❤️", "😂", "😮", "😢", "👍", "🙏"];
        for emoji in offered.iter().chain(&["❤", "👍🏽", "👩‍❤️‍👨", "🇰🇷", "1️⃣"])
        {
            assert!(checked(emoji).is_ok(), "{emoji} is an emoji");
        }
        for not in ["a", "ㅋ", "😂😂", "#", " ", "❤️ ", "<b>"] {
            assert!(checked(not).is_err(), "{not:?} is not one emoji");
        }
    }
}
