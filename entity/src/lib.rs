//! Duet's tables as sea-orm entities. Only `src/store` uses them.

pub mod anniversaries;
pub mod answers;
pub mod chats;
pub mod couple_members;
pub mod couple_questions;
pub mod couples;
pub mod events;
pub mod excluded_words;
pub mod files;
pub mod pair_requests;
pub mod push_keys;
pub mod push_subscriptions;
pub mod question_keywords;
pub mod questions;
pub mod reactions;
pub mod sessions;
pub mod users;
pub mod word_counts;
pub mod word_marks;

pub mod prelude {
    pub use super::anniversaries::Entity as Anniversary;
    pub use super::answers::Entity as Answer;
    pub use super::chats::Entity as Chat;
    pub use super::couple_members::Entity as CoupleMember;
    pub use super::couple_questions::Entity as CoupleQuestion;
    pub use super::couples::Entity as Couple;
    pub use super::events::Entity as Event;
    pub use super::excluded_words::Entity as ExcludedWord;
    pub use super::files::Entity as File;
    pub use super::pair_requests::Entity as PairRequest;
    pub use super::push_keys::Entity as PushKey;
    pub use super::push_subscriptions::Entity as PushSubscription;
    pub use super::question_keywords::Entity as QuestionKeyword;
    pub use super::questions::Entity as Question;
    pub use super::reactions::Entity as Reaction;
    pub use super::sessions::Entity as Session;
    pub use super::users::Entity as User;
    pub use super::word_counts::Entity as WordCount;
    pub use super::word_marks::Entity as WordMark;
}
