//! Korean nouns carry their particles in writing ("여행을", "여행이", "여행에서"): counting
//! them as written would split one word into many. This is a documented rule set, not a
//! morphological analyser (the analysers' dictionaries are downloaded at build time, which
//! a build here cannot do):
//!
//! 1. Only a word written wholly in Hangul syllables is touched, and only its end.
//! 2. The longest particle the word ends with is stripped, if what stays is long enough:
//!    one syllable for particles of two or more syllables and for 은/는/을/를, two syllables
//!    for the other one-syllable particles (이, 가, 도, ...), which also end many nouns.
//! 3. A particle that only follows a final consonant (은, 을, 이, 과, 으로, ...) is stripped
//!    only after one, and one that only follows a vowel (는, 를, 가, 와, 로, ...) only after a
//!    vowel; "사과" (apple) keeps its 과 and "나이" (age) its 이.
//!
//! What it gets wrong: a noun whose last syllable is a particle after a matching syllable
//! ("고양이" counts as "고양"), and verbs, which keep their endings ("가자", "갈까"). The
//! couple can leave any word out.

/// Which syllables a particle may follow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// A syllable with a final consonant (받침).
    Consonant,
    /// A syllable without one (로 and 랑 also follow a final ㄹ).
    Vowel,
    Any,
}

/// Longest first, so "에서는" wins over "는".
const PARTICLES: &[(&str, After)] = &[
    ("에서부터", After::Any),
    ("으로부터", After::Consonant),
    ("에게서", After::Any),
    ("에서는", After::Any),
    ("에게는", After::Any),
    ("으로는", After::Consonant),
    ("이랑은", After::Consonant),
    ("한테는", After::Any),
    ("까지는", After::Any),
    ("부터는", After::Any),
    ("에서도", After::Any),
    ("이라도", After::Consonant),
    ("에서", After::Any),
    ("에게", After::Any),
    ("한테", After::Any),
    ("까지", After::Any),
    ("부터", After::Any),
    ("처럼", After::Any),
    ("보다", After::Any),
    ("하고", After::Any),
    ("마다", After::Any),
    ("밖에", After::Any),
    ("조차", After::Any),
    ("께서", After::Any),
    ("으로", After::Consonant),
    ("이랑", After::Consonant),
    ("이나", After::Consonant),
    ("에는", After::Any),
    ("에도", After::Any),
    ("라도", After::Vowel),
    ("은", After::Consonant),
    ("는", After::Vowel),
    ("을", After::Consonant),
    ("를", After::Vowel),
    ("이", After::Consonant),
    ("가", After::Vowel),
    ("과", After::Consonant),
    ("와", After::Vowel),
    ("로", After::Vowel),
    ("랑", After::Vowel),
    ("나", After::Vowel),
    ("도", After::Any),
    ("의", After::Any),
    ("에", After::Any),
    ("만", After::Any),
];

const SYLLABLES: std::ops::RangeInclusive<char> = '\u{AC00}'..='\u{D7A3}';

pub fn is_hangul_word(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| SYLLABLES.contains(&c))
}

/// The index of a syllable's final consonant: 0 for none, 8 for ㄹ.
fn final_consonant(syllable: char) -> u32 {
    (u32::from(syllable) - u32::from(*SYLLABLES.start())) % 28
}

fn follows(particle: &str, after: After, syllable: char) -> bool {
    let last = final_consonant(syllable);
    match after {
        After::Any => true,
        After::Consonant => last != 0,
        // 로 and 랑 take a final ㄹ like a vowel: "서울로", "발로".
        After::Vowel => last == 0 || (last == 8 && matches!(particle, "로" | "랑")),
    }
}

/// The word without its particle (rule set above); other words as they are.
pub fn strip_particle(word: &str) -> &str {
    if !is_hangul_word(word) {
        return word;
    }
    let syllables = word.chars().count();
    for (particle, after) in PARTICLES {
        let Some(stem) = word.strip_suffix(particle) else {
            continue;
        };
        let particle_len = particle.chars().count();
        let min_stem = if particle_len > 1 || matches!(*particle, "은" | "는" | "을" | "를") {
            1
        } else {
            2
        };
        if syllables - particle_len < min_stem {
            continue;
        }
        let Some(last) = stem.chars().next_back() else {
            continue;
        };
        if follows(particle, *after, last) {
            return stem;
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::strip_particle;

    #[test]
    fn a_noun_with_a_particle_counts_as_the_noun() {
        for written in [
            "여행을",
            "여행이",
            "여행은",
            "여행에서",
            "여행에서는",
            "여행으로",
            "여행과",
            "여행도",
            "여행의",
            "여행까지",
        ] {
            assert_eq!(strip_particle(written), "여행", "{written}");
        }
        for written in ["우리가", "우리는", "우리를", "우리와", "우리도", "우리랑"]
        {
            assert_eq!(strip_particle(written), "우리", "{written}");
        }
        assert_eq!(strip_particle("서울로"), "서울");
        assert_eq!(strip_particle("바다로"), "바다");
        assert_eq!(strip_particle("너를"), "너");
        assert_eq!(strip_particle("사랑해"), "사랑해");
    }

    #[test]
    fn a_particle_that_does_not_fit_the_syllable_before_it_stays() {
        // 과 only follows a final consonant; 이 too; 가 only a vowel.
        assert_eq!(strip_particle("사과"), "사과");
        assert_eq!(strip_particle("나이"), "나이");
        assert_eq!(strip_particle("아이"), "아이");
        assert_eq!(strip_particle("가을"), "가을");
        assert_eq!(strip_particle("사람가"), "사람가");
    }

    #[test]
    fn one_syllable_stems_keep_ambiguous_particles() {
        assert_eq!(strip_particle("나도"), "나도");
        assert_eq!(strip_particle("바다"), "바다");
        assert_eq!(strip_particle("여"), "여");
    }

    #[test]
    fn other_scripts_are_left_alone() {
        assert_eq!(strip_particle("travel"), "travel");
        assert_eq!(strip_particle("ㅋㅋㅋ"), "ㅋㅋㅋ");
        assert_eq!(strip_particle("여행을go"), "여행을go");
    }
}
