//! Duet's tables as sea-orm entities. Only `src/store` uses them.

pub mod chats;
pub mod couple_members;
pub mod couples;
pub mod events;
pub mod pair_requests;
pub mod sessions;
pub mod users;

pub mod prelude {
    pub use super::chats::Entity as Chat;
    pub use super::couple_members::Entity as CoupleMember;
    pub use super::couples::Entity as Couple;
    pub use super::events::Entity as Event;
    pub use super::pair_requests::Entity as PairRequest;
    pub use super::sessions::Entity as Session;
    pub use super::users::Entity as User;
}
