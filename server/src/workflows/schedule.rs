//! Schedule triggers: "on this date, at this time, repeats daily / weekly / never",
//! read as wall-clock time in each cart's Timezone attribute. A cart in Chicago and one
//! in Denver both run a 06:00 rule at their own 06:00, and 06:00 stays 06:00 across
//! daylight-saving changes (jiff and its bundled tz database do the arithmetic; a time
//! that does not exist on a spring-forward day runs at the first instant after the gap).
//!
//! Every few seconds the scheduler takes, for each enabled schedule rule and each cart,
//! the latest occurrence not in the future. If that occurrence has not fired for the
//! cart yet, is not older than the catch-up window (a server down at 06:00 and back at
//! 06:20 still runs it; back at 15:00 it does not), and is not older than the rule's
//! last change (enabling a rule at 06:10 does not fire 06:00 retroactively), the rule's
//! conditions are checked for each device docked in the cart now and its workflows
//! deployed to those that match. The occurrence and the runs are stored in one
//! transaction, so a restart never repeats or loses one.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::model::{Repeats, Rule, Trigger};
use super::triggers::{context, holds, runs_for};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::{DeviceFilter, Storage};

/// How late an occurrence may still run (after downtime).
pub const CATCH_UP_MS: i64 = 30 * 60 * 1000;
/// How often the scheduler looks.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// The zone of a cart: its Timezone attribute, else UTC.
pub fn cart_zone(timezone: Option<&str>) -> TimeZone {
    timezone
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC)
}

/// The latest occurrence of the schedule starting at `start` (wall-clock time in `tz`)
/// that is not after `now`, as a Unix timestamp in milliseconds.
pub fn latest_occurrence(
    start: DateTime,
    repeats: Repeats,
    tz: &TimeZone,
    now_ms: i64,
) -> Option<i64> {
    let at = |dt: DateTime| -> Option<i64> {
        tz.to_zoned(dt).ok().map(|z| z.timestamp().as_millisecond())
    };
    let first = at(start)?;
    if first > now_ms {
        return None;
    }
    let step_days: i64 = match repeats {
        Repeats::Never => return Some(first),
        Repeats::Daily => 1,
        Repeats::Weekly => 7,
    };
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .ok()?
        .to_zoned(tz.clone());
    let elapsed_days = i64::from(start.date().until(now.date()).ok()?.get_days());
    // The last date on the schedule's rhythm that is not after today (local).
    let mut date = start
        .date()
        .checked_add(jiff::Span::new().days(elapsed_days - elapsed_days.rem_euclid(step_days)))
        .ok()?;
    loop {
        let t = at(date.to_datetime(start.time()))?;
        if t <= now_ms {
            return Some(t);
        }
        date = date.checked_sub(jiff::Span::new().days(step_days)).ok()?;
        if date < start.date() {
            return None;
        }
    }
}

/// One pass: fires every schedule occurrence that is due. Returns the runs created.
pub async fn fire_due<S: Storage>(st: &AppState<S>) -> Result<usize, AppError> {
    let rules: Vec<Rule> = st
        .storage
        .list_rules()
        .await?
        .into_iter()
        .filter(|r| r.spec.enabled && matches!(r.spec.trigger, Trigger::Schedule(_)))
        .collect();
    if rules.is_empty() {
        return Ok(0);
    }
    let now = st.now().as_millis();
    let mut carts = Vec::new();
    let mut cursor = None;
    loop {
        let page = st
            .storage
            .list_launchpads(cursor, crate::validate::MAX_LIMIT)
            .await?;
        carts.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut created = 0;
    for rule in &rules {
        let Trigger::Schedule(schedule) = &rule.spec.trigger else {
            continue;
        };
        let Ok(start) = super::validate::schedule_start(schedule) else {
            continue;
        };
        for cart in &carts {
            let tz = cart_zone(cart.timezone.as_deref());
            let Some(occurrence) = latest_occurrence(start, schedule.repeats, &tz, now) else {
                continue;
            };
            if occurrence < now - CATCH_UP_MS || occurrence < rule.updated_at {
                continue;
            }
            let fired = st
                .storage
                .schedule_fired(rule.id.clone(), cart.id.clone())
                .await?;
            if fired.is_some_and(|f| f >= occurrence) {
                continue;
            }
            let mut runs = Vec::new();
            // The phones in the cart now: one that left keeps the cart as its last,
            // with a port it no longer sits in.
            let filter = DeviceFilter {
                launchpad: Some(cart.id.clone()),
                docked: Some(true),
                ..DeviceFilter::default()
            };
            let mut cursor = None;
            loop {
                let page = st
                    .storage
                    .list_devices(filter.clone(), cursor, crate::validate::MAX_LIMIT)
                    .await?;
                for device in &page.items {
                    let cx = context(st, &device.id).await?;
                    if rule.spec.conditions.iter().all(|c| holds(c, &cx)) {
                        runs.extend(runs_for(rule, &device.id, "schedule"));
                    }
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let Some(ids) = st
                .storage
                .fire_schedule(rule.id.clone(), cart.id.clone(), occurrence, runs, st.now())
                .await?
            else {
                // Another replica fired it since this pass looked.
                continue;
            };
            tracing::info!(rule = %rule.id, cart = %cart.id, runs = ids.len(), "schedule fired");
            created += ids.len();
        }
    }
    if created > 0 {
        super::engine::wake(st);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str, tz: &str) -> i64 {
        let dt: DateTime = s.parse().unwrap();
        TimeZone::get(tz)
            .unwrap()
            .to_zoned(dt)
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn start(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn daily_six_am_is_six_am_local_on_both_sides_of_daylight_saving() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let s = start("2025-01-07T06:00");
        // The day before the spring change, the day of it, the day after (CST → CDT).
        for day in [
            "2026-03-07",
            "2026-03-08",
            "2026-03-09",
            "2026-10-31",
            "2026-11-01",
            "2026-11-02",
        ] {
            let six = ms(&format!("{day}T06:00"), "America/Chicago");
            assert_eq!(
                latest_occurrence(s, Repeats::Daily, &tz, six),
                Some(six),
                "{day}"
            );
            assert_eq!(
                latest_occurrence(s, Repeats::Daily, &tz, six + 1000),
                Some(six),
                "{day}"
            );
            // A second before 06:00 the latest is the previous day's.
            let prev = latest_occurrence(s, Repeats::Daily, &tz, six - 1000).unwrap();
            let hours = (six - prev) as f64 / 3_600_000.0;
            let expect = match day {
                "2026-03-08" => 23.0,
                "2026-11-01" => 25.0,
                _ => 24.0,
            };
            assert_eq!(hours, expect, "{day}");
        }
        // 06:00 local is 12:00 UTC in winter and 11:00 UTC in summer.
        assert_eq!(
            ms("2026-01-15T06:00", "America/Chicago"),
            ms("2026-01-15T12:00", "UTC")
        );
        assert_eq!(
            ms("2026-07-15T06:00", "America/Chicago"),
            ms("2026-07-15T11:00", "UTC")
        );
    }

    #[test]
    fn a_time_lost_to_spring_forward_runs_just_after_the_gap() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let s = start("2026-01-01T02:30");
        let after_gap = ms("2026-03-08T03:30", "America/New_York");
        assert_eq!(
            latest_occurrence(s, Repeats::Daily, &tz, after_gap),
            Some(after_gap)
        );
    }

    #[test]
    fn weekly_keeps_the_weekday_and_never_fires_once() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        let s = start("2026-11-02T18:00"); // a Monday
        let now = ms("2026-11-20T09:00", "Europe/Paris"); // a Friday
        assert_eq!(
            latest_occurrence(s, Repeats::Weekly, &tz, now),
            Some(ms("2026-11-16T18:00", "Europe/Paris"))
        );
        assert_eq!(
            latest_occurrence(s, Repeats::Never, &tz, now),
            Some(ms("2026-11-02T18:00", "Europe/Paris"))
        );
        let before = ms("2026-11-01T00:00", "Europe/Paris");
        assert_eq!(latest_occurrence(s, Repeats::Daily, &tz, before), None);
        assert_eq!(latest_occurrence(s, Repeats::Never, &tz, before), None);
    }

    #[test]
    fn carts_without_a_timezone_use_utc() {
        assert_eq!(cart_zone(None), TimeZone::UTC);
        assert_eq!(cart_zone(Some("Not/AZone")), TimeZone::UTC);
    }
}
