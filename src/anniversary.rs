//! Anniversaries and D-day: the couple's day one (the day they paired unless either changes
//! it), days together, automatic milestones (every 100 days, every year) and the couple's
//! own dates, once or yearly. All are calendar dates in the couple's time zone: "today" is
//! the date there, never an instant. A change reaches both partners as an `anniversaries`
//! frame on the couple's channel; it is state, not a log entry, so it carries no seq and a
//! reconnecting client reads it again.

use chrono::{Datelike, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::couple::Member;
use crate::error::{Error, Result};
use crate::frame::ServerFrame;
use crate::publish;
use crate::push::What;
use crate::services::Services;
use crate::store;
use crate::view::{AnniversariesView, DateView, UpcomingView};

pub const MAX_TITLE_CHARS: usize = 100;

/// Dates outside these years are typing mistakes, not anniversaries.
fn plausible(date: NaiveDate) -> bool {
    (1900..=2200).contains(&date.year())
}

/// A couple's time zone and day one, as stored or by default.
struct Calendar {
    time_zone: Tz,
    started_on: NaiveDate,
}

async fn calendar(services: &Services, couple_id: Uuid) -> Result<Calendar> {
    let couple = store::anniversaries::couple(&services.db, couple_id)
        .await?
        .ok_or(Error::NotFound)?;
    let time_zone = couple
        .time_zone
        .as_deref()
        .and_then(|name| name.parse().ok())
        .unwrap_or(services.config.time_zone);
    let started_on = couple
        .started_on
        .unwrap_or_else(|| couple.since.with_timezone(&time_zone).date_naive());
    Ok(Calendar {
        time_zone,
        started_on,
    })
}

/// The couple's time zone (for jumping to a day in its history).
pub async fn time_zone(services: &Services, couple_id: Uuid) -> Result<Tz> {
    Ok(calendar(services, couple_id).await?.time_zone)
}

pub async fn view(services: &Services, couple_id: Uuid) -> Result<AnniversariesView> {
    let calendar = calendar(services, couple_id).await?;
    let dates = store::anniversaries::dates(&services.db, couple_id).await?;
    let today = Utc::now().with_timezone(&calendar.time_zone).date_naive();
    let dates = dates
        .into_iter()
        .map(|d| DateView {
            id: d.id,
            title: d.title,
            date: d.date,
            yearly: d.yearly,
        })
        .collect::<Vec<_>>();
    Ok(AnniversariesView {
        upcoming: upcoming(calendar.started_on, today, &dates),
        days_together: (today - calendar.started_on).num_days() + 1,
        started_on: calendar.started_on,
        time_zone: calendar.time_zone.name().to_owned(),
        today,
        dates,
    })
}

/// The same day `years` later; 29 February falls on the 28th in other years.
fn years_after(date: NaiveDate, years: i32) -> Option<NaiveDate> {
    let months = u32::try_from(years.checked_mul(12)?).ok()?;
    date.checked_add_months(Months::new(months))
}

fn label(days_from_today: i64) -> String {
    match days_from_today {
        0 => "D-day".to_owned(),
        d if d > 0 => format!("D-{d}"),
        d => format!("D+{}", -d),
    }
}

fn item(kind: &'static str, title: String, date: NaiveDate, today: NaiveDate) -> UpcomingView {
    let days_from_today = (date - today).num_days();
    UpcomingView {
        kind,
        title,
        date,
        days_from_today,
        label: label(days_from_today),
        days: None,
        years: None,
        id: None,
    }
}

/// The next two 100-day milestones and the last one passed, the next and the last yearly
/// one, and each own date (a yearly one at its next occurrence, a one-off where it is);
/// soonest first, then the past, most recent first.
fn upcoming(started_on: NaiveDate, today: NaiveDate, dates: &[DateView]) -> Vec<UpcomingView> {
    let mut list = Vec::new();
    let together = (today - started_on).num_days() + 1;
    // Day N is started_on + (N - 1): the 100th day is 99 days after day one.
    let next_hundred = ((together + 99) / 100).max(1);
    for hundreds in [next_hundred - 1, next_hundred, next_hundred + 1] {
        let days = hundreds * 100;
        if hundreds < 1 {
            continue;
        }
        let Ok(offset) = u64::try_from(days - 1) else {
            continue;
        };
        if let Some(date) = started_on.checked_add_days(chrono::Days::new(offset)) {
            let mut milestone = item("milestone", format!("{days} days"), date, today);
            milestone.days = Some(days);
            list.push(milestone);
        }
    }
    let mut years = 1;
    while years_after(started_on, years).is_some_and(|date| date < today) {
        years += 1;
    }
    for years in [years - 1, years] {
        if years < 1 {
            continue;
        }
        if let Some(date) = years_after(started_on, years) {
            let title = if years == 1 {
                "1 year".to_owned()
            } else {
                format!("{years} years")
            };
            let mut yearly = item("yearly", title, date, today);
            yearly.years = Some(years);
            list.push(yearly);
        }
    }
    for own in dates {
        let date = if own.yearly && own.date < today {
            let mut next = years_after(own.date, today.year() - own.date.year());
            if next.is_some_and(|date| date < today) {
                next = years_after(own.date, today.year() - own.date.year() + 1);
            }
            next.unwrap_or(own.date)
        } else {
            own.date
        };
        let mut mine = item("date", own.title.clone(), date, today);
        mine.id = Some(own.id);
        list.push(mine);
    }
    list.sort_by_key(|item| {
        let d = item.days_from_today;
        if d >= 0 { (0, d) } else { (1, -d) }
    });
    list
}

/// Changes day one and/or the time zone, for both of us.
pub async fn set_start(
    services: &Services,
    me: &Member,
    started_on: Option<NaiveDate>,
    time_zone: Option<&str>,
) -> Result<AnniversariesView> {
    let zone: Option<Tz> = match time_zone {
        Some(name) => Some(name.parse().map_err(|_| {
            Error::InvalidInput("time_zone must be an IANA time zone such as Asia/Seoul".into())
        })?),
        None => None,
    };
    if let Some(date) = started_on {
        let zone = match zone {
            Some(zone) => zone,
            None => calendar(services, me.couple_id).await?.time_zone,
        };
        let today = Utc::now().with_timezone(&zone).date_naive();
        if date > today || !plausible(date) {
            return Err(Error::InvalidInput(
                "started_on must be a date in the past, from 1900 on".into(),
            ));
        }
    }
    store::anniversaries::set_start(
        &services.db,
        me.couple_id,
        started_on,
        zone.map(|z| z.name()),
    )
    .await?;
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, "start date changed");
    changed(services, me).await
}

/// Adds one of our own dates.
pub async fn add(
    services: &Services,
    me: &Member,
    title: &str,
    date: NaiveDate,
    yearly: bool,
) -> Result<DateView> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::InvalidInput(format!(
            "a title needs 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    if !plausible(date) {
        return Err(Error::InvalidInput(
            "date must be between 1900 and 2200".into(),
        ));
    }
    let max = services.config.max_couple_dates;
    // Counted and added under the couple's lock: two adds at once cannot both pass the count.
    let txn = services.db.begin().await?;
    if !store::couples::lock(&txn, me.couple_id).await? {
        return Err(Error::NotPaired);
    }
    if store::anniversaries::count(&txn, me.couple_id).await? >= max {
        return Err(Error::InvalidInput(format!(
            "a couple keeps at most {max} dates"
        )));
    }
    let added = store::anniversaries::add(
        &txn,
        me.couple_id,
        me.user_id,
        title.to_owned(),
        date,
        yearly,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, date_id = %added.id, "date added");
    changed(services, me).await?;
    Ok(DateView {
        id: added.id,
        title: added.title,
        date: added.date,
        yearly: added.yearly,
    })
}

pub async fn remove(services: &Services, me: &Member, id: Uuid) -> Result<()> {
    if !store::anniversaries::remove(&services.db, me.couple_id, id).await? {
        return Err(Error::NotFound);
    }
    tracing::info!(couple_id = %me.couple_id, user_id = %me.user_id, date_id = %id, "date removed");
    changed(services, me).await?;
    Ok(())
}

async fn changed(services: &Services, me: &Member) -> Result<AnniversariesView> {
    let view = view(services, me.couple_id).await?;
    publish::to_both(
        &services.bus,
        me.couple_id,
        &ServerFrame::Anniversaries(view.clone()),
    );
    services
        .push
        .notify(me.couple_id, me.partner_id, Some(me.user_id), What::Dates);
    Ok(view)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::{label, upcoming};

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn the_hundredth_day_is_ninety_nine_days_after_day_one() {
        let list = upcoming(day("2026-01-01"), day("2026-04-01"), &[]);
        let hundred = list.iter().find(|i| i.days == Some(100));
        assert_eq!(hundred.map(|i| i.date), Some(day("2026-04-10")));
        assert_eq!(hundred.map(|i| i.label.as_str()), Some("D-9"));
        assert_eq!(
            list.first().map(|i| i.days),
            Some(Some(100)),
            "the next one first"
        );
    }

    #[test]
    fn past_milestones_come_after_the_upcoming_ones() {
        let list = upcoming(day("2025-01-01"), day("2026-01-10"), &[]);
        let first_past = list.iter().position(|i| i.days_from_today < 0);
        let last_future = list.iter().rposition(|i| i.days_from_today >= 0);
        assert!(first_past > last_future);
        let year = list.iter().find(|i| i.years == Some(1));
        assert_eq!(year.map(|i| i.label.as_str()), Some("D+9"));
    }

    #[test]
    fn a_leap_day_anniversary_falls_on_the_28th() {
        let list = upcoming(day("2024-02-29"), day("2025-02-01"), &[]);
        let year = list.iter().find(|i| i.years == Some(1));
        assert_eq!(year.map(|i| i.date), Some(day("2025-02-28")));
    }

    #[test]
    fn labels_count_down_and_up() {
        assert_eq!(label(3), "D-3");
        assert_eq!(label(0), "D-day");
        assert_eq!(label(-2), "D+2");
    }
}
