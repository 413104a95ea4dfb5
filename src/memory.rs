//! On this day: the chats and photos of the same calendar day in earlier years (in the
//! couple's time zone), for the card the client shows. Chats are found by seq, not by time:
//! a day's first chat is a binary search over seqs (`chat::find::first_on`), so looking back
//! over years costs a few dozen index probes, whatever the length of the story.

use chrono::{Datelike, NaiveDate, Utc};
use uuid::Uuid;

use crate::anniversary;
use crate::chat;
use crate::error::{Error, Result};
use crate::services::Services;
use crate::store;
use crate::view::ChatView;

/// Chats shown of one day at most (its first ones).
pub const CHATS_PER_DAY: u64 = 20;

/// One earlier year's same day.
pub struct Memory {
    pub date: NaiveDate,
    pub years_ago: i32,
    /// Its first chats, oldest first (photos among them).
    pub chats: Vec<ChatView>,
}

/// Today in the couple's time zone, and what happened on this day in each earlier year,
/// the most recent year first. A 29 February is remembered only in leap years.
pub async fn on_this_day(services: &Services, couple_id: Uuid) -> Result<(NaiveDate, Vec<Memory>)> {
    let zone = anniversary::time_zone(services, couple_id).await?;
    let today = Utc::now().with_timezone(&zone).date_naive();
    let Some(first) = store::chats::after(&services.db, couple_id, 0, 1)
        .await?
        .pop()
    else {
        return Ok((today, Vec::new()));
    };
    let first_year = first.sent_at.with_timezone(&zone).year();
    let mut memories = Vec::new();
    for year in (first_year..today.year()).rev() {
        let Some(date) = NaiveDate::from_ymd_opt(year, today.month(), today.day()) else {
            continue;
        };
        // A day the zone skipped (a date-line move) has no chats: no memory that year.
        let from = match chat::find::first_on(services, couple_id, date).await {
            Ok(Some(from)) => from,
            Ok(None) | Err(Error::InvalidInput(_)) => continue,
            Err(e) => return Err(e),
        };
        let until = match date.succ_opt() {
            Some(next) => match chat::find::first_on(services, couple_id, next).await {
                Ok(until) => until,
                Err(Error::InvalidInput(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let chats: Vec<ChatView> =
            chat::find::forward(services, couple_id, from - 1, CHATS_PER_DAY)
                .await?
                .into_iter()
                .filter(|c| until.is_none_or(|until| c.seq < until))
                .collect();
        if chats.is_empty() {
            continue;
        }
        memories.push(Memory {
            date,
            years_ago: today.year() - year,
            chats,
        });
    }
    Ok((today, memories))
}
