//! Property tests of the workflow parsers and schedule arithmetic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use lanyard_server::model::Launchpad;
use lanyard_server::workflows::model::Repeats;
use lanyard_server::workflows::placeholder::{Context, names};
use lanyard_server::workflows::schedule::latest_occurrence;
use proptest::prelude::*;

fn cart() -> Context {
    Context {
        launchpad: Some(Launchpad {
            id: "c".into(),
            name: "Cart [1]".into(),
            ports: 4,
            department: Some("4 West".into()),
            facility: None,
            manager: None,
            timezone: None,
        }),
        ..Context::default()
    }
}

proptest! {
    /// Any text (brackets, multibyte characters, newlines) parses and renders without
    /// panicking; text without placeholders renders unchanged.
    #[test]
    fn placeholders_never_panic_and_plain_text_is_kept(text in "[a-zA-Z0-9 \\[\\]\\n€é漢]{0,80}") {
        let cx = cart();
        let found = names(&text);
        match cx.render(&text) {
            Ok(out) => {
                if found.is_empty() {
                    prop_assert_eq!(out, text);
                }
            }
            Err(missing) => prop_assert!(found.contains(&missing.as_str())),
        }
    }

    /// Known placeholders are replaced wherever they sit in the text.
    #[test]
    fn a_known_placeholder_is_filled_anywhere(prefix in "[a-z €]{0,20}", suffix in "[a-z €]{0,20}") {
        let out = cart().render(&format!("{prefix}[Department]{suffix}")).unwrap();
        prop_assert_eq!(out, format!("{prefix}4 West{suffix}"));
    }

    /// The latest occurrence is never in the future, falls at the schedule's wall-clock
    /// time (or just after a spring-forward gap), and no later occurrence fits before now.
    #[test]
    fn the_latest_occurrence_is_the_last_one_not_after_now(
        zone in prop::sample::select(vec!["America/Chicago", "Europe/Paris", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]),
        hour in 0i8..24, minute in 0i8..60,
        repeats in prop::sample::select(vec![Repeats::Daily, Repeats::Weekly, Repeats::Never]),
        offset_days in 0i64..800, offset_ms in 0i64..86_400_000,
    ) {
        let tz = TimeZone::get(zone).unwrap();
        let start = DateTime::new(2025, 1, 7, hour, minute, 0, 0).unwrap();
        let first = tz.to_zoned(start).unwrap().timestamp().as_millisecond();
        let now = first + offset_days * 86_400_000 + offset_ms - 86_400_000;
        match latest_occurrence(start, repeats, &tz, now) {
            None => prop_assert!(now < first),
            Some(t) => {
                prop_assert!(t <= now);
                prop_assert!(t >= first);
                let local = jiff::Timestamp::from_millisecond(t).unwrap().to_zoned(tz.clone());
                let wanted = local.date().to_datetime(start.time());
                let expected = tz.to_zoned(wanted).unwrap().timestamp().as_millisecond();
                prop_assert_eq!(t, expected, "at the wall-clock time of its own day");
                if repeats != Repeats::Never {
                    // The next occurrence after it is after now.
                    let step = if repeats == Repeats::Daily { 1 } else { 7 };
                    let next_day = local.date().checked_add(jiff::Span::new().days(step)).unwrap();
                    let next = tz.to_zoned(next_day.to_datetime(start.time())).unwrap().timestamp().as_millisecond();
                    prop_assert!(next > now);
                }
            }
        }
    }
}
